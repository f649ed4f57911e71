"""Raw-SQL ceilings: what psycopg alone gets from the same server for the same shapes of
work, with no queue library in between. Each runs in a fresh schema of its own.

- ``raw_insert_single``: one-row INSERT (autocommit: one commit each) into a table with a
  payload column like pgwerk's.
- ``raw_insert_multi``: the same rows, one multi-row INSERT per chunk.
- ``raw_claim_100``: ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 100)``
  that claims 100 rows and marks them done in one statement, until the table is empty.
- ``raw_claim_one``: the same, one row per statement.
- ``raw_latency``: a listener process LISTENs; for each row the client commits INSERT +
  NOTIFY in one statement; the listener wakes, claims the row and notes the time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from psycopg import sql

from benchmarks._common import ROOT, connect, percentile, schema_for

TABLE_DDL = """
CREATE SCHEMA {schema};
CREATE TABLE {schema}.jobs (
    id          bigserial PRIMARY KEY,
    queue       text NOT NULL DEFAULT 'default',
    status      text NOT NULL DEFAULT 'queued',
    priority    integer NOT NULL DEFAULT 0,
    payload     text NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz
);
CREATE INDEX ON {schema}.jobs (queue, priority DESC, id) WHERE status = 'queued';
"""


def payload(n: int) -> str:
    """What pgwerk's JSON serializer stores for ``noop(n=n)``."""
    return json.dumps({"args": [], "kwargs": {"n": n}}, separators=(",", ":"))


def _setup(conn: Any, schema: str) -> None:
    conn.execute(sql.SQL(TABLE_DDL).format(schema=sql.Identifier(schema)))


def _fill(conn: Any, schema: str, count: int) -> None:
    conn.execute(sql.SQL(
        "INSERT INTO {}.jobs (payload) SELECT '{{\"args\":[],\"kwargs\":{{\"n\":' || i || '}}}}' "
        "FROM generate_series(1, %s) AS i").format(sql.Identifier(schema)), [count])
    conn.execute(sql.SQL("VACUUM ANALYZE {}.jobs").format(sql.Identifier(schema)))


def insert_single(dsn: str, count: int) -> dict[str, float]:
    with schema_for(dsn, "raw_insert_single") as schema, connect(dsn) as conn:
        _setup(conn, schema)
        query = sql.SQL("INSERT INTO {}.jobs (queue, payload) VALUES (%s, %s) RETURNING id").format(
            sql.Identifier(schema)).as_bytes(conn)
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(count):
            conn.execute(query, ("default", payload(i))).fetchone()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"jobs_per_s": count / elapsed, "client_cpu_us_per_job": 1e6 * cpu / count}


def insert_multi(dsn: str, count: int, chunk: int) -> dict[str, float]:
    with schema_for(dsn, "raw_insert_multi") as schema, connect(dsn) as conn:
        _setup(conn, schema)
        query = sql.SQL("INSERT INTO {}.jobs (queue, payload) "
                        "SELECT * FROM unnest(%s::text[], %s::text[]) RETURNING id").format(
            sql.Identifier(schema)).as_bytes(conn)
        start, cpu = time.perf_counter(), time.process_time()
        for first in range(0, count, chunk):
            n = min(chunk, count - first)
            rows = (["default"] * n, [payload(first + i) for i in range(n)])
            conn.execute(query, rows).fetchall()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"jobs_per_s": count / elapsed, "client_cpu_us_per_job": 1e6 * cpu / count}


CLAIM = """
UPDATE {schema}.jobs SET status = 'done', done_at = now()
WHERE id IN (SELECT id FROM {schema}.jobs WHERE status = 'queued' AND queue = 'default'
             ORDER BY priority DESC, id LIMIT %s FOR UPDATE SKIP LOCKED)
RETURNING id, payload
"""


def claim(dsn: str, count: int, batch: int) -> dict[str, float]:
    with schema_for(dsn, f"raw_claim_{batch}") as schema, connect(dsn) as conn:
        _setup(conn, schema)
        _fill(conn, schema, count)
        query = sql.SQL(CLAIM).format(schema=sql.Identifier(schema)).as_bytes(conn)
        done = 0
        start, cpu = time.perf_counter(), time.process_time()
        while True:
            rows = conn.execute(query, (batch,)).fetchall()
            if not rows:
                break
            done += len(rows)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert done == count, (done, count)
    return {"jobs_per_s": count / elapsed, "client_cpu_us_per_job": 1e6 * cpu / count}


LISTENER = r"""
import json, sys, time, psycopg
dsn, schema = sys.argv[1], sys.argv[2]
claim = ('UPDATE "%s".jobs SET status = %%s WHERE id IN (SELECT id FROM "%s".jobs '
         "WHERE status = 'queued' AND queue = 'default' ORDER BY priority DESC, id LIMIT 1 "
         'FOR UPDATE SKIP LOCKED) RETURNING id' % (schema, schema))
seen = {}
with psycopg.connect(dsn, autocommit=True) as listen, psycopg.connect(dsn, autocommit=True) as work:
    listen.execute('LISTEN "bench_raw_%s"' % schema)
    print("ready", flush=True)
    stop = False
    while not stop:
        for note in listen.notifies(timeout=1.0):
            if note.payload == "stop":
                stop = True
                break
            while True:
                row = work.execute(claim, ("active",)).fetchone()
                if row is None:
                    break
                seen[row[0]] = time.time()
print(json.dumps(seen), flush=True)
"""


def latency(dsn: str, count: int, gap: float) -> dict[str, float]:
    with schema_for(dsn, "raw_latency") as schema, connect(dsn) as conn:
        _setup(conn, schema)
        channel = f"bench_raw_{schema}"
        listener = subprocess.Popen([sys.executable, "-c", LISTENER, dsn, schema],
                                    cwd=str(ROOT), stdout=subprocess.PIPE, text=True)
        try:
            assert listener.stdout is not None
            if listener.stdout.readline().strip() != "ready":
                raise RuntimeError("raw listener did not start")
            time.sleep(0.2)
            query = sql.SQL(
                "WITH ins AS (INSERT INTO {}.jobs (queue, payload) VALUES ('default', %s) "
                "RETURNING id) SELECT ins.id, pg_notify(%s, 'q:default') FROM ins").format(
                sql.Identifier(schema)).as_bytes(conn)
            sent: dict[int, float] = {}
            for i in range(count):
                t0 = time.time()
                row = conn.execute(query, (payload(i), channel)).fetchone()
                sent[row[0]] = t0  # type: ignore[index]
                time.sleep(gap)
            time.sleep(0.3)
            conn.execute("SELECT pg_notify(%s, 'stop')", [channel])
            out, _ = listener.communicate(timeout=30)
        finally:
            if listener.poll() is None:
                listener.kill()
                listener.wait()
    seen = {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}
    lat = [(seen[i] - t0) * 1000 for i, t0 in sent.items() if i in seen]
    return {"p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
            "missed": float(count - len(lat))}
