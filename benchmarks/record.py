"""The one record format of every benchmark: where, when, on which code and under what load it ran.

Every JSON row or file a script in ``benchmarks/`` writes gets these fields (the script's own fields
stay as they are)::

    machine      "2-core Intel(R) Xeon(R) Processor (avx2 avx512 amx)": cores, CPU model name, ISA summary
    cpu          the CPU's model name from /proc/cpuinfo ("unknown" elsewhere)
    cores        logical CPUs the OS reports
    isa          which of avx2 / avx512 / amx the CPU flags show
    torch        torch.__version__
    commit       the short git commit of the checkout, "+dirty" when tracked files differ from it
    date         ISO 8601, UTC, when the record was written
    load_before  1-minute load average when the measurement began
    load_after   1-minute load average when it ended
    command      the command line that produced the record

Timings compare only within one machine kind, and load shows whether the machine was idle; so every
figure carries both. Use::

    sitting = record.start(__file__, argv)  # before the measurement: command, machine, commit, load_before
    ...                                     # measure
    row = sitting.stamp(row)                # after it: the fields above added to the row
    sitting = sitting.again()               # the next row of the same run: load_before taken anew
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from crevnet.models.device import cpu_name

__all__ = ["FIELDS", "Sitting", "git_commit", "isa_flags", "load_1min", "machine", "start"]

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("machine", "cpu", "cores", "isa", "torch", "commit", "date", "load_before", "load_after", "command")
ISA = ("avx2", "avx512", "amx")


def isa_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """Which of avx2 / avx512 (any avx512* flag) / amx (any amx* flag) the first CPU's flags list."""
    try:
        with Path(cpuinfo).open() as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return []
    return [name for name in ISA if any(flag.startswith(name) for flag in flags)]


def machine(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, object]:
    """``machine``, ``cpu``, ``cores`` and ``isa`` of this machine."""
    cpu, cores, isa = cpu_name(cpuinfo), os.cpu_count() or 0, isa_flags(cpuinfo)
    summary = f"{cores}-core {cpu}" + (f" ({' '.join(isa)})" if isa else "")
    return {"machine": summary, "cpu": cpu, "cores": cores, "isa": isa}


def git_commit(repo: str | Path = REPO) -> str:
    """The short commit of ``repo``'s checkout, ``+dirty`` when a tracked file differs; ``"unknown"``
    outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def load_1min() -> float | None:
    """The 1-minute load average, ``None`` where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def command_line(script: str | Path, argv: list[str] | None) -> str:
    """``python <script> <args>``, the script relative to the repository when it is inside it."""
    path = Path(script).resolve()
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    return shlex.join(["python", str(shown), *args])


@dataclass(frozen=True)
class Sitting:
    """One measurement under way: what ran, on which machine and code, and the load when it began."""

    command: str
    load_before: float | None
    host: dict[str, object] = field(default_factory=machine)
    commit: str = "unknown"

    def stamp(self, row: dict[str, object], *, load_after: float | None = None) -> dict[str, object]:
        """``row`` with the record fields added (the row's own fields first, then these; a field the row
        already has keeps its place and takes the recorded value). ``load_after`` is taken now unless
        given (a script whose measurement ended before its scoring passes the load then)."""
        return {
            **row,
            **self.host,
            "torch": torch.__version__,
            "commit": self.commit,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "load_before": self.load_before,
            "load_after": load_1min() if load_after is None else load_after,
            "command": self.command,
        }

    def again(self) -> Sitting:
        """The next measurement of the same command: the same machine and commit, the load now."""
        return replace(self, load_before=load_1min())


def start(script: str | Path, argv: list[str] | None = None, *, repo: str | Path = REPO) -> Sitting:
    """Begin a record: the command line (``argv`` as passed to the script's ``main``, else ``sys.argv``),
    the machine, ``repo``'s commit and the load now."""
    return Sitting(command_line(script, argv), load_1min(), machine(), git_commit(repo))
