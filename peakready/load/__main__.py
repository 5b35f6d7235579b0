"""``python -m peakready.load``: the load generator process (see generator.py)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from peakready.errors import PeakreadyError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peakready.load")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--settings", required=True, help="LoadSettings as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Imported here: after gevent's monkey-patching (Locust), as Locust requires.
    from peakready.load.settings import LoadSettings

    try:
        settings = LoadSettings(**json.loads(args.settings))
    except (PeakreadyError, TypeError, ValueError) as exc:
        print(f"load: error: {exc}", file=sys.stderr)
        return 2
    from peakready.load.generator import run  # imports Locust: patches for gevent

    return run(settings, args.run_dir)


if __name__ == "__main__":
    sys.exit(main())
