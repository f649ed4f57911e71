"""One pgwerk worker, as the benchmarks run it in a subprocess of its own.

    python -m benchmarks.worker_proc --dsn DSN --schema S [--concurrency 8] [--pool thread]
        [--prefetch N|auto] [--burst] [--result-ttl SECS] [--sweep-interval SECS] [--src TREE]

Prints one JSON line (pid, where pgwerk was imported from) once the app is connected, then
runs until SIGTERM (or, with ``--burst``, until the queue is empty).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker_proc")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pool", default="thread")
    parser.add_argument("--prefetch", default=None,
                        help="an int or 'auto'; default: the library's default")
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--application-name", default="pgwerk-bench")
    parser.add_argument("--result-ttl", type=float, default=None)
    parser.add_argument("--sweep-interval", type=float, default=None)
    parser.add_argument("--poll-interval", type=float, default=None)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--src", default=None, help="import pgwerk from this source tree")
    parser.add_argument("--trace", action="store_true",
                        help="time every statement the worker runs (by name) and report it")
    args = parser.parse_args(argv)

    from benchmarks._common import use_source

    use_source(args.src)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s worker %(levelname)s %(name)s: %(message)s")

    import pgwerk
    from pgwerk import Werk, Worker

    traced = _trace_statements() if args.trace else None
    options = {"schema": args.schema, "application_name": args.application_name}
    if args.result_ttl is not None:
        options["result_ttl"] = args.result_ttl
    app = Werk(args.dsn, **options).connect()
    worker_options = {}
    if args.sweep_interval is not None:
        worker_options["sweep_interval"] = args.sweep_interval
    if args.poll_interval is not None:
        worker_options["poll_interval"] = args.poll_interval
    if args.prefetch is not None:
        worker_options["prefetch"] = int(args.prefetch) if args.prefetch.isdigit() \
            else args.prefetch
    worker = Worker(app, queues=["default"], concurrency=args.concurrency, pool=args.pool,
                    burst=args.burst, **worker_options)
    print(json.dumps({"pid": os.getpid(), "pgwerk": os.path.dirname(pgwerk.__file__)}),
          flush=True)
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    try:
        worker.run()
    finally:
        app.close()
        after = resource.getrusage(resource.RUSAGE_SELF)
        # CPU this process spent from start-up done to exit (includes fork children only
        # once they are waited for, i.e. the fork pool's children are in RUSAGE_CHILDREN).
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(json.dumps({
            "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
            "children_cpu_s": children.ru_utime + children.ru_stime,
            "wall_s": time.monotonic() - started, "processed": worker.processed,
            **({"statements": traced} if traced is not None else {}),
        }), flush=True)


def _trace_statements() -> dict[str, list[float]]:
    """Wrap ``Database.fetch`` to add up, per statement name, calls and seconds."""
    import threading

    from pgwerk.store.connections import Database

    totals: dict[str, list[float]] = {}
    lock = threading.Lock()
    fetch = Database.fetch

    def timed(self, what, query, params=None, prepare=False):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return fetch(self, what, query, params, prepare)
        finally:
            took = time.perf_counter() - started
            with lock:
                entry = totals.setdefault(what, [0, 0.0])
                entry[0] += 1
                entry[1] += took

    Database.fetch = timed  # type: ignore[method-assign]
    return totals


if __name__ == "__main__":
    main()
