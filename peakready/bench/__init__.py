"""``make bench``: the DESIGN §8 figures, measured on the lab and printed (bench/README)."""

from peakready.bench.suite import PHASES, SCENARIOS, Options, run

__all__ = ["PHASES", "SCENARIOS", "Options", "run"]
