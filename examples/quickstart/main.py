"""pgwerk quickstart: enqueue a few jobs, run a worker until the queue is empty, print what
each job returned.

    python examples/quickstart/main.py

Uses $PGWERK_DSN when set, otherwise an embedded PostgreSQL (pip install 'pgwerk[embedded]').
"""

from __future__ import annotations

import logging
import threading

import tasks
from database import database_url

from pgwerk import Retry, Werk, Worker


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # handlers=: the worker runs only functions of the tasks module, whatever a job row says.
    with database_url() as dsn, Werk(dsn, handlers=["tasks"]) as app:
        jobs = [
            app.enqueue(tasks.add, 2, 3),
            app.enqueue(tasks.greet, name="world", _queue="default", _priority=10),
            *(app.enqueue(tasks.slow_square, n) for n in range(4)),
            app.enqueue(tasks.divide, 1, 0, _retry=Retry(max=2)),
        ]
        print(f"enqueued {len(jobs)} jobs; running a worker until the queue is empty")

        # burst=True: return once there is nothing left to do (a service runs without it,
        # or runs `pgwerk-worker tasks_module:app`).
        Worker(app, concurrency=4, burst=True).run()

        for job in jobs:
            assert job is not None
            done = app.get_job(job.id)
            outcome = repr(done.result) if done.error is None else done.error.splitlines()[-1]
            print(f"job {done.id:>3} {done.function:<18} {done.status.value:<9} {outcome}")

        # apply() enqueues and blocks until a worker has run the job: start one in a thread.
        worker = Worker(app, concurrency=1)
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            print("apply:", app.apply(tasks.add, 20, 22, timeout=30))
        finally:
            worker.stop()
            thread.join()


if __name__ == "__main__":
    main()
