"""``python -m peakready.backoffice [--env-file PATH]``: run one back-office worker."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from peakready.errors import PeakreadyError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peakready.backoffice")
    parser.add_argument("--env-file", type=Path, help="PEAKREADY_BACKOFFICE_* settings (0600)")
    args = parser.parse_args(argv)
    # Imported here: a bad setting prints before pika and psycopg load.
    from peakready.backoffice.settings import load_settings

    try:
        if args.env_file is not None and not args.env_file.is_file():
            raise PeakreadyError(f"--env-file: {args.env_file} is not a file")
        settings = load_settings(args.env_file)
    except PeakreadyError as exc:
        for line in exc.lines:
            print(f"peakready-backoffice: error: {line}", file=sys.stderr)
        return exc.exit_code

    from peakready.backoffice.server import serve
    from peakready.backoffice.worker import Metrics, Worker

    level = settings.log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = Worker(settings, Metrics())
    try:
        server = serve(settings, worker)
    except OSError as exc:
        print(
            f"peakready-backoffice: error: cannot listen on {settings.host}:{settings.port}: "
            f"{exc.strerror}",
            file=sys.stderr,
        )
        return 1
    stopping = threading.Event()
    consumer = threading.Thread(target=worker.run, args=(stopping,), name="consumer")

    def stop(sig: int, frame: FrameType | None) -> None:
        stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer.start()
    if settings.cloudwatch_region:
        import boto3

        from peakready.backoffice.worker import CloudWatchPublisher

        client = boto3.client("cloudwatch", region_name=settings.cloudwatch_region)
        publisher = CloudWatchPublisher(worker.metrics, settings.stack, client)
        threading.Thread(target=publisher.run, args=(stopping,), daemon=True).start()
    server.serve_forever(poll_interval=0.5)
    consumer.join(5.0)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
