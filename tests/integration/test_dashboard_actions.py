"""Dashboard actions: each one a POST with a CSRF token, a flash message saying what
happened, confirmation before deleting or acting in bulk, and no delete of running jobs."""

from __future__ import annotations

import re

from pgwerk import JobStatus, Werk
from pgwerk.dashboard import Dashboard
from tests.helpers import ago, count_rows, make_job
from tests.integration.dashboard_client import Client


def failed(app: Werk, **columns: object) -> int:
    columns.setdefault("completed_at", ago(1))
    return make_job(app, status="failed", attempts=1, **columns).id


def test_retry__says_the_job_is_queued_again(app: Werk) -> None:
    job_id = failed(app)
    client = Client(Dashboard(app))
    reply = client.submit(f"/jobs/{job_id}", f"/jobs/{job_id}/retry")
    assert reply.status == 303 and reply.headers["Location"] == f"/jobs/{job_id}"
    page = client.follow(reply).text
    assert f'<p class="flash ok" role="status">job {job_id} queued again</p>' in page
    assert app.get_job(job_id).status is JobStatus.Queued
    assert "queued again" not in client.get(f"/jobs/{job_id}").text  # shown once


def test_retry__of_a_complete_job_says_why_nothing_happened(app: Werk) -> None:
    job = make_job(app, status="complete", attempts=1, completed_at=ago(1))
    client = Client(Dashboard(app))
    page = client.follow(client.submit("/jobs", f"/jobs/{job.id}/retry")).text
    assert (f"job {job.id} is complete; only failed, aborted or expired jobs are retried"
            in page)
    assert 'class="flash warn"' in page


def test_cancel__queued_job_and_a_running_one_is_pointed_to_abort(app: Werk) -> None:
    queued = make_job(app)
    running = make_job(app, status="active", attempts=1, worker_id="w", started_at=ago(1))
    client = Client(Dashboard(app))
    assert f"job {queued.id} cancelled" in client.follow(
        client.submit("/jobs", f"/jobs/{queued.id}/cancel")).text
    assert app.get_job(queued.id).status is JobStatus.Aborted
    page = client.follow(client.submit("/jobs", f"/jobs/{running.id}/cancel")).text
    assert "abort it instead" in page


def test_abort__running_job_is_asked_to_stop(app: Werk) -> None:
    running = make_job(app, status="active", attempts=1, worker_id="w", started_at=ago(1))
    client = Client(Dashboard(app))
    page = client.get(f"/jobs/{running.id}").text
    assert f'action="/jobs/{running.id}/abort"' in page
    assert f'href="/jobs/{running.id}/delete"' not in page  # no delete for running jobs
    page = client.follow(client.submit("/jobs", f"/jobs/{running.id}/abort")).text
    assert "asked to stop" in page and "at its next check" in page
    assert app.get_job(running.id).status is JobStatus.Aborting


def test_delete__asks_for_confirmation_first(app: Werk) -> None:
    job_id = failed(app)
    client = Client(Dashboard(app))
    job_page = client.get(f"/jobs/{job_id}").text
    assert f'href="/jobs/{job_id}/delete"' in job_page  # a link to a page, not a POST
    confirm = client.get(f"/jobs/{job_id}/delete")
    assert confirm.status == 200 and f"Delete job {job_id}?" in confirm.text
    assert count_rows(app) == 1
    token = client.csrf(confirm.text)
    reply = client.post(f"/jobs/{job_id}/delete", {"csrf_token": token})
    assert reply.headers["Location"] == "/jobs"
    assert f"job {job_id} deleted" in client.follow(reply).text
    assert count_rows(app) == 0


def test_delete__a_running_job_is_refused(app: Werk) -> None:
    running = make_job(app, status="active", attempts=1, worker_id="w", started_at=ago(1))
    client = Client(Dashboard(app))
    confirm = client.get(f"/jobs/{running.id}/delete").text
    assert "cannot be deleted" in confirm and 'method="post"' not in confirm
    page = client.follow(client.submit("/jobs", f"/jobs/{running.id}/delete")).text
    assert "was not deleted; abort it first" in page
    assert app.get_job(running.id).status is JobStatus.Active


def test_action__on_a_missing_job_says_so(app: Werk) -> None:
    client = Client(Dashboard(app))
    page = client.follow(client.submit("/jobs", "/jobs/424242/retry")).text
    assert "job 424242 does not exist" in page


def test_bulk_retry__confirmation_shows_the_count_then_acts(app: Werk) -> None:
    mine = [failed(app, queue="mail") for _ in range(3)]
    other = failed(app, queue="other")
    old = failed(app, queue="mail", completed_at=ago(7200))
    client = Client(Dashboard(app))
    listing = client.get("/jobs?queue=mail&status=failed").text
    link = re.search(r'href="(/bulk\?action=retry[^"]*)"', listing)
    assert link, "no bulk retry link"
    confirm = client.get(link.group(1).replace("&amp;", "&"))
    assert confirm.status == 200 and "Retry 4 jobs?" in confirm.text
    assert all(app.get_job(j).status is JobStatus.Failed for j in mine)  # nothing done yet
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">',
                           confirm.text))
    reply = client.post("/bulk", form)
    assert reply.status == 303 and "queue=mail" in reply.headers["Location"]
    assert "4 jobs queued again" in client.follow(reply).text
    assert all(app.get_job(j).status is JobStatus.Queued for j in [*mine, old])
    assert app.get_job(other).status is JobStatus.Failed


def test_bulk_retry__by_age(app: Werk) -> None:
    old = failed(app, completed_at=ago(7200))
    new = failed(app)
    client = Client(Dashboard(app))
    confirm = client.get("/bulk?action=retry&older_than=3600")
    assert "Retry 1 job?" in confirm.text and "ended more than 1 hour ago" in confirm.text
    client.post("/bulk", {"csrf_token": client.csrf(confirm.text), "action": "retry",
                          "older_than": "3600"})
    assert app.get_job(old).status is JobStatus.Queued
    assert app.get_job(new).status is JobStatus.Failed


def test_bulk_cancel_and_delete(app: Werk) -> None:
    queued = [make_job(app, "tests.jobs.add").id for _ in range(2)]
    keep = make_job(app).id
    done = make_job(app, status="complete", completed_at=ago(10)).id
    running = make_job(app, status="active", attempts=1, worker_id="w").id
    client = Client(Dashboard(app))
    confirm = client.get("/bulk?action=cancel&function=tests.jobs.add").text
    assert "Cancel 2 jobs?" in confirm
    page = client.follow(client.post("/bulk", {
        "csrf_token": client.csrf(confirm), "action": "cancel",
        "function": "tests.jobs.add"})).text
    assert "2 jobs cancelled" in page
    assert [app.get_job(j).status for j in queued] == [JobStatus.Aborted] * 2
    assert app.get_job(keep).status is JobStatus.Queued

    confirm = client.get("/bulk?action=delete").text
    assert "Delete 3 jobs?" in confirm and "deleted for good" in confirm
    page = client.follow(client.post("/bulk", {"csrf_token": client.csrf(confirm),
                                               "action": "delete"})).text
    assert "3 jobs deleted" in page
    assert {j.id for j in app.list_jobs()} == {keep, running}
    assert done not in {j.id for j in app.list_jobs()}


def test_bulk__impossible_combinations_are_explained(app: Werk) -> None:
    client = Client(Dashboard(app))
    for query_string, words in (("action=retry&status=complete", "cannot be retried"),
                                ("action=cancel&status=failed", "cannot be cancelled"),
                                ("action=cancel&older_than=60", "does not take an age"),
                                ("action=delete&status=active", "cannot be deleted"),
                                ("action=explode", "unknown bulk action")):
        reply = client.get(f"/bulk?{query_string}")
        assert reply.status == 400 and words in reply.text, query_string


def test_bulk__zero_matches_offers_no_button(app: Werk) -> None:
    confirm = Client(Dashboard(app)).get("/bulk?action=retry").text
    assert "Retry 0 jobs?" in confirm and 'method="post"' not in confirm


def test_bulk__list_only_filters_are_named_as_not_applied(app: Werk) -> None:
    failed(app)
    confirm = Client(Dashboard(app)).get("/bulk?action=retry&search=x").text
    assert "the search filter of the list is not applied" in confirm
