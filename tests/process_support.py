"""Looking at processes from tests: is a pid gone, which children does a process have.

An orphan that was killed stays a zombie until its new parent reaps it (and PID 1 of a
container may never do so): a zombie counts as gone, it runs no code.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def process_state(pid: int) -> str | None:
    """The one-letter state from ``/proc/<pid>/stat`` (``R``, ``S``, ``Z`` ...), or None
    when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    return stat.rsplit(")", 1)[1].split()[0]


def process_gone(pid: int) -> bool:
    """True when ``pid`` runs no code any more: no such process, or a zombie."""
    return process_state(pid) in (None, "Z", "X")


def children_of(pid: int) -> list[int]:
    """Pids of the live (not zombie) children of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def kill_quietly(pids: list[int]) -> None:
    """SIGKILL what may be left over after a failed test."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
