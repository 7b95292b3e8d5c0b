"""The foreground server: moto's application behind the extension, on one port.

`serve` binds first (port 0 lets the OS choose), then prints exactly one line,
`LOCALAWS_READY http://<host>:<port>`, so a harness that spawns it knows the
URL without sleeping or racing for a port. SIGTERM and SIGINT stop it cleanly.

The server is cheroot rather than moto's own werkzeug development server: werkzeug
answers every request with `Connection: close` (it cannot drain an unread body before
the next request line), so each SDK call would pay a new TCP connection and a new
server thread. AWS keeps connections alive and clients pool them; cheroot keeps
HTTP/1.1 connections open and serves them from a fixed pool of threads, so clients
here behave, and cost, as they do against AWS.
"""

from __future__ import annotations

import signal
import sys

# Every request in flight holds one thread: SQS long polls (up to 20 s) and injected
# latency faults sleep in theirs. 128 covers several daemons at 64 workers each.
DEFAULT_THREADS = 128


def build_app(extended: bool = True):
    """moto's WSGI application, wrapped by the extension unless `extended` is False."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = DomainDispatcherApplication(create_backend_app)
    if not extended:
        return app
    from . import batch_faults, identity, organization, root_iam, s3_regions, speed, sqs_fifo, sqs_limits
    from .middleware import LocalAwsMiddleware

    organization.install()
    identity.install()
    root_iam.install()
    speed.install()
    sqs_limits.install()
    sqs_fifo.install()
    batch_faults.install()
    s3_regions.install()
    return LocalAwsMiddleware(app)


def serve(host: str, port: int, extended: bool = True, threads: int = DEFAULT_THREADS) -> None:
    """Run until SIGTERM/SIGINT, announcing the URL on stdout once bound."""
    from cheroot import wsgi

    server = wsgi.Server(
        (host, port),
        build_app(extended),
        numthreads=threads,
        server_name="localaws",
        # The listen backlog: cheroot's default of 5 resets connections when dozens of clients
        # (a daemon's workers, a benchmark's threads) connect at once.
        request_queue_size=1024,
        # Idle keep-alive connections of stopped clients are closed after this long.
        timeout=60,
    )
    # cheroot answers `Connection: close` once 10 connections are open; a daemon alone holds
    # more than that (its workers, batchers and long polls), and AWS imposes no such limit.
    server.keep_alive_conn_limit = None

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.prepare()
    print(f"LOCALAWS_READY http://{host}:{server.bind_addr[1]}", flush=True)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    sys.stderr.write("localaws stopped\n")
