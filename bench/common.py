"""What both benchmark harnesses need: paths, a free port, the local AWS environment started on
it, children stopped by PID, and their own section of BENCHMARKS.md rewritten from a run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BINARY = REPO / "target" / "release" / "rootwarden"
SDK_CALL_COST = REPO / "target" / "release" / "examples" / "sdk_call_cost"
OUT_DIR = REPO / "target" / "bench"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(popen: subprocess.Popen, deadline: float = 30.0) -> int | None:
    """SIGTERM by PID, SIGKILL if it is still there after `deadline`; returns the exit status."""
    if popen.poll() is None:
        os.kill(popen.pid, signal.SIGTERM)
        try:
            popen.wait(deadline)
        except subprocess.TimeoutExpired:
            os.kill(popen.pid, signal.SIGKILL)
            popen.wait(10)
    return popen.returncode


def start_localaws(python: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    """`python -m localaws serve --port 0`, waiting (60 s at most) for its READY line."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    popen = subprocess.Popen(
        [python, "-m", "localaws", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(popen.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    if not line or not line[0].startswith("LOCALAWS_READY "):
        stop(popen)
        raise RuntimeError(f"localaws did not announce itself (got {line!r}); see {log_path}")
    return popen, line[0].split()[1].strip()


def write_section(begin: str, end: str, section: str) -> None:
    """Replaces the text from `begin` to `end` (markers included in `section`), or appends it."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    BENCHMARKS_MD.write_text(text)
