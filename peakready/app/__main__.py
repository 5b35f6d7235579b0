"""``python -m peakready.app``: serve one storefront instance with uvicorn (1 worker)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

from peakready.errors import PeakreadyError

if TYPE_CHECKING:
    import uvicorn

    from peakready.app.main import Storefront


def main() -> int:
    # Imported here: settings errors print before uvicorn and FastAPI load.
    from peakready.app.settings import load_settings

    try:
        settings = load_settings()
    except PeakreadyError as exc:
        for line in exc.lines:
            print(f"peakready-app: error: {line}", file=sys.stderr)
        return exc.exit_code

    # Imported here: only the migrating instance needs a database client here.
    import psycopg
    import uvicorn

    # Imported here: only the migrating instance needs a database client here.
    from peakready.app import db
    from peakready.app.main import create_app

    level = settings.log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.migrate:
        # Before serving, so that an unreachable database is one clear line, not a traceback.
        password = settings.db_password.get_secret_value() if settings.db_password else None
        try:
            db.migrate(
                settings.db_dsn,
                password,
                settings.seed_products,
                settings.initial_stock,
                settings.migrate_timeout_s,
            )
        except db.DatabaseUnavailable as exc:
            print(f"peakready-app: error: {exc}", file=sys.stderr)
            return 1
        except psycopg.Error as exc:  # e.g. the user may not create tables in the database
            reason = exc.diag.message_primary or " ".join(str(exc).split())
            print(f"peakready-app: error: migrations failed: {reason}", file=sys.stderr)
            return 1
        settings = settings.model_copy(update={"migrate": False})
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=False,  # the app never uses the client's address
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    server = drain_first(uvicorn.Server, config, app.state.storefront, settings.drain_s)
    server.run()
    return 0


def drain_first(
    server_class: type[uvicorn.Server],
    config: uvicorn.Config,
    storefront: Storefront,
    drain_s: float,
) -> uvicorn.Server:
    """A uvicorn server whose first SIGTERM only turns readiness off for ``drain_s``.

    The load balancer's health check takes the instance out of rotation while it still
    serves; then uvicorn's own graceful shutdown finishes what is in flight. A second
    signal (or SIGINT) stops at once.
    """

    class DrainingServer(server_class):  # type: ignore[misc,valid-type]
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if drain_s > 0 and sig == signal.SIGTERM and not storefront.draining:
                storefront.draining = True
                logging.getLogger("peakready.app").warning(
                    "SIGTERM: draining for %.1fs before shutting down", drain_s
                )
                timer = threading.Timer(drain_s, super().handle_exit, (sig, None))
                timer.daemon = True
                timer.start()
                return
            super().handle_exit(sig, frame)

    return DrainingServer(config)


if __name__ == "__main__":
    sys.exit(main())
