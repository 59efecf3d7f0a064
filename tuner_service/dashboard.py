"""``tuner-service dashboard``: optuna-dashboard on the service database.

The dashboard is optuna-dashboard's own WSGI app (``optuna_dashboard.wsgi``) served in this
process, with the service's Optuna storage and artifact store. Compared with running
``optuna-dashboard <url>`` by hand this:

* reads the same ``TUNER_DATABASE_URL`` as every other process, normalised like the rest of
  the service (``postgresql://`` means psycopg 3; SQLite gets WAL and a busy timeout, so the
  dashboard does not hit "database is locked" while workers write);
* keeps the database password out of the process list (no URL on a command line);
* lets the dashboard list and download each trial's saved model (the artifacts live in the
  database).

``optuna-dashboard "$TUNER_DATABASE_URL"`` works too (it sees the same studies and trials).
"""

from __future__ import annotations

import logging
import signal
import sys
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .db import wait_for_database
from .service import Services
from .settings import Settings

log = logging.getLogger(__name__)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def dashboard_app(services: Services) -> Any:
    """optuna-dashboard's WSGI app on the service's storage and model artifacts."""
    import optuna_dashboard

    return optuna_dashboard.wsgi(services.storage, artifact_store=services.artifacts)


def serve_dashboard(settings: Settings, *, host: str, port: int) -> None:
    """Serve the dashboard until SIGTERM/SIGINT (a threaded server, like optuna-dashboard's)."""
    services = Services(settings)
    wait_for_database(services.engine)
    httpd = make_server(
        host, port, dashboard_app(services), server_class=_ThreadingWSGIServer,
        handler_class=_Handler,
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    log.info("optuna-dashboard on http://%s:%d/dashboard/", host, port)
    print(f"optuna-dashboard listening on http://{host}:{port}/dashboard/", file=sys.stderr)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        services.close()
