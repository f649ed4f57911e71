"""``pgwerk.contrib.django`` in a real Django project: the example under
``examples/django_app`` (settings, models, views, urls), configured here to use the test
database, with Django's tables in a schema of this module and pgwerk's in another.

Enqueue goes through Django's connection: the job commits with the request's transaction
and is gone after a rollback. The management commands run as ``manage.py`` subprocesses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgwerk import JobNotFound, JobStatus, Werk
from tests.conftest import drop_schemas
from tests.helpers import eventually, query

django = pytest.importorskip("django")

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "examples" / "django_app"
FORM = "application/x-www-form-urlencoded"  # what a browser sends for the dashboard's forms


def project_env(database_url: str, pgwerk_schema: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "mysite.settings",
        "DATABASE_URL": database_url,
        "PGWERK_SCHEMA": pgwerk_schema,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    return env


@pytest.fixture(scope="module")
def project(pg_dsn: str) -> Iterator[dict[str, str]]:
    """Django set up once for this module with the example project; migrated."""
    tag = uuid.uuid4().hex[:10]
    django_schema, pgwerk_schema = f"dj_{tag}", f"pw_{tag}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(django_schema)))
    database_url = psycopg.conninfo.make_conninfo(
        pg_dsn, options=f"-c search_path={django_schema}")
    env = project_env(database_url, pgwerk_schema)
    saved = {k: os.environ.get(k) for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL",
                                           "PGWERK_SCHEMA")}
    for key in saved:
        os.environ[key] = env[key]
    sys.path.insert(0, str(PROJECT))
    try:
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield env
    finally:
        from django.db import connections

        from pgwerk.contrib.django import reset_werk

        reset_werk()
        connections.close_all()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        drop_schemas(pg_dsn, [django_schema, pgwerk_schema])


@pytest.fixture
def werk(project: dict[str, str]) -> Werk:
    from pgwerk.contrib.django import get_werk

    return get_werk()


def job_count(werk: Werk) -> int:
    return int(query(werk, "SELECT count(*) AS n FROM {jobs}")[0]["n"])


def manage(project: dict[str, str], *args: str,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT, env=project,
                          capture_output=True, text=True, timeout=timeout)


# -- settings ----------------------------------------------------------------------------------


def test_django__werk_is_built_from_databases_default_and_pgwerk_options(
        project: dict[str, str], werk: Werk) -> None:
    from django.conf import settings

    import pgwerk.contrib.django as contrib

    assert contrib.werk is werk  # the module attribute is the same lazily built object
    assert werk.config.schema == project["PGWERK_SCHEMA"]
    assert psycopg.conninfo.conninfo_to_dict(werk.dsn)["dbname"] == settings.DATABASES[
        "default"]["NAME"]
    assert werk.database == "default"


def test_django__the_dsn_keeps_libpq_options_and_drops_django_ones() -> None:
    from pgwerk.contrib._dsn import libpq_dsn

    options = {"sslmode": "prefer", "options": "-c search_path=app", "isolation_level": 2,
               "server_side_binding": True, "pool": {"min_size": 2}, "host": "from-options"}
    dsn = libpq_dsn(options, dbname="shop", user="me", password="", host="", port=5433)
    assert psycopg.conninfo.conninfo_to_dict(dsn) == {
        "dbname": "shop", "user": "me", "host": "from-options", "port": "5433",
        "sslmode": "prefer", "options": "-c search_path=app"}


def test_django__an_unknown_pgwerk_key_is_a_clear_error(project: dict[str, str]) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from pgwerk.contrib.django import get_werk

    with override_settings(PGWERK={"SCHEMA": "x"}):
        with pytest.raises(ImproperlyConfigured, match=r"unknown key\(s\) 'SCHEMA'.*OPTIONS"):
            get_werk()
    with override_settings(PGWERK={"OPTIONS": {"schema": "no spaces"}}):
        with pytest.raises(Exception, match="schema must be a plain identifier"):
            get_werk()


def test_django__manage_check_reports_a_bad_pgwerk_setting(project: dict[str, str]) -> None:
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError
    from django.test import override_settings

    with override_settings(PGWERK={"DATABASE": "replica"}):
        with pytest.raises(SystemCheckError, match=r"pgwerk.E001.*PGWERK\['DATABASE'\]"):
            call_command("check", tags=["pgwerk"])


def test_django__with_a_dsn_of_its_own_enqueue_uses_pgwerk_connections(
        project: dict[str, str], pg_dsn: str) -> None:
    from django.db import transaction
    from django.test import override_settings

    from pgwerk.contrib.django import get_werk

    with override_settings(PGWERK={"DSN": pg_dsn,
                                   "OPTIONS": {"schema": project["PGWERK_SCHEMA"]}}):
        werk = get_werk()
        assert werk.database is None
        with transaction.atomic():
            job = werk.enqueue("store.tasks.report_stock")
            assert job is not None
            try:
                # Visible before Django's transaction ends: not written through it.
                assert werk.get_job(job.id).status is JobStatus.Queued
            finally:
                transaction.set_rollback(True)
        assert werk.get_job(job.id).status is JobStatus.Queued


# -- enqueue in Django's transaction ------------------------------------------------------------


def test_django__a_job_enqueued_in_atomic_appears_only_on_commit(werk: Werk) -> None:
    from django.db import transaction

    with transaction.atomic():
        job = werk.enqueue("store.tasks.report_stock")
        assert job is not None
        with pytest.raises(JobNotFound):
            werk.get_job(job.id)  # pgwerk's own connection cannot see it yet
    assert werk.get_job(job.id).status is JobStatus.Queued


def test_django__enqueue_takes_django_db_connection_as_conn(werk: Werk) -> None:
    from django.db import connection, transaction

    before = job_count(werk)
    with pytest.raises(RuntimeError, match="boom"):
        with transaction.atomic():
            job = werk.enqueue("store.tasks.report_stock", _conn=connection)
            assert job is not None
            raise RuntimeError("boom")
    assert job_count(werk) == before
    with transaction.atomic():
        kept = werk.enqueue("store.tasks.report_stock", _conn=connection)
    assert kept is not None and werk.get_job(kept.id).status is JobStatus.Queued


def test_django__a_job_enqueued_in_a_rolled_back_atomic_block_is_gone(werk: Werk) -> None:
    from django.db import transaction

    before = job_count(werk)
    with pytest.raises(RuntimeError, match="boom"):
        with transaction.atomic():
            job = werk.enqueue("store.tasks.report_stock")
            assert job is not None
            raise RuntimeError("boom")
    with pytest.raises(JobNotFound):
        werk.get_job(job.id)
    assert job_count(werk) == before


def test_django__the_order_view_commits_the_order_and_its_job_together(werk: Werk) -> None:
    from django.test import Client
    from store.models import Order

    response = Client().post("/orders/", {"item": "book", "quantity": 2},
                             content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    job = werk.get_job(body["job_id"])
    assert (job.function, job.kwargs, job.status) == (
        "store.tasks.fulfil_order", {"order_id": body["order_id"]}, JobStatus.Queued)
    assert Order.objects.get(id=body["order_id"]).status == "new"


def test_django__the_order_view_rolled_back_leaves_neither_order_nor_job(werk: Werk) -> None:
    from django.test import Client
    from store.models import Order, Stock

    jobs_before, orders_before = job_count(werk), Order.objects.count()
    response = Client().post("/orders/", {"item": "lamp", "quantity": 5},
                             content_type="application/json")
    assert response.status_code == 409
    assert job_count(werk) == jobs_before
    assert Order.objects.count() == orders_before
    assert Stock.objects.get(item="lamp").quantity == 1


# -- management commands --------------------------------------------------------------------


@pytest.mark.parametrize("pool", ["thread", "fork"])
def test_django__manage_pgwerk_worker_runs_the_job_with_the_orm(project: dict[str, str],
                                                               werk: Werk, pool: str) -> None:
    from django.test import Client
    from store.models import Order

    body = Client().post("/orders/", {"item": "book", "quantity": 1},
                         content_type="application/json").json()
    result = manage(project, "pgwerk_worker", "--burst", "-c", "2", "--pool", pool)
    assert result.returncode == 0, result.stderr
    job = werk.get_job(body["job_id"])
    assert (job.status, job.result) == (JobStatus.Complete,
                                        f"order {body['order_id']}: 1 x book shipped")
    assert Order.objects.get(id=body["order_id"]).status == "fulfilled"


def test_django__manage_pgwerk_worker_rejects_a_bad_option(project: dict[str, str]) -> None:
    result = manage(project, "pgwerk_worker", "--pool", "greenlet")
    assert result.returncode != 0
    assert "invalid choice: 'greenlet'" in result.stderr


def test_django__manage_pgwerk_cron_runs_the_schedules_of_the_tasks_modules(
        project: dict[str, str], werk: Werk) -> None:
    from pgwerk.cron import CronScheduler

    proc = subprocess.Popen([sys.executable, "manage.py", "pgwerk_cron", "--retry-interval",
                             "0.2"], cwd=PROJECT, env=project, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        def synced() -> bool:
            found = {c.name: c for c in CronScheduler(werk).list()}
            cron = found.get("store.tasks.report_stock")
            return cron is not None and cron.next_tick is not None

        eventually(synced, timeout=30, message="the store's schedule stored by pgwerk_cron")
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output


# -- the dashboard ------------------------------------------------------------------------------


def staff_client(staff: bool) -> Any:
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.create_user(f"u{uuid.uuid4().hex[:8]}", password="x", is_staff=staff)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_django__the_dashboard_redirects_anonymous_and_non_staff_to_the_login(
        werk: Werk) -> None:
    from django.test import Client

    for client in (Client(), staff_client(staff=False)):
        response = client.get("/jobs/")
        assert response.status_code == 302
        assert response["Location"] == "/admin/login/?next=/jobs/"


def test_django__a_staff_member_sees_the_dashboard_and_can_act(werk: Werk) -> None:
    job = werk.enqueue("store.tasks.report_stock", _queue="reports")
    assert job is not None
    client = staff_client(staff=True)
    overview = client.get("/jobs/")
    assert overview.status_code == 200
    page = overview.content.decode()
    assert ">reports</a>" in page
    assert 'href="/jobs/jobs?' in page  # links under the mount point

    detail = client.get(f"/jobs/jobs/{job.id}")
    assert detail.status_code == 200
    assert "store.tasks.report_stock" in detail.content.decode()
    token = detail.content.decode().split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(f"/jobs/jobs/{job.id}/cancel", f"csrf_token={token}", content_type=FORM)
    assert response.status_code == 303
    assert response["Location"] == f"/jobs/jobs/{job.id}"
    assert werk.get_job(job.id).status is JobStatus.Aborted


def test_django__a_dashboard_action_without_its_token_is_refused(werk: Werk) -> None:
    job = werk.enqueue("store.tasks.report_stock")
    assert job is not None
    client = staff_client(staff=True)
    client.get("/jobs/")
    response = client.post(f"/jobs/jobs/{job.id}/cancel", "csrf_token=forged", content_type=FORM)
    assert response.status_code == 403
    assert werk.get_job(job.id).status is JobStatus.Queued
