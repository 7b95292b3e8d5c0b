"""Command line: `python -m localaws serve|start|stop|seed` (run from the repository root)."""

from __future__ import annotations

import argparse
import json
import sys

from .server import DEFAULT_THREADS


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localaws", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server in the foreground")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4510, help="0: a free port chosen by the OS")
    serve.add_argument("--plain", action="store_true", help="moto without the extension (benchmarks)")
    serve.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="requests served at once")
    serve.set_defaults(run=_serve)

    start = commands.add_parser("start", help="run the server in the background")
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--port", type=int, default=4510)
    start.add_argument("--state-dir", default=".localaws")
    start.set_defaults(run=_start)

    stop = commands.add_parser("stop", help="stop the background server")
    stop.add_argument("--state-dir", default=".localaws")
    stop.set_defaults(run=_stop)

    seed = commands.add_parser("seed", help="create a realistic organization")
    seed.add_argument("--endpoint", required=True)
    seed.add_argument("--accounts", type=int, default=20)
    seed.add_argument("--locked-buckets", type=int, default=3)
    seed.add_argument("--locked-queues", type=int, default=3)
    seed.add_argument("--fifo", action="store_true", help="intake, dead-letter and results queues are FIFO")
    seed.add_argument("--max-message-size", type=int, default=None,
                      help="MaximumMessageSize of those queues in bytes (default: moto's, 1 MiB)")
    seed.add_argument("--json", action="store_true", help="print the whole result as JSON")
    seed.set_defaults(run=_seed)
    return parser


def _serve(args) -> int:
    from .server import serve

    serve(args.host, args.port, extended=not args.plain, threads=args.threads)
    return 0


def _start(args) -> int:
    from .daemon import DaemonError, start

    try:
        print(start(args.host, args.port, args.state_dir), flush=True)
    except DaemonError as err:
        print(f"localaws start: {err}", file=sys.stderr)
        return 1
    return 0


def _stop(args) -> int:
    from .daemon import stop

    if not stop(args.state_dir):
        print("localaws stop: nothing was running", file=sys.stderr)
    return 0


def _seed(args) -> int:
    from .seed import SeedError, seed

    try:
        result = seed(args.endpoint, args.accounts, args.locked_buckets, args.locked_queues,
                      fifo=args.fifo, max_message_size=args.max_message_size)
    except SeedError as err:
        print(f"localaws seed: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(json.dumps(_summary(result), indent=2))
    return 0


def _summary(result: dict) -> dict:
    """The short form: everything but the per-account list."""
    summary = {k: v for k, v in result.items() if k != "accounts"}
    summary["accounts"] = len(result["accounts"])
    return summary


if __name__ == "__main__":
    sys.exit(main())
