"""pgBackRest as the drill uses it: run it as ``postgres``, read its repositories.

pgBackRest's own ``verify`` and ``info`` missed WAL gaps and truncated files on this
machine (LAB-NOTES), so this module also reads the repository itself: it checks that
every file a backup's manifest lists is there at its recorded size, and that the WAL
archive has no gap from a backup's start segment onwards.
"""

from __future__ import annotations

import configparser
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peakready.errors import PeakreadyError
from peakready.lab import pgbackrest as pgbackrest_cli
from peakready.lab.pgbackrest import Completed

SEGMENTS_PER_LOG = 0x100  # 16 MiB WAL segments: 256 per 4 GiB "log"
_SEGMENT_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(?:-[0-9a-f]{40})?(?:\.\w+)?$")


@dataclass(frozen=True)
class Segment:
    """A WAL segment name split into timeline and position."""

    timeline: int
    log: int
    seg: int

    @classmethod
    def parse(cls, name: str) -> Segment | None:
        match = _SEGMENT_RE.match(name)
        if not match:
            return None
        return cls(int(match.group(1), 16), int(match.group(2), 16), int(match.group(3), 16))

    @property
    def position(self) -> int:
        return self.log * SEGMENTS_PER_LOG + self.seg

    @property
    def name(self) -> str:
        return f"{self.timeline:08X}{self.log:08X}{self.seg:08X}"

    @staticmethod
    def name_at(timeline: int, position: int) -> str:
        log, seg = divmod(position, SEGMENTS_PER_LOG)
        return f"{timeline:08X}{log:08X}{seg:08X}"


@dataclass(frozen=True)
class BackupInfo:
    repo: int
    label: str
    type: str
    start: float
    stop: float
    archive_start: str
    archive_stop: str
    error: bool

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> BackupInfo:
        return cls(
            repo=int(item["database"]["repo-key"]),
            label=item["label"],
            type=item["type"],
            start=float(item["timestamp"]["start"]),
            stop=float(item["timestamp"]["stop"]),
            archive_start=item["archive"]["start"],
            archive_stop=item["archive"]["stop"],
            error=bool(item.get("error", False)),
        )


@dataclass(frozen=True)
class ArchiveCheck:
    """What the WAL archive of one repository holds from a backup's start onwards."""

    first: str
    last: str | None
    missing: list[str] = field(default_factory=list)
    last_contiguous: str | None = None
    last_contiguous_mtime: float | None = None

    @property
    def ok(self) -> bool:
        return not self.missing and self.last is not None


class PgBackRest:
    """One stanza of a pgBackRest configuration file."""

    def __init__(self, config: Path, stanza: str, binary: str = "pgbackrest") -> None:
        self.config = Path(config)
        self.stanza = stanza
        self.binary = binary
        if not self.config.is_file():
            raise PeakreadyError(f"pgBackRest config {self.config}: no such file")
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.read(self.config)
        self._options: dict[str, str] = {}
        for section in ("global", stanza):
            if parser.has_section(section):
                self._options.update(parser.items(section))
        self.repo_paths: dict[int, Path] = {}
        for key, value in self._options.items():
            match = re.fullmatch(r"repo(\d+)-path", key)
            if match:
                self.repo_paths[int(match.group(1))] = Path(value)
        if not self.repo_paths:
            raise PeakreadyError(f"pgBackRest config {self.config}: no repoN-path set")

    @property
    def repos(self) -> list[int]:
        return sorted(self.repo_paths)

    def run(self, *args: str, repo: int | None = None, timeout: float = 600) -> Completed:
        """Run ``pgbackrest --config … --stanza … [--repo=N] args`` as postgres."""
        return pgbackrest_cli.run(
            self.binary, self.config, self.stanza, *args, repo=repo, timeout=timeout
        )

    # ----------------------------------------------------------------- reading

    def info(self) -> dict[str, Any]:
        done = self.run("--output=json", "info", timeout=60)
        if done.returncode != 0:
            raise PeakreadyError(f"pgbackrest info failed: {done.error_line}")
        stanzas = json.loads(done.stdout or "[]")
        for item in stanzas:
            if item.get("name") == self.stanza:
                return dict(item)
        raise PeakreadyError(f"pgbackrest info: stanza {self.stanza!r} not found")

    def backups(self, repo: int | None = None) -> list[BackupInfo]:
        """Backups, oldest first; only ``repo``'s when given."""
        found = [BackupInfo.from_json(b) for b in self.info().get("backup", [])]
        return [b for b in found if repo is None or b.repo == repo]

    def archive_dir(self, repo: int) -> Path:
        return self.repo_paths[repo] / "archive" / self.stanza

    def backup_dir(self, repo: int) -> Path:
        return self.repo_paths[repo] / "backup" / self.stanza

    def archived_segments(self, repo: int) -> dict[int, tuple[str, float]]:
        """WAL position → (file name, mtime) of every segment in ``repo``'s archive."""
        found: dict[int, tuple[str, float]] = {}
        root = self.archive_dir(repo)
        if not root.is_dir():
            return found
        for archive_id in root.iterdir():
            if not archive_id.is_dir():
                continue
            for folder in archive_id.iterdir():
                if not folder.is_dir():
                    continue
                for entry in folder.iterdir():
                    if entry.name.endswith((".backup", ".history")) or ".partial" in entry.name:
                        continue
                    segment = Segment.parse(entry.name)
                    if segment is None:
                        continue
                    mtime = entry.stat().st_mtime
                    known = found.get(segment.position)
                    # after a failover both timelines may hold a position: keep the newest
                    if known is None or mtime > known[1]:
                        found[segment.position] = (entry.name, mtime)
        return found

    def check_archive(self, repo: int, first: str, last: str | None = None) -> ArchiveCheck:
        """Is every segment from ``first`` to ``last`` (default: the newest) archived?"""
        start = Segment.parse(first)
        if start is None:
            raise ValueError(f"not a WAL segment name: {first}")
        segments = self.archived_segments(repo)
        end_segment = Segment.parse(last) if last else None
        end = end_segment.position if end_segment else max(segments, default=start.position - 1)
        missing: list[str] = []
        last_contiguous: str | None = None
        last_mtime: float | None = None
        for position in range(start.position, end + 1):
            if position in segments:
                if not missing:
                    name, mtime = segments[position]
                    last_contiguous, last_mtime = name[:24], mtime
            else:
                missing.append(Segment.name_at(start.timeline, position))
        after = [p for p in segments if p >= start.position]
        newest = segments[max(after)] if after else None
        return ArchiveCheck(
            first=first,
            last=newest[0][:24] if newest else None,
            missing=missing,
            last_contiguous=last_contiguous,
            last_contiguous_mtime=last_mtime,
        )

    def check_backup_files(self, repo: int, label: str) -> list[str]:
        """Problems with the files of backup ``label`` in ``repo`` (empty when whole).

        Every file the manifest lists must exist in the backup that holds it (itself,
        or the one its ``reference`` names) with the repository size the manifest
        recorded; a truncated or missing file is named.
        """
        problems: list[str] = []
        manifest_path = self.backup_dir(repo) / label / "backup.manifest"
        if not manifest_path.is_file():
            return [f"backup {label}: backup.manifest missing"]
        manifest = configparser.ConfigParser(interpolation=None, strict=False)
        manifest.optionxform = str  # type: ignore[assignment,method-assign]
        manifest.read(manifest_path)
        compress = json.loads(
            manifest.get("backup:option", "option-compress-type", fallback='"none"')
        )
        suffix = {"none": "", "gz": ".gz", "lz4": ".lz4", "zst": ".zst", "bz2": ".bz2"}.get(
            compress, f".{compress}"
        )
        if not manifest.has_section("target:file"):
            return [f"backup {label}: manifest lists no files"]
        for name, raw in manifest.items("target:file"):
            entry = json.loads(raw)
            holder = entry.get("reference", label)
            if "bni" in entry:  # bundled: the bundle must reach past this file's bytes
                bundle = self.backup_dir(repo) / holder / "bundle" / str(entry["bni"])
                needed = int(entry.get("bno", 0)) + int(entry.get("repo-size", 0))
                size = bundle.stat().st_size if bundle.is_file() else -1
                if size < needed:
                    problems.append(
                        f"backup {holder}: bundle/{entry['bni']} holding {name} is "
                        + ("missing" if size < 0 else f"truncated ({size} of {needed} bytes)")
                    )
                continue
            path = self.backup_dir(repo) / holder / f"{name}{suffix}"
            expected = entry.get("repo-size", entry.get("size"))
            if not path.is_file():
                if int(entry.get("size", 0)) == 0 and not path.exists():
                    continue  # pgBackRest may not store empty files
                problems.append(f"backup {holder}: {name}{suffix} missing")
                continue
            actual = path.stat().st_size
            if expected is not None and actual != int(expected):
                problems.append(
                    f"backup {holder}: {name}{suffix} truncated ({actual} of {expected} bytes)"
                )
        return problems
