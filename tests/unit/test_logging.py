"""The log formatters: job fields in JSON, and a failed job's traceback only when asked
for, without pgwerk's own frames."""

from __future__ import annotations

import io
import json
import logging
import os

import pgwerk
from pgwerk._logging import configure_logging, without_own_frames

OWN = os.path.join(os.path.dirname(pgwerk.__file__), "_execute.py")
TRACEBACK = (
    "Traceback (most recent call last):\n"
    f'  File "{OWN}", line 180, in execute\n'
    "    value = call_handler(func, ctx)\n"
    "            ^^^^^^^^^^^^^^^^^^^^^^^\n"
    f'  File "{OWN}", line 140, in call_handler\n'
    "    result = func(*args, **job.kwargs)\n"
    '  File "/srv/app/tasks.py", line 12, in send\n'
    "    raise ValueError('no such user')\n"
    "ValueError: no such user\n"
)


def test_without_own_frames__keeps_the_handlers_frames_and_the_exception() -> None:
    assert without_own_frames(TRACEBACK) == (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/tasks.py", line 12, in send\n'
        "    raise ValueError('no such user')\n"
        "ValueError: no such user"
    )


def _emit(fmt: str, tracebacks: bool, **extra: object) -> str:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", fmt, stream, tracebacks=tracebacks)
    try:
        logging.getLogger("pgwerk.worker").warning("job 7 failed", extra=extra)
    finally:
        logging.getLogger().removeHandler(handler)
    return stream.getvalue()


def test_json__job_lines_carry_attempt_duration_and_worker_id() -> None:
    line = json.loads(_emit("json", False, job_id=7, function="app.send", queue="q",
                            attempt=2, duration=0.25, worker_id="host.1.ab",
                            job_error=TRACEBACK))
    assert {k: line[k] for k in ("job_id", "function", "queue", "attempt", "duration",
                                 "worker_id")} == {
        "job_id": 7, "function": "app.send", "queue": "q", "attempt": 2, "duration": 0.25,
        "worker_id": "host.1.ab"}
    assert "traceback" not in line


def test_tracebacks__json_and_text_show_the_failed_jobs_traceback_when_asked() -> None:
    line = json.loads(_emit("json", True, job_id=7, job_error=TRACEBACK))
    assert line["traceback"].endswith("ValueError: no such user")
    assert "_execute.py" not in line["traceback"]
    text = _emit("text", True, job_id=7, function="f", queue="q", job_error=TRACEBACK)
    first, *rest = text.rstrip().splitlines()
    assert first.endswith("job 7 failed [job=7 f@q]")
    assert rest[-1] == "ValueError: no such user" and "_execute.py" not in text
    assert "ValueError" not in _emit("text", False, job_id=7, job_error=TRACEBACK)
