"""``python -m peakready.bench [--runs N] [--scenario NAME]… [--skip PHASE]…`` (``make bench``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from peakready.bench.suite import PHASES, SCENARIOS, Options, run
from peakready.errors import PeakreadyError


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m peakready.bench", description=__doc__)
    parser.add_argument("--stack", default="dev", help="stack whose lab is measured (dev)")
    parser.add_argument("--runs", type=int, default=3, help="runs per failover scenario (3)")
    parser.add_argument(
        "--scenario",
        action="append",
        dest="scenarios",
        metavar="NAME",
        help=f"failover scenario to repeat (repeatable; default all: {', '.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="PHASE",
        help=f"phase to leave out (repeatable): {', '.join(PHASES)}",
    )
    parser.add_argument("--out", type=Path, default=Options().out, help="results file")
    parser.add_argument("--fresh", action="store_true", help="purge the lab's data first")
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab running")
    parser.add_argument("--budget-min", type=float, default=25.0, help="time budget (25)")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 50:
        raise PeakreadyError(f"--runs {args.runs}: expected 1..50")
    for name in args.scenarios or []:
        if name not in SCENARIOS:
            raise PeakreadyError(f"--scenario {name!r}: expected one of {', '.join(SCENARIOS)}")
    for phase in args.skip:
        if phase not in PHASES:
            raise PeakreadyError(f"--skip {phase!r}: expected one of {', '.join(PHASES)}")
    if args.budget_min <= 0:
        raise PeakreadyError(f"--budget-min {args.budget_min}: expected a positive number")
    return Options(
        stack=args.stack,
        runs=args.runs,
        scenarios=list(dict.fromkeys(args.scenarios or SCENARIOS)),
        skip=set(args.skip),
        out=args.out,
        fresh=args.fresh,
        keep_lab=args.keep_lab,
        budget_s=args.budget_min * 60,
    )


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse(argv))
    except PeakreadyError as exc:
        for line in exc.lines:
            print(f"bench: error: {line}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
