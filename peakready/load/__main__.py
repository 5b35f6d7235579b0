"""``python -m peakready.load``: the load generator process (see generator.py).

- ``--run-dir DIR --settings JSON``: one process sends the load (a local runner);
- with ``--workers N`` and/or ``--remote-workers M``: a Locust master on ``--bind``,
  starting N local worker processes and waiting for M more;
- ``worker --master HOST:PORT --run-dir DIR``: a worker (``peakready load worker``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from peakready.errors import PeakreadyError


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args_list[:1] == ["worker"]:
        from peakready.load import generator  # imports Locust: patches for gevent

        return generator.main(args_list[1:])
    parser = argparse.ArgumentParser(prog="python -m peakready.load")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--settings", required=True, help="LoadSettings as JSON")
    parser.add_argument("--workers", type=int, default=0, help="local worker processes")
    parser.add_argument("--remote-workers", type=int, default=0, help="workers to wait for")
    parser.add_argument("--bind", default="127.0.0.1:5557", help="the master's HOST:PORT")
    args = parser.parse_args(args_list)
    # Imported here: after gevent's monkey-patching (Locust), as Locust requires.
    from peakready.load.settings import LoadSettings

    try:
        settings = LoadSettings(**json.loads(args.settings))
    except (PeakreadyError, TypeError, ValueError) as exc:
        print(f"load: error: {exc}", file=sys.stderr)
        return 2
    from peakready.load import generator  # imports Locust: patches for gevent

    if args.workers or args.remote_workers:
        return generator.run_master(
            settings, args.run_dir, args.bind, args.workers, args.remote_workers
        )
    return generator.run(settings, args.run_dir)


if __name__ == "__main__":
    sys.exit(main())
