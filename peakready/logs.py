"""Where drills and benchmarks send their logs (a file, never over the progress display)."""

from __future__ import annotations

import logging
from pathlib import Path


def log_to(path: Path) -> None:
    """chaoslib and peakready logs go to ``path``, not over the progress display."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("chaostoolkit", "peakready"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
