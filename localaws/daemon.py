"""Background start/stop of `serve`, for scripts and demos.

`start` runs `python -m localaws serve` detached, with stdout and stderr in
DIR/localaws.log; it waits (bounded) for the READY line and for the health
endpoint to answer, then records DIR/localaws.pid and DIR/endpoint. `stop`
sends SIGTERM to that pid, waits for it to exit (SIGKILL after a deadline) and
removes the pid file.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.request

READY = "LOCALAWS_READY "
START_DEADLINE = 30.0
STOP_DEADLINE = 10.0


class DaemonError(RuntimeError):
    pass


def start(host: str, port: int, state_dir: str) -> str:
    """Start the server in the background; return its URL."""
    directory = pathlib.Path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    pid_file = directory / "localaws.pid"
    if pid_file.exists() and _alive(int(pid_file.read_text())):
        raise DaemonError(f"already running (pid {pid_file.read_text().strip()}); stop it first")
    log_path = directory / "localaws.log"
    package_parent = pathlib.Path(__file__).resolve().parent.parent
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "localaws", "serve", "--host", host, "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=package_parent, start_new_session=True,
        )
    url = _wait_ready(process, log_path)
    pid_file.write_text(f"{process.pid}\n")
    (directory / "endpoint").write_text(f"{url}\n")
    return url


def stop(state_dir: str) -> bool:
    """Stop the server recorded in `state_dir`; False if none was running."""
    pid_file = pathlib.Path(state_dir) / "localaws.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        if not _wait_exit(pid, STOP_DEADLINE):
            os.kill(pid, signal.SIGKILL)
            _wait_exit(pid, STOP_DEADLINE)
    pid_file.unlink(missing_ok=True)
    return True


def _wait_ready(process: subprocess.Popen, log_path: pathlib.Path) -> str:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DaemonError(f"the server exited with {process.returncode}; see {log_path}")
        url = _ready_url(log_path)
        if url and _answers(url):
            return url
        time.sleep(0.05)
    process.terminate()
    raise DaemonError(f"the server did not become ready within {START_DEADLINE:.0f}s; see {log_path}")


def _ready_url(log_path: pathlib.Path) -> str | None:
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith(READY):
            return line[len(READY):].strip()
    return None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_localaws/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def _wait_exit(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False
