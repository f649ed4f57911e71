"""A claim whose answer never reached the worker (the connection dropped after the commit)
leaves a job active under a live worker; the worker's heartbeat notices and puts it back."""

from __future__ import annotations

from pgwerk import JobStatus, Werk
from tests import jobs
from tests.helpers import eventually, query
from tests.worker_support import running_worker


def test_worker__puts_back_a_job_it_holds_in_the_database_but_never_received(app: Werk) -> None:
    job = app.enqueue(jobs.add, 1, 2, _queue="elsewhere")
    assert job is not None
    with running_worker(app, queues=["default"], heartbeat_interval=0.2) as worker:
        eventually(lambda: query(app, "SELECT 1 FROM {workers} WHERE id = %s", (worker.id,)))
        # What a claim whose answer was lost leaves behind: the row is this worker's.
        query(app, "UPDATE {jobs} SET status = 'active', attempts = 1, started_at = now(), "
                   "worker_id = %s WHERE id = %s", (worker.id, job.id))
        eventually(lambda: app.get_job(job.id).status is JobStatus.Queued, timeout=10)
    runs = app.get_executions(job.id)
    assert [r.outcome for r in runs] == ["interrupted"]
