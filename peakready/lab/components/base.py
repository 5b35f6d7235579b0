"""The interface every lab component keeps (docs/internals.md, "Lab components").

A component is one server kind of the lab (etcd, Patroni/PostgreSQL, Redis, …). It says
which processes it runs per AZ and how to start them, which folders, ports, binaries,
endpoints and outputs it needs, what it provisions once it runs, how to tell it is
healthy, and in which wave ``lab down`` stops it. ``lab up``, ``lab status`` and
``lab down`` are loops over :data:`peakready.lab.assembly.COMPONENTS`, every component
module of this package in dependency order (``after``); nothing else in the lab names
a server kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from peakready.lab.plan import Plan
    from peakready.lab.state import LabState


class Wave(IntEnum):
    """When ``lab down`` stops a component's processes, earliest first."""

    #: Servers, the supervisor and its instances, all at once (20 s to finish).
    SERVERS = 0
    #: Children a server left behind (PostgreSQL under a stopped Patroni; 10 s).
    CHILDREN = 1
    #: The store the others release their locks in (etcd), last (1.5 s).
    STORE = 2


WAVE_TIMEOUT_S = {Wave.SERVERS: 20.0, Wave.CHILDREN: 10.0, Wave.STORE: 1.5}

Targets = list[tuple[int, str | None]]


@dataclass(frozen=True)
class ProcessSpec:
    """One server process ``up`` starts (recorded in ``state.json`` under ``name``)."""

    name: str
    kind: str
    az: str | None
    cmd: list[str]
    port: int
    #: The rendered configuration it reads: ``up`` starts it once that file exists.
    file: Path | None = None
    cwd: Path | None = None
    as_postgres: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: Added to its environment (recorded in ``state.json``: never a secret).
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """One line of the progress table (``up``) or of the health report (``status``)."""

    name: str
    ok: bool
    detail: str


class UpContext(Protocol):
    """What ``up`` offers a component while it starts (see ``peakready.lab.start``)."""

    plan: Plan
    state: LabState
    secrets: dict[str, str]
    #: Facts components publish for the ones after them (``"etcd"``, ``"db_leader"``, …).
    facts: dict[str, Any]

    def start(self, spec: ProcessSpec) -> int: ...

    def started(self, name: str) -> bool: ...

    def launch(self, job: str, fn: Callable[[], Any]) -> None: ...

    def job_done(self, job: str) -> bool: ...

    def job_result(self, job: str) -> Any: ...


class Component:
    """Defaults shared by every component; override what differs."""

    #: Short name, also the ``kind`` of its processes in ``state.json``.
    kind: ClassVar[str]
    #: Ansible role under ``playbooks/roles`` that renders its files (None: no files).
    role: ClassVar[str | None] = None
    #: Whether the role runs on the regional host (else once per AZ host).
    regional: ClassVar[bool] = False
    #: Binary name → where it comes from when it is missing (named in the error).
    binaries: ClassVar[dict[str, str]] = {}
    #: Secrets (keys of ``secrets.json``) this component needs generated.
    secret_keys: ClassVar[tuple[str, ...]] = ()
    #: Kinds of the components it needs running first (the order of ``up``).
    after: ClassVar[tuple[str, ...]] = ()
    wave: ClassVar[Wave] = Wave.SERVERS

    # ----------------------------------------------------------------- plan

    def processes(self, plan: Plan) -> list[ProcessSpec]:
        """The processes ``up`` starts for this component (none by default)."""
        return []

    def rendered_files(self, plan: Plan) -> list[Path]:
        """Files its role renders; ``up`` removes them first, so one that exists is new."""
        return [spec.file for spec in self.processes(plan) if spec.file is not None]

    def ports(self, plan: Plan) -> dict[int, str]:
        """Port → what listens there, checked free before ``up`` starts anything."""
        return {}

    def directories(self, plan: Plan) -> list[tuple[Path, str, int]]:
        """``(path, owner, mode)`` of the folders it needs, made before rendering."""
        return []

    def endpoints(self, plan: Plan) -> dict[str, Any]:
        """Its part of ``state.json``'s ``endpoints``."""
        return {}

    def outputs(self, plan: Plan, facts: dict[str, Any]) -> dict[str, Any]:
        """Its part of the DESIGN §3 outputs (``facts``: what ``up`` learnt, if anything)."""
        return {}

    def ansible_vars(self, plan: Plan, secrets: dict[str, str]) -> dict[str, Any]:
        """Variables its role reads on every host (secrets go to a 0600 file)."""
        return {}

    def host_vars(self, plan: Plan, i: int) -> dict[str, Any]:
        """Variables its role reads on AZ ``i``'s host."""
        return {}

    # ----------------------------------------------------------------- up

    def progress_rows(self) -> list[str]:
        """The progress-table rows it reports, in order (shown as waiting at first)."""
        return []

    def step(self, ctx: UpContext) -> list[Row]:
        """One tick of ``up``: start what can start, launch what can be provisioned,
        report progress. Called every 0.25 s until every row of every component is ok.

        The default starts each process whose rendered file exists and that
        :meth:`can_start`.
        """
        for spec in self.processes(ctx.plan):
            if ctx.started(spec.name) or (spec.file is not None and not spec.file.exists()):
                continue
            if self.can_start(ctx, spec):
                ctx.start(spec)
        return []

    def can_start(self, ctx: UpContext, spec: ProcessSpec) -> bool:
        return True

    # ----------------------------------------------------------------- status

    def health(self, state: LabState, outputs: dict[str, Any]) -> list[Row]:
        """Health rows of ``lab status`` (bounded probes); may refresh live ``outputs``."""
        return []

    # ----------------------------------------------------------------- down

    def stop_targets(self, state: LabState, wave: Wave) -> Targets:
        """``(pid, data_dir)`` to stop in ``wave``: its recorded processes by default."""
        if wave != self.wave:
            return []
        return [(int(e["pid"]), e.get("data_dir")) for e in state.by_kind(self.kind)]
