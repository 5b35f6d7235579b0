"""``python -m peakready.app``: serve one storefront instance with uvicorn (1 worker)."""

from __future__ import annotations

import logging
import sys

from peakready.errors import PeakreadyError


def main() -> int:
    from peakready.app.settings import load_settings

    try:
        settings = load_settings()
    except PeakreadyError as exc:
        for line in exc.lines:
            print(f"peakready-app: error: {line}", file=sys.stderr)
        return exc.exit_code

    import uvicorn

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
        settings = settings.model_copy(update={"migrate": False})
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
