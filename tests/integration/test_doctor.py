"""``pgwerk doctor``: each bad state is built directly (rows written in that state, a
setting changed) and the report must name it, say how to fix it, and fail when it fails."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg import sql

from pgwerk import Werk
from pgwerk._doctor import expected_indexes, pooler_signs
from pgwerk.store.migrate import latest_version
from tests.helpers import ago, make_job, query, table
from tests.integration.test_cli import as_json, db, run


def doctor(app: Werk, ok: bool = True) -> dict[str, Any]:
    result = run("doctor", *db(app), "--json", ok=ok)
    report = as_json(result)
    assert (result.exit_code == 0) == report["ok"]
    return {c["name"]: c for c in report["checks"]}


def register_worker(app: Werk, worker_id: str, queues: list[str], silent_for: float = 0) -> None:
    app._store.register_worker({"id": worker_id, "hostname": "h", "pid": 1, "queues": queues,
                                "concurrency": 2, "pool": "thread", "heartbeat_interval": 5})
    if silent_for:
        query(app, "UPDATE {workers} SET heartbeat_at = now() - make_interval(secs => %s) "
                   "WHERE id = %s", [silent_for, worker_id])


def server_autovacuum(app: Werk) -> str:
    return str(query(app, "SHOW autovacuum")[0]["autovacuum"])


def test_doctor__a_healthy_queue_is_all_ok_and_exits_0(app: Werk) -> None:
    register_worker(app, "w1", ["default"])
    make_job(app)
    checks = doctor(app)
    autovacuum = "ok" if server_autovacuum(app) == "on" else "warn"
    assert checks["autovacuum"]["server"] == server_autovacuum(app)
    assert {name: c["status"] for name, c in checks.items()} == {
        "schema": "ok", "indexes": "ok", "bloat": "ok", "dead rows": "ok",
        "autovacuum": autovacuum, "stuck jobs": "ok", "workers": "ok", "queued jobs": "ok",
        "scheduled jobs": "ok", "cron": "ok", "connections": "ok", "pooler": "ok"}
    assert checks["schema"]["version"] == checks["schema"]["latest"] == latest_version()
    assert checks["connections"]["workers"] == 1 and checks["connections"]["per_worker"] == 5
    assert "SHOW pool_mode" in checks["pooler"]["checked"]
    text = run("doctor", *db(app)).stdout
    assert text.splitlines()[0].startswith("ok    schema")


def test_doctor__an_outdated_schema_fails_with_the_migrate_command(app: Werk) -> None:
    query(app, "DELETE FROM {migrations} WHERE version = %s", [latest_version()])
    checks = doctor(app, ok=False)
    assert checks["schema"]["status"] == "fail"
    assert checks["schema"]["fix"].startswith("pgwerk migrate --dsn")


def test_doctor__no_tables_fails_and_skips_the_table_checks(make_app: Any) -> None:
    fresh = make_app(auto_migrate=False)
    checks = doctor(fresh, ok=False)
    assert set(checks) == {"schema", "pooler"} and checks["schema"]["status"] == "fail"


def test_doctor__a_missing_index_fails(app: Werk) -> None:
    name = expected_indexes(app.config.prefix)[0]
    query(app, "DROP INDEX {}.{}".format(*(
        sql.Identifier(n).as_string(None) for n in (app.config.schema, name))))
    check = doctor(app, ok=False)["indexes"]
    assert check["status"] == "fail" and check["missing"] == [name]


def test_doctor__an_invalid_index_fails_with_reindex(app: Werk) -> None:
    name = expected_indexes(app.config.prefix)[1]
    # What a failed CREATE INDEX CONCURRENTLY leaves behind (the tests connect as superuser).
    query(app, "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass",
          [f'"{app.config.schema}"."{name}"'])
    check = doctor(app, ok=False)["indexes"]
    assert check["invalid"] == [name] and "REINDEX INDEX CONCURRENTLY" in check["fix"]


def test_doctor__autovacuum_switched_off_for_the_jobs_table_warns(app: Werk) -> None:
    with_table = sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(table(app))
    query(app, with_table.as_string(None))
    check = doctor(app)["autovacuum"]
    assert check["status"] == "warn"
    assert check["disabled"] == [f"{app.config.prefix}_jobs"]
    assert "RESET (autovacuum_enabled)" in check["fix"]


def test_doctor__jobs_active_without_a_live_worker_fail_with_sweep(app: Werk) -> None:
    register_worker(app, "w-silent", ["default"], silent_for=600)
    orphans = [make_job(app, status="active", attempts=1, worker_id=w, started_at=ago(300)).id
               for w in ("gone", "w-silent")]
    checks = doctor(app, ok=False)
    assert checks["stuck jobs"]["status"] == "fail"
    assert checks["stuck jobs"]["ids"] == orphans
    assert checks["stuck jobs"]["fix"].startswith("pgwerk sweep")
    assert checks["workers"]["status"] == "warn" and checks["workers"]["silent"] == ["w-silent"]
    swept = as_json(run("sweep", *db(app), "--json"))
    assert swept["rescued"] == 2
    assert doctor(app, ok=False)["stuck jobs"]["status"] == "ok"


def test_doctor__queued_jobs_no_worker_takes_fail(app: Werk) -> None:
    register_worker(app, "w1", ["default"])
    make_job(app, options={"_queue": "reports"})
    check = doctor(app, ok=False)["queued jobs"]
    assert check["status"] == "fail" and "reports" in check["message"]
    assert check["fix"].endswith("-q reports")


def test_doctor__a_long_wait_and_overdue_scheduled_jobs_warn(app: Werk) -> None:
    register_worker(app, "w1", ["default"])
    make_job(app, scheduled_at=ago(3600), enqueued_at=ago(3600))
    make_job(app, status="scheduled", scheduled_at=ago(600))
    checks = doctor(app)
    assert checks["queued jobs"]["status"] == "warn"
    assert "oldest 1h" in checks["queued jobs"]["message"]
    assert checks["scheduled jobs"]["status"] == "warn"
    assert checks["scheduled jobs"]["default"]["count"] == 1


def test_doctor__active_schedules_without_a_scheduler_warn(app: Werk) -> None:
    from pgwerk.cron import CronScheduler

    scheduler = CronScheduler(app)
    scheduler.register("tests.jobs.noop", interval=60, name="ping")
    scheduler.tick()
    check = doctor(app)["cron"]
    assert check["status"] == "warn" and check["scheduler_pid"] is None
    assert "--scheduler" in check["fix"]


def test_doctor__the_text_report_has_a_fix_line_under_each_problem(app: Werk) -> None:
    make_job(app, status="active", attempts=1, worker_id="gone", started_at=ago(60))
    result = run("doctor", *db(app), ok=False)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    stuck = next(i for i, line in enumerate(lines) if line.startswith("fail  stuck jobs"))
    fix = next(line for line in lines[stuck + 1:] if line.strip().startswith("fix:"))
    assert fix.strip().startswith("fix: pgwerk sweep")
    assert all(line.startswith(" ") for line in lines[stuck + 1:lines.index(fix)])
    assert max(len(line) for line in lines if "fix:" not in line) <= 80


@pytest.mark.parametrize("dsn, server_port, signs", [
    ("postgresql://u@db:5432/x", 5432, 0),
    ("postgresql://u@db:6432/x", 5432, 2),
    ("postgresql://u@db/x", 5433, 1),
    ("host=db port=6432", 6432, 1),
])
def test_pooler_signs__port_heuristics(dsn: str, server_port: int, signs: int) -> None:
    assert len(pooler_signs(dsn, server_port)) == signs


def test_doctor__a_table_of_mostly_dead_rows_warns_with_vacuum(app: Werk) -> None:
    # Rows written and deleted in one session, whose statistics are sent before it ends.
    query(app, "ALTER TABLE {jobs} SET (autovacuum_enabled = false);"
               "INSERT INTO {jobs} (function, status, payload) "
               "SELECT 'tests.jobs.noop', 'complete', '{{}}' FROM generate_series(1, 12000);"
               "DELETE FROM {jobs};"
               "SELECT pg_stat_force_next_flush();")
    checks = doctor(app)
    dead = checks["dead rows"]
    assert dead["status"] == "warn" and dead[f"{app.config.prefix}_jobs"]["dead"] >= 12000
    assert "VACUUM (ANALYZE)" in dead["fix"]
    assert checks["autovacuum"]["lagging"] == [f"{app.config.prefix}_jobs"]


def test_doctor__a_table_that_is_mostly_empty_space_warns_about_bloat(app: Werk) -> None:
    # 12 MB of rows, all but the last ones deleted and vacuumed: the pages stay (the last
    # rows keep VACUUM from cutting the file short), the rows are gone.
    query(app, "INSERT INTO {jobs} (function, status, payload) "
               "SELECT 'tests.jobs.noop', 'complete', repeat('x', 600) "
               "FROM generate_series(1, 20000);"
               "DELETE FROM {jobs} WHERE id <= (SELECT max(id) - 100 FROM {jobs});")
    query(app, "VACUUM (ANALYZE) {jobs}")  # reports its row counts as it ends
    check = doctor(app)["bloat"]
    assert check["status"] == "warn", check
    jobs_table = check[f"{app.config.prefix}_jobs"]
    assert jobs_table["table_bloat"] > 0.9 and jobs_table["table_bytes"] > 10 * 1024 * 1024
    assert "VACUUM (FULL, ANALYZE)" in check["fix"] and "pg_repack" in check["message"]
