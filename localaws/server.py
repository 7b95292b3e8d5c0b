"""The foreground server: moto's application behind the extension, on one port.

`serve` binds first (port 0 lets the OS choose), then prints exactly one line,
`LOCALAWS_READY http://<host>:<port>`, so a harness that spawns it knows the
URL without sleeping or racing for a port. SIGTERM and SIGINT stop it cleanly.
"""

from __future__ import annotations

import signal
import sys

from werkzeug.serving import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    """One short line per request on stderr, without werkzeug's colours and dates."""

    def log_request(self, code="-", size="-") -> None:
        sys.stderr.write(f'{self.command} {self.path} {code}\n')

    def log(self, type: str, message: str, *args) -> None:
        if type == "error":
            sys.stderr.write((message % args) + "\n")


def build_app(extended: bool = True):
    """moto's WSGI application, wrapped by the extension unless `extended` is False."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = DomainDispatcherApplication(create_backend_app)
    if not extended:
        return app
    from . import identity, organization, root_iam
    from .middleware import LocalAwsMiddleware

    organization.install()
    identity.install()
    root_iam.install()
    return LocalAwsMiddleware(app)


def serve(host: str, port: int, extended: bool = True) -> None:
    """Run until SIGTERM/SIGINT, announcing the URL on stdout once bound."""
    server = make_server(host, port, build_app(extended), threaded=True, request_handler=QuietHandler)
    server.daemon_threads = True

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"LOCALAWS_READY http://{host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.stderr.write("localaws stopped\n")
