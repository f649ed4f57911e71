"""``worker_process.py`` with one part of the worker broken on purpose, to show that a
worker notices a dead part and exits non-zero instead of running on without it.

The config is that of ``worker_process.py`` plus ``fault``, a key of ``FAULTS``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from pgwerk._timeouts import DeadlineWatcher
from tests.acceptance import worker_process


def _runner_that_dies(self: DeadlineWatcher) -> None:
    time.sleep(0.5)
    raise RuntimeError("injected fault: the deadline watcher's thread dies")


FAULTS: dict[str, Callable[[], None]] = {
    # The thread that runs deadline actions when SIGALRM drives the watcher.
    "deadline-runner-dies": lambda: setattr(DeadlineWatcher, "_run_handed", _runner_that_dies),
}


if __name__ == "__main__":
    FAULTS[json.loads(sys.argv[1])["fault"]]()
    sys.exit(worker_process.main())
