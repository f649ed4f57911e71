"""The fork pool: each job runs in a fresh child process. CPU-bound jobs run in parallel,
and a runaway job is killed when its _timeout passes while the others complete.

    python examples/fork_pool/main.py
"""

from __future__ import annotations

import logging

import crunch
from database import database_url

from pgwerk import Werk, Worker


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with database_url() as dsn, Werk(dsn, handlers=["crunch"]) as app:
        jobs = [app.enqueue(crunch.count_primes, 2_000_000 + n, _timeout=60) for n in range(3)]
        runaway = app.enqueue(crunch.derive_key, "secret", 2_000_000_000, _timeout=1)
        print("running 3 prime counts and 1 runaway key derivation (timeout 1s) on the fork pool")

        Worker(app, pool="fork", concurrency=4, burst=True, timeout_grace=1.0).run()

        for job in [*jobs, runaway]:
            assert job is not None
            done = app.get_job(job.id)
            error = (done.error or "").strip().splitlines()
            outcome = repr(done.result) if done.error is None else error[0]
            print(f"job {done.id:>3} {done.function:<20} {done.status.value:<9} {outcome}")


if __name__ == "__main__":
    main()
