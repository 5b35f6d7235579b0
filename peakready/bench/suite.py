"""``make bench`` (``python -m peakready.bench``): the figures behind peakready's verdicts.

One lab for everything, in this order: the offline preview of the prod stack (timed),
``peakready lab up`` from down (timed), storefront throughput within the latency
objective against the database's own ceiling, the whole drill suite once (timed; its
runs count as run 1 of each failover scenario), then runs 2…N of each failover scenario,
interleaved so that drift in the machine's load spreads evenly. ``bench/results.json``
is rewritten after every phase; the Markdown table is printed at the end.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import peakready.bench.failover as failover
import peakready.bench.report as report
from peakready.bench.failover import SCENARIOS, RunFigures
from peakready.bench.walltime import Timed, time_command
from peakready.errors import PeakreadyError
from peakready.lab.health import LabStatus
from peakready.lab.health import status as lab_status
from peakready.logs import log_to
from peakready.topology import REPO_ROOT, Topology

PHASES = (
    "preview",
    "lab-up",
    "throughput",
    "drill",
    "failover",
    "pipeline",  # before peak: its cost is measured with both groups at their lab sizes
    "peak",
    "monitoring",
)
BENCH_DIR = REPO_ROOT / "bench"


#: Seconds over which the monitoring tier's CPU is measured: 10 scrape and rule rounds.
MONITORING_IDLE_S = 20.0

#: Runs of peak-surge at 2x (DESIGN §8: the scale-out reaction is the median of >= 3).
PEAK_RUNS = 3


@dataclass
class Options:
    stack: str = "dev"
    runs: int = 3
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    skip: set[str] = field(default_factory=set)
    out: Path = BENCH_DIR / "results.json"
    fresh: bool = False
    keep_lab: bool = False
    budget_s: float = 1500.0


def run(options: Options, console: Console | None = None) -> int:
    """Run the bench; 0 when it completed (whatever the figures), 130 on Ctrl-C."""
    console = console or Console()
    topology = Topology.load(options.stack)
    work = options.out.resolve().parent
    work.mkdir(parents=True, exist_ok=True)
    log_to(work / "bench.log")
    bench = _Bench(options, topology, work, console)
    try:
        bench.all()
    except KeyboardInterrupt:
        bench.note("interrupted (Ctrl-C): partial results")
        bench.save()
        console.print("[yellow]bench interrupted: partial results written[/]")
        return 130
    finally:
        bench.stop_lab()
    bench.save()
    print(report.markdown(bench.results), flush=True)
    console.print(f"results: {options.out}")
    return 0


class _Bench:
    def __init__(self, options: Options, topology: Topology, work: Path, console: Console) -> None:
        self.o = options
        self.topology = topology
        self.work = work
        self.console = console
        self.t0 = time.monotonic()
        self.started_lab = False
        self.results: dict[str, Any] = {
            "format": report.FORMAT,
            "stack": options.stack,
            "started": _now(),
            "finished": None,
            "runs": options.runs,
            "host": {"cpus": os.cpu_count(), "loadavg_start": _loadavg()},
            "failover": {},
            "storefront": {},
            "peak": {},
            "wall_s": {},
            "notes": [],
        }
        self.runs: dict[str, list[RunFigures]] = {s: [] for s in options.scenarios}

    def all(self) -> None:
        failover_runs = self.o.runs * len(self.o.scenarios) if "failover" in self._todo() else 0
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            phases = progress.add_task("bench", total=len(self._todo()))
            step = progress.add_task("", total=None)
            runs = progress.add_task("failover runs", total=failover_runs or 1, visible=False)

            def say(text: str) -> None:
                progress.update(step, description=text)

            for phase in PHASES:
                if phase not in self._todo():
                    if phase == "lab-up":
                        self._ensure_lab(say)
                    continue
                progress.update(phases, description=f"bench: {phase}")
                if phase == "failover":
                    progress.update(runs, visible=True)
                    self._failover(say, lambda: progress.advance(runs))
                else:
                    getattr(self, "_" + phase.replace("-", "_"))(say)
                progress.advance(phases)
                self.save()
            progress.update(phases, description="bench: done")
            elapsed = time.monotonic() - self.t0
            say(f"{elapsed:.0f} s in all")
        if elapsed > self.o.budget_s:  # every phase counts, the last ones too
            self.note(f"bench took {elapsed:.0f} s, over the {self.o.budget_s:.0f} s budget")

    def _todo(self) -> list[str]:
        return [p for p in PHASES if p not in self.o.skip]

    # phases

    def _preview(self, say: Callable[[str], None]) -> None:
        say("peakready preview --stack prod")
        self._timed("preview_prod", ["preview", "--stack", "prod"], 300)

    def _lab_up(self, say: Callable[[str], None]) -> None:
        code, _ = lab_status(self.o.stack)
        if code != LabStatus.NOT_RUNNING or self.o.fresh:
            self._down(say, purge=self.o.fresh)
        cold = not (self._lab_dir() / "pg").exists()
        say(f"peakready lab up --stack {self.o.stack} ({'no data yet' if cold else 'data kept'})")
        timed = self._timed("lab_up", ["lab", "up", "--stack", self.o.stack], 600)
        self.results["wall_s"]["lab_up"]["cold"] = cold
        self.started_lab = True
        if timed.exit_code != 0:
            raise PeakreadyError(f"peakready lab up failed: see {timed.log}", exit_code=1)

    def _down(self, say: Callable[[str], None], purge: bool) -> None:
        """``peakready lab down`` until it reports the lab stopped (a slow exit under load
        leaves it "incomplete" once); at most three tries."""
        args = ["lab", "down", "--stack", self.o.stack] + (["--purge"] if purge else [])
        for attempt in range(1, 4):
            say(f"peakready {' '.join(args)} (try {attempt})")
            log = self.work / "logs" / f"lab-down-{attempt}.log"
            if time_command(args, log, 300).exit_code == 0:
                return
            time.sleep(5)
        raise PeakreadyError(f"peakready lab down failed 3 times: see {log}", exit_code=1)

    def _ensure_lab(self, say: Callable[[str], None]) -> None:
        from peakready.lab.start import up  # lazy: only when no lab runs yet

        code, _ = lab_status(self.o.stack)
        if code == LabStatus.NOT_RUNNING:
            say(f"starting the lab of stack {self.o.stack}")
            up(self.topology, Console(file=open(os.devnull, "w")))  # noqa: SIM115
            self.started_lab = True

    def _throughput(self, say: Callable[[str], None]) -> None:
        import peakready.bench.throughput as throughput  # lazy: psycopg, uvloop
        from peakready.lab.state import LabState

        measured = throughput.measure(LabState.load(self.o.stack), say)
        self.results["storefront"] = measured.as_dict()

    def _drill(self, say: Callable[[str], None]) -> None:
        say(f"peakready drill --target lab --stack {self.o.stack}")
        report_dir = self.work / "drill"
        args = ["drill", "--target", "lab", "--stack", self.o.stack, "--report-dir"]
        timed = self._timed("drill_suite", [*args, str(report_dir)], 1500)
        self.results["wall_s"]["drill_suite"]["report"] = str(report_dir / "report.html")
        if timed.exit_code not in (0, 1):
            self.note(f"drill suite exited {timed.exit_code}: its runs are not reused")
            return
        for name, figures in failover.from_drill(
            report_dir / "details.json", self.o.scenarios
        ).items():
            self.runs[name].append(figures)
        self._summarise()

    def _failover(self, say: Callable[[str], None], advance: Callable[[], None]) -> None:
        for name in self.o.scenarios:  # runs reused from the drill suite count
            for _ in self.runs[name][: self.o.runs]:
                advance()
        for round_ in range(self.o.runs):
            for name in self.o.scenarios:
                if len(self.runs[name]) > round_:
                    continue
                say(f"{name}: run {round_ + 1}/{self.o.runs}")
                run_dir = self.work / "runs" / name / f"run-{round_ + 1}"
                figures = failover.run_once(name, self.topology, run_dir)
                self.runs[name].append(figures)
                advance()
                self._summarise()
                self.save()

    def _peak(self, say: Callable[[str], None]) -> None:
        import peakready.bench.peak as peak  # lazy: chaoslib
        import peakready.bench.tiers as tiers

        runs = []
        for i in range(1, PEAK_RUNS + 1):
            say(f"peak-surge at {peak.SURGE:g}x: waiting for the groups at their lab sizes")
            if not tiers.wait_at_rest(self.topology):
                self.note("peak: the groups did not scale back in; scale-out not measured")
            say(f"peak-surge at {peak.SURGE:g}x: run {i}/{PEAK_RUNS}")
            runs.append(peak.surge_once(self.topology, self.work / "peak" / f"run-{i}"))
            self.results["peak"] = peak.summary(runs, self.topology.slo.order_p99_ms)
            self.save()
        self.results["peak"]["drill"] = peak.from_drill(self.work / "drill" / "details.json")

    def _pipeline(self, say: Callable[[str], None]) -> None:
        import peakready.bench.pipeline as pipeline  # lazy: the lab driver

        if self.topology.queue is None:
            self.note(f"pipeline: stack {self.o.stack} has no queue tier; not measured")
            return
        self.results["pipeline"] = pipeline.measure(self.topology, say)

    def _monitoring(self, say: Callable[[str], None]) -> None:
        """Last, once the bench's runs have grown Prometheus's series: its worst case."""
        import peakready.bench.tiers as tiers
        from peakready.lab.state import LabState

        say("monitoring: waiting for the app group and the workers at their lab sizes")
        if not tiers.wait_at_rest(self.topology):
            self.note("monitoring: the groups did not scale back in; measured as they were")
        say(f"monitoring: the tier's PSS and its CPU over {MONITORING_IDLE_S:g} s")
        state = LabState.load(self.o.stack)
        self.results["monitoring"] = tiers.cost(state, ("monitoring",), MONITORING_IDLE_S)

    # helpers

    def _timed(self, key: str, args: list[str], timeout_s: float) -> Timed:
        timed = time_command(args, self.work / "logs" / f"{key}.log", timeout_s)
        self.results["wall_s"][key] = timed.as_dict()
        return timed

    def _summarise(self) -> None:
        self.results["failover"] = {
            name: report.scenario_entry(runs, failover.rto_objective(self.topology, name))
            for name, runs in self.runs.items()
            if runs
        }

    def _lab_dir(self) -> Path:
        env = os.environ.get("PEAKREADY_LAB_DIR")
        return Path(env) if env else REPO_ROOT / ".lab" / self.o.stack

    def note(self, text: str) -> None:
        self.results["notes"].append(text)

    def save(self) -> None:
        self.results["finished"] = _now()
        self.results["host"]["loadavg_end"] = _loadavg()
        self.results["host"]["bench_wall_s"] = round(time.monotonic() - self.t0, 1)
        path = self.o.out
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.results, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def stop_lab(self) -> None:
        if self.started_lab and not self.o.keep_lab:
            time_command(
                ["lab", "down", "--stack", self.o.stack], self.work / "logs" / "down.log", 300
            )


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
