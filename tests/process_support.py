"""Looking at processes from tests: is a pid gone, which children does a process have.

An orphan that was killed stays a zombie until its new parent reaps it (and PID 1 of a
container may never do so): a zombie counts as gone, it runs no code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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


def ran_alone(request: pytest.FixtureRequest, timeout: float = 100.0) -> bool:
    """Run the calling test again, alone, in a fresh pytest process, and return True once
    it passed there; inside that process return False so the test's body runs.

    For tests that provoke what may poison a process for good (threads interrupted inside
    library locks, threads abandoned while they still run): whatever they leave behind
    dies with their own process instead of hanging the tests that come after them.
    """
    node = request.node.nodeid
    if os.environ.get("PGWERK_TEST_ALONE") == node:
        return False
    env = {**os.environ, "PGWERK_TEST_ALONE": node}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", node, "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-W", "ignore::pytest.PytestUnraisableExceptionWarning"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{node} failed in its own process:\n{result.stdout}\n{result.stderr}")
    return True
