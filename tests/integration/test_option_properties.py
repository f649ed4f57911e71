"""Property tests of every option: any value either is refused cleanly or works.

For each enqueue option, ``WerkConfig`` field and ``Worker`` keyword, Hypothesis feeds
values of every kind (ints, floats with nan/inf/1e300/-1, bools, strings with NUL bytes or
lone surrogates, None, lists, dicts, naive and aware datetimes, timedeltas, arbitrary
objects, and the option's own types built with any arguments). Each value must either

- raise ``TypeError`` or ``ValueError`` whose message names the option, having written
  nothing (rows counted before and after), or
- be accepted, and then work: the accepted jobs are brought to an end state by a real
  worker (their start time brought forward, as a clock would), a ``Werk`` built with the
  accepted setting runs a job, a ``Worker`` built with the accepted value runs a job and
  stops cleanly.

Values that once broke the library (found by these properties) are kept as regression
cases at the end of each section, each with the defect it was in one line; they run with
the broad properties too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgwerk import Callback, Dependency, JobStatus, Repeat, Retry, Unique, Werk, WerkConfig, Worker
from pgwerk.job import TERMINAL_STATUSES
from pgwerk.metrics import WorkerMetrics
from tests import jobs
from tests.any_value import (
    ANY,
    AWARE_DATETIMES,
    EDGE_VALUES,
    Build,
    builds,
    built,
    call,
    magnitude,
)
from tests.conftest import MakeApp
from tests.helpers import eventually, query
from tests.worker_support import FAST, WorkerThread

# The connection pool of a running app draws from `random` in its own threads (jitter of
# connection lifetimes); Hypothesis sees the global state move during a draw and warns.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies")

TERMINAL = sorted(s.value for s in TERMINAL_STATUSES)
PROPERTY = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.filter_too_much])

# -- enqueue options ------------------------------------------------------------------------

DURATION = st.one_of(ANY, st.floats(min_value=0, max_value=1e6), st.timedeltas(
    min_value=timedelta(0), max_value=timedelta(days=365)))
CALLBACK = st.one_of(
    ANY,
    st.sampled_from([jobs.on_done, "tests.jobs.on_done", "tests.jobs.no_such_callback",
                     jobs.Tasks.static_noop, jobs.Tasks().method_noop]),
    builds(Callback, func=st.sampled_from([jobs.on_done, "tests.jobs.on_done", 3]),
           timeout=DURATION),
)
#: Job ids 1 and 2 are the two parents every enqueue test makes first (a fresh schema).
DEPENDENCY = st.one_of(
    st.sampled_from([1, 2, 999_999, 0, -1]),
    builds(Dependency, job=st.sampled_from([1, 2, 999_999]), allow_failure=ANY),
)
UNIQUE_FIELD = st.sampled_from(["function", "queue", "args", "kwargs:x", "kwargs:", "kwargs:_x",
                                "payload", "Function"])
UNIQUE_STATE = st.sampled_from([*(s.value for s in JobStatus), JobStatus.Queued, "Queued"])
OPTION_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "_queue": st.one_of(ANY, st.text(min_size=1, max_size=300)),
    "_priority": st.one_of(ANY, st.integers(-(2**31), 2**31)),
    "_delay": DURATION,
    "_at": st.one_of(ANY, AWARE_DATETIMES),
    "_retry": st.one_of(ANY, st.integers(1, 4), builds(
        Retry, max=st.one_of(ANY, st.integers(1, 3)),
        intervals=st.one_of(DURATION, st.lists(DURATION, max_size=3)))),
    "_timeout": DURATION,
    "_heartbeat": DURATION,
    "_key": st.one_of(ANY, st.text(min_size=1, max_size=1100)),
    "_group": st.one_of(ANY, st.text(min_size=1, max_size=1100)),
    "_meta": st.one_of(ANY, st.dictionaries(st.text(max_size=5), ANY, max_size=3)),
    "_ttl": DURATION,
    "_result_ttl": DURATION,
    "_failure_ttl": DURATION,
    "_failure_mode": st.one_of(ANY, st.sampled_from(["hold", "delete", "HOLD"])),
    "_on_success": CALLBACK,
    "_on_failure": CALLBACK,
    "_on_stopped": CALLBACK,
    "_repeat": st.one_of(ANY, builds(
        Repeat, times=st.one_of(ANY, st.integers(1, 2)), interval=DURATION,
        intervals=st.one_of(DURATION, st.lists(DURATION, max_size=3)))),
    "_depends_on": st.one_of(ANY, DEPENDENCY, st.lists(DEPENDENCY, max_size=3)),
    "_unique": st.one_of(ANY, st.booleans(), builds(
        Unique,
        by=st.one_of(ANY, UNIQUE_FIELD, st.lists(st.one_of(ANY, UNIQUE_FIELD), max_size=3)),
        states=st.one_of(ANY, UNIQUE_STATE, st.lists(UNIQUE_STATE, max_size=9)),
        period=DURATION)),
    "_conn": ANY,
    "payload": ANY,  # not an option: the handler's argument
}
#: What the accepted jobs of an option run: a handler that takes that option's path.
HANDLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "_retry": ("tests.worker_jobs.fail_before_attempt", {"succeed_on": 2}),
    "_on_failure": ("tests.jobs.fail", {}),
    "_failure_ttl": ("tests.jobs.fail", {}),
    "_failure_mode": ("tests.jobs.fail", {}),
    "_timeout": ("tests.jobs.sleep_for", {"seconds": 0.05}),
    "_heartbeat": ("tests.jobs.sleep_for", {"seconds": 0.05}),
}


def test_option_values__cover_every_enqueue_option() -> None:
    from pgwerk.options import OPTION_NAMES

    assert sorted(OPTION_VALUES) == sorted([*OPTION_NAMES, "payload"])


def written(app: Werk) -> tuple[int, int]:
    """How many job and dependency rows there are."""
    rows = query(app, "SELECT (SELECT count(*) FROM {jobs}) AS jobs,"
                      " (SELECT count(*) FROM {job_deps}) AS deps")
    return rows[0]["jobs"], rows[0]["deps"]


def assert_names(exc: BaseException, *names: str) -> None:
    text = str(exc).lower()
    assert any(n.lower().lstrip("_") in text for n in names), (
        f"the error does not say which option is wrong: {type(exc).__name__}: {exc}")


def factories(value: Any) -> list[str]:
    """Names of the constructors inside a value (their own errors name them)."""
    if isinstance(value, Build):
        return [value.factory.__name__, *(n for v in value.kwargs.values() for n in factories(v))]
    if isinstance(value, list):
        return [n for v in value for n in factories(v)]
    return []


def enqueue_value(app: Werk, option: str, value: Any) -> int | None:
    """Enqueue one job with ``option=value``; the id of the job, or None if refused."""
    function, payload = HANDLERS.get(option, ("tests.jobs.echo", {}))
    before = written(app)
    try:
        made = built(value)
        if option == "payload":
            job = app.enqueue(function, made)
        else:
            job = app.enqueue(function, **payload, **{option: made})
    except (TypeError, ValueError) as exc:
        assert written(app) == before, f"{option}={value!r} was refused but wrote"
        names = ("argument", "encod") if option == "payload" else (option,)
        assert_names(exc, *names, *factories(value))
        return None
    after = written(app)
    if job is None:  # a _key that is taken: nothing written, as documented
        assert option == "_key" and after == before, f"{option}={value!r} returned None"
        return None
    if option == "_unique" and after == before:  # a match: the job that holds the key
        held = app.get_job(job.id)
        assert held.unique_key == job.unique_key is not None, f"{option}={value!r}"
        return job.id
    assert after[0] == before[0] + 1, f"{option}={value!r} wrote {after} (from {before})"
    return job.id


def bring_forward(app: Werk) -> None:
    """Move every scheduled job's start to now, as a clock moving on would."""
    query(app, "UPDATE {jobs} SET scheduled_at = now() WHERE status = 'scheduled'")


def drain(app: Werk, ids: list[int], timeout: float = 60.0,
          values: dict[int, Any] | None = None, **worker_options: Any) -> None:
    """Run a worker until every one of ``ids`` ended (or its row is gone). ``values``
    (job id -> the option value it was enqueued with) makes a failure say which."""
    queues = sorted({r["queue"] for r in query(
        app, "SELECT DISTINCT queue FROM {jobs} WHERE id = ANY(%s)", [ids])} | {"default"})
    options = {"queues": queues, "sweep_interval": 0.3, **worker_options}
    runner = WorkerThread(app, **options).start()
    try:
        def all_ended() -> bool:
            if not runner.thread.is_alive():  # the drain's worker never leaves by itself
                raise RuntimeError(f"the worker stopped: {runner.error!r}")
            bring_forward(app)
            rows = query(app, "SELECT id, status FROM {jobs} WHERE id = ANY(%s)"
                              " AND NOT status = ANY(%s)", [ids, TERMINAL])
            assert not rows, "not ended yet: " + ", ".join(
                f"{r['id']} {r['status']} ({(values or {}).get(r['id'], '?')!r})"
                for r in rows[:10])
            return True

        eventually(all_ended, timeout=timeout, interval=0.1,
                   message=f"{len(ids)} accepted job(s) ending")
    finally:
        runner.stop(now=True)


#: Values of an option's own types at their edges, tried before the random ones.
HUGE = [1e300, float("inf"), 10**30, timedelta.max]
OPTION_EDGES: dict[str, list[Any]] = {
    "_retry": [call(Retry, max=m) for m in (1, 2**31, 2**40)]
    + [call(Retry, max=2, intervals=i) for i in (*HUGE, [0, 1e300], [], 0, -1)],
    "_repeat": [call(Repeat, times=t) for t in (1, 2**40)]
    + [call(Repeat, times=1, interval=i) for i in (*HUGE, 0)]
    + [call(Repeat, times=1, intervals=i) for i in (*HUGE, [1e300], [])],
    "_on_success": [call(Callback, func="tests.jobs.on_done", timeout=t)
                    for t in (*HUGE, 5e-324, 0)],
    "_meta": [{"a": float("nan")}, {"a": 10**30}, {"a": [1, {"b": None}]}, {1: 2},
              {"a": datetime(2030, 1, 1)}, {"a": "\x00"}],
    "_depends_on": [call(Dependency, job=1, allow_failure=a) for a in (0, 1, None, "x", [])]
    + [2**63, [1, 1], [1, 2], [call(Dependency, job=1), 2], "1", "x"],
    "_unique": [call(Unique, period=p) for p in (*HUGE, 0, 0.5, 1, 5e-324, timedelta.max)]
    + [call(Unique, by=b) for b in ("args", "kwargs:x", ("function", "queue"), "", [], "kwargs:")]
    + [call(Unique, states=s) for s in (
        Unique.REQUIRED_STATES, (*Unique.REQUIRED_STATES, *Unique.OPTIONAL_STATES),
        ("queued", "scheduled", "active"), [*(s.value for s in JobStatus)], "queued")],
}


@pytest.mark.slow
@pytest.mark.parametrize("option", sorted(OPTION_VALUES))
def test_enqueue_option__any_value_is_refused_cleanly_or_runs_to_an_end(
        app: Werk, option: str) -> None:
    parents = [app.enqueue(jobs.noop), app.enqueue(jobs.fail)]
    assert [p.id for p in parents if p] == [1, 2]
    accepted: dict[int, Any] = {}
    problems = []
    for value in [*EDGE_VALUES, *OPTION_EDGES.get(option, [])]:
        if known_enqueue_bug(option, value):
            continue
        try:
            job_id = enqueue_value(app, option, value)
        except Exception as exc:  # noqa: BLE001 - every value's failure is reported at once
            problems.append(f"{option}={value!r}: {type(exc).__name__}: {exc}")
            continue
        if job_id is not None:
            accepted[job_id] = value
    assert not problems, "\n".join(problems)

    @PROPERTY
    @given(value=OPTION_VALUES[option].filter(lambda v: not known_enqueue_bug(option, v)))
    def check(value: Any) -> None:
        job_id = enqueue_value(app, option, value)
        if job_id is not None:
            accepted[job_id] = value

    check()
    drain(app, [1, 2, *accepted], values=accepted)


# -- known defects: kept out of the broad property, pinned as strict xfail cases -------------


def texts(value: Any) -> list[str]:
    """Every string inside a value (dict keys included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Build):
        return texts(list(value.kwargs.values()))
    if isinstance(value, dict):
        return texts(list(value)) + texts(list(value.values()))
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in texts(v)]
    return []


def bad_text(value: Any) -> bool:
    """Holds a NUL byte (PostgreSQL text cannot) or a lone surrogate (UTF-8 cannot)."""
    return any("\x00" in t or any(0xD800 <= ord(c) <= 0xDFFF for c in t) for t in texts(value))


def numbers(value: Any) -> list[Any]:
    """Every number or timedelta inside a value."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float, timedelta)):
        return [value]
    if isinstance(value, Build):
        return numbers(list(value.kwargs.values()))
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in numbers(v)]
    return []


def huge(value: Any) -> bool:
    """A duration of a billion seconds (32 years) or more, or an infinite one."""
    def seconds(n: Any) -> float:
        return n.total_seconds() if isinstance(n, timedelta) else float(min(n, 1e308))
    return any(seconds(n) >= 1e9 for n in numbers(value))


def built_with(value: Any, factory: Any, test: Callable[[dict[str, Any]], bool]) -> bool:
    """A ``Build`` of ``factory`` (also inside a list) whose arguments pass ``test``."""
    if isinstance(value, list):
        return any(built_with(v, factory, test) for v in value)
    return isinstance(value, Build) and value.factory is factory and test(value.kwargs)


@dataclass(frozen=True)
class Defect:
    """A defect these properties found (now fixed): the options and values it concerned,
    and the (option, value) cases that reproduced it, kept as regression cases. While a
    defect is open, ``known_*_bug`` keeps its values out of the broad properties and its
    cases carry a strict xfail; today none is."""

    reason: str
    options: tuple[str, ...]
    concerns: Callable[[Any], bool]
    pinned: tuple[tuple[str, Any], ...]


CALLBACK_OPTIONS = ("_on_success", "_on_failure", "_on_stopped")
INF_CALLBACK = call(Callback, func="tests.jobs.on_done", timeout=float("inf"))
TIMEDELTA_CALLBACK = call(Callback, func="tests.jobs.on_done", timeout=timedelta(seconds=5))
ENQUEUE_DEFECTS = [
    Defect("a NUL byte or a lone surrogate in a text option reaches psycopg: DataError or "
           "UnicodeEncodeError instead of a ValueError naming the option",
           ("_queue", "_key", "_group", "_meta"), bad_text,
           (("_queue", "\x00"), ("_key", "a\x00b"), ("_group", "\ud800"),
            ("_meta", {"a": "\x00"}), ("_meta", {"\x00": 1}))),
    Defect("durations are not capped: a huge _delay/_ttl overflows now() + interval in "
           "PostgreSQL (DatetimeFieldOverflow) at enqueue",
           ("_delay", "_ttl"), huge,
           (("_delay", 1e300), ("_delay", timedelta.max), ("_ttl", 10**30))),
    Defect("durations are not capped: a huge _result_ttl/_failure_ttl is accepted, then "
           "purge_at overflows when the outcome is written and the completion writer dies",
           ("_result_ttl", "_failure_ttl"), huge,
           (("_result_ttl", 1e300), ("_failure_ttl", timedelta.max))),
    Defect("durations are not capped: a huge _timeout is accepted, then the worker's deadline "
           "watcher thread dies (OverflowError in its wait) and no time limit is kept",
           ("_timeout",), huge, (("_timeout", 1e300), ("_timeout", timedelta.max))),
    Defect("durations are not capped: Retry intervals, Repeat intervals and Callback timeouts "
           "accept inf (PostgreSQL rejects the JSON 'Infinity') and huge values",
           ("_retry", "_repeat", *CALLBACK_OPTIONS), huge,
           (("_retry", call(Retry, max=2, intervals=float("inf"))),
            ("_repeat", call(Repeat, times=1, interval=float("inf"))),
            ("_repeat", call(Repeat, times=1, intervals=[float("inf")])),
            *((option, INF_CALLBACK) for option in CALLBACK_OPTIONS))),
    Defect("a timedelta is accepted as Callback.timeout and Repeat.interval but not converted: "
           "enqueue then fails with a TypeError that names no option",
           ("_repeat", *CALLBACK_OPTIONS),
           lambda v: built_with(v, Callback, lambda kw: isinstance(kw.get("timeout"), timedelta))
           or built_with(v, Repeat, lambda kw: isinstance(kw.get("interval"), timedelta)),
           (("_repeat", call(Repeat, times=1, interval=timedelta(seconds=5))),
            *((option, TIMEDELTA_CALLBACK) for option in CALLBACK_OPTIONS))),
    Defect("Retry.max and _retry beyond int32 reach PostgreSQL (integer out of range)",
           ("_retry",),
           lambda v: (isinstance(v, int) and not isinstance(v, bool) and v > 2**31 - 1)
           or built_with(v, Retry, lambda kw: isinstance(kw.get("max"), int)
                         and kw["max"] > 2**31 - 1),
           (("_retry", 2**31), ("_retry", call(Retry, max=2**40)))),
    Defect("Repeat(times=N) builds a list of N delays: a large N exhausts memory",
           ("_repeat",),
           lambda v: built_with(v, Repeat, lambda kw: isinstance(kw.get("times"), int)
                                and kw["times"] > 10**6),
           (("_repeat", call(Repeat, times=2**40)),)),
    Defect("a _depends_on id beyond bigint reaches PostgreSQL (NumericValueOutOfRange)",
           ("_depends_on",),
           lambda v: any(isinstance(n, int) and n > 2**63 - 1 for n in numbers(v)),
           (("_depends_on", 2**63), ("_depends_on", [1, 10**30]))),
    Defect("Dependency.allow_failure is not checked: 0, None, 'x' or [] reach PostgreSQL",
           ("_depends_on",),
           lambda v: built_with(v, Dependency, lambda kw: "allow_failure" in kw
                                and not isinstance(kw["allow_failure"], bool)),
           (("_depends_on", call(Dependency, job=1, allow_failure=0)),
            ("_depends_on", call(Dependency, job=1, allow_failure=None)))),
]


#: Defects still open (their values kept out of the broad property, their cases xfail).
OPEN_DEFECTS: list[Defect] = []


def known_enqueue_bug(option: str, value: Any) -> bool:
    """Values of an open defect; kept out of the broad property."""
    return any(option in d.options and d.concerns(value) for d in OPEN_DEFECTS)


def pinned(defects: list[Defect]) -> list[Any]:
    """The reproducing cases of the defects: a strict xfail while a defect is open."""
    return [pytest.param(option, value, id=f"{option}={value!r}"[:70],
                         marks=[pytest.mark.xfail(strict=True, reason=defect.reason)]
                         if defect in OPEN_DEFECTS else [])
            for defect in defects for option, value in defect.pinned]


@pytest.mark.parametrize(("option", "value"), pinned(ENQUEUE_DEFECTS))
def test_enqueue_option__a_former_defect_is_refused_cleanly_or_works(
        app: Werk, option: str, value: Any) -> None:
    assert [p.id for p in (app.enqueue(jobs.noop), app.enqueue(jobs.fail)) if p] == [1, 2]
    job_id = enqueue_value(app, option, value)
    if job_id is not None:
        drain(app, [job_id], timeout=10.0, values={job_id: value})


# -- WerkConfig --------------------------------------------------------------------------------

CONFIG_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "schema": st.one_of(ANY, st.from_regex(r"\A[a-z_][a-z0-9_]{0,70}\Z")),
    "prefix": st.one_of(ANY, st.from_regex(r"\A[a-z_][a-z0-9_]{0,45}\Z")),
    "min_pool_size": st.one_of(ANY, st.integers(1, 4)),
    "max_pool_size": st.one_of(ANY, st.integers(1, 6)),
    "serializer": st.one_of(ANY, st.sampled_from(["json", jobs, object()])),
    "auto_migrate": ANY,
    "result_ttl": DURATION,
    "failure_ttl": DURATION,
    "max_active_secs": DURATION,
    "connect_attempts": st.one_of(ANY, st.integers(1, 5)),
    "connect_timeout": DURATION,
    "max_lost": st.one_of(ANY, st.integers(0, 5)),
    "application_name": st.one_of(ANY, st.text(max_size=80)),
    "pgbouncer": ANY,
    "poll_interval": DURATION,
    "lease_ttl": DURATION,
    "enqueue_timeout": DURATION,
    # Lists of other names are accepted and then (rightly) refuse the test's own jobs.
    "handlers": st.one_of(st.sampled_from([None, ["tests"], ["tests.jobs"], "tests"]),
                          ANY.filter(lambda v: not isinstance(v, (str, list, tuple, set,
                                                                  frozenset, dict)))),
}


def test_config_values__cover_every_werkconfig_field() -> None:
    assert sorted(CONFIG_VALUES) == sorted(f.name for f in fields(WerkConfig))


def kind(value: Any) -> tuple[Any, ...]:
    """What sort of value this is, for trying one accepted value of each sort."""
    if isinstance(value, bool) or value is None:
        return (value,)
    if isinstance(value, (int, float, timedelta)):
        size = magnitude(value)
        seconds = value.total_seconds() if isinstance(value, timedelta) else value
        bucket = ("not finite" if size == float("inf") else "huge" if size >= 1e9
                  else "zero" if size == 0 else "tiny" if size < 1e-3 else "normal")
        return (type(value).__name__, bucket, seconds < 0)
    if isinstance(value, str):
        return ("str", bad_text(value), len(value) == 0, len(value) > 255)
    if isinstance(value, Build):
        return ("build", value.factory.__name__, *(kind(v) for v in value.kwargs.values()))
    return (type(value).__name__,)


def one_of_each_kind(values: list[Any]) -> list[Any]:
    chosen: dict[tuple[Any, ...], Any] = {}
    for value in values:
        chosen.setdefault(kind(value), value)
    return list(chosen.values())


def accepted_values(strategy: st.SearchStrategy[Any], make: Callable[[Any], object],
                    name: str, known: Callable[[Any], bool]) -> list[Any]:
    """The edge values, then Hypothesis's (those of ``known`` defects left out): each is
    refused with an error naming ``name`` (TypeError or ValueError), or accepted. Returns
    the accepted ones, edges first."""
    accepted: list[Any] = []

    def attempt(value: Any) -> None:
        try:
            make(value)
        except (TypeError, ValueError) as exc:
            assert_names(exc, name)
            return
        accepted.append(value)

    for value in EDGE_VALUES:
        if not known(value):
            attempt(value)

    @PROPERTY
    @given(value=strategy.filter(lambda v: not known(v)))
    def check(value: Any) -> None:
        attempt(value)

    check()
    return accepted


def run_jobs_through(app: Werk) -> None:
    """One job that succeeds and one that fails, through the code a worker runs (claim,
    execute, record the outcome), with a sweep while they run and one after: what a
    ``Werk`` setting can affect."""
    from pgwerk._execute import execute, settle

    good, bad = app.enqueue(jobs.add, 1, 2), app.enqueue(jobs.fail)
    assert good is not None and bad is not None
    worker = Worker(app, name="property")
    worker._register()
    claimed = worker._claim(2)
    assert sorted(j.id for j in claimed) == [good.id, bad.id]
    app.sweep()
    for job in claimed:
        worker._completions._record([(job, settle(job, execute(app, worker, job)))])
    assert app.get_job(good.id).result == 3
    assert app.get_job(bad.id).status.value == "failed"
    app.sweep()  # may prune them, if their retention is that short


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIG_VALUES))
def test_werk_config__any_value_is_refused_cleanly_or_works(
        make_app: MakeApp, name: str) -> None:
    accepted = accepted_values(CONFIG_VALUES[name], lambda v: WerkConfig(**{name: v}), name,
                               lambda v: known_config_bug(name, v))
    problems = []
    for value in one_of_each_kind(accepted):
        try:
            run_with_config(make_app, name, value)
        except Exception as exc:  # noqa: BLE001 - every value's failure is reported at once
            problems.append(f"{name}={value!r}: {type(exc).__name__}: {exc}")
    assert not problems, "\n".join(problems)


def run_with_config(make_app: MakeApp, name: str, value: Any) -> None:
    config = WerkConfig(**{name: value})
    options: dict[str, Any] = {"config": config}
    if name == "schema" and config.schema != "public":
        options["schema"] = config.schema  # make_app drops it afterwards
    app = make_app(**options)
    try:
        if not config.auto_migrate:
            app.migrate()
        run_jobs_through(app)
    finally:
        app.close()  # many values in one test: hold no connections for the rest of it


def seconds_below(limit: float) -> Callable[[Any], bool]:
    """A duration (number or timedelta) of at least 0 and under ``limit`` seconds."""
    return lambda v: any(0 <= (n.total_seconds() if isinstance(n, timedelta) else n) < limit
                         for n in numbers(v))


def not_finite_or_huge(value: Any) -> bool:
    return huge(value) or any(n != n for n in numbers(value))


CONFIG_DEFECTS = [
    Defect("durations are not capped: result_ttl, failure_ttl and max_active_secs accept inf "
           "and huge values, and the completion or the sweep then overflows in PostgreSQL",
           ("result_ttl", "failure_ttl", "max_active_secs"), not_finite_or_huge,
           (("result_ttl", 1e300), ("failure_ttl", float("inf")),
            ("max_active_secs", 1e300))),
    Defect("max_active_secs of 0 (or a few ms) is accepted: every sweep takes each running "
           "job without a heartbeat away from its live worker, so none can complete",
           ("max_active_secs",), seconds_below(1.0),
           (("max_active_secs", 0), ("max_active_secs", timedelta(0)))),
    Defect("connect_timeout below 1 s is accepted, then the pool gives up on every connection "
           "(DatabaseUnavailable); inf and huge values raise OverflowError at connect",
           ("connect_timeout",), lambda v: seconds_below(1.0)(v) or not_finite_or_huge(v),
           (("connect_timeout", 0), ("connect_timeout", float("inf")),
            ("connect_timeout", 1e300))),
]


def known_config_bug(name: str, value: Any) -> bool:
    """Values of an open defect; kept out of the broad property."""
    return any(name in d.options and d.concerns(value) for d in OPEN_DEFECTS)


@pytest.mark.parametrize(("name", "value"), pinned(CONFIG_DEFECTS))
def test_werk_config__a_former_defect_is_refused_cleanly_or_works(
        make_app: MakeApp, name: str, value: Any) -> None:
    try:
        WerkConfig(**{name: value})
    except (TypeError, ValueError) as exc:
        assert_names(exc, name)
        return
    run_with_config(make_app, name, value)


# -- Worker ------------------------------------------------------------------------------------

WORKER_DURATION = st.one_of(ANY, st.floats(min_value=0.01, max_value=2.0))
WORKER_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "queues": st.one_of(ANY, st.lists(st.sampled_from(["default", "other", ""]), max_size=3)),
    "concurrency": st.one_of(ANY, st.integers(1, 8)),
    "pool": st.one_of(ANY, st.sampled_from(["thread", "fork", "process", "Thread"])),
    "burst": ANY,
    "poll_interval": WORKER_DURATION,
    "heartbeat_interval": WORKER_DURATION,
    "sweep_interval": WORKER_DURATION,
    "shutdown_timeout": WORKER_DURATION,
    "dequeue_strategy": st.one_of(ANY, st.sampled_from(["priority", "round_robin", "random"])),
    "before_process": st.one_of(ANY, st.sampled_from([jobs.on_done])),
    "after_process": st.one_of(ANY, st.sampled_from([jobs.on_done])),
    "on_exception": st.one_of(ANY, st.sampled_from([jobs.on_done, [jobs.on_done]])),
    "timeout_grace": WORKER_DURATION,
    "name": st.one_of(ANY, st.text(max_size=40)),
    "flush_interval": WORKER_DURATION,
    "prefetch": st.one_of(ANY, st.integers(0, 100), st.just("auto")),
    "hold_limit": WORKER_DURATION,
    "metrics": st.one_of(ANY, st.builds(WorkerMetrics)),
}


def test_worker_values__cover_every_worker_option() -> None:
    import inspect

    assert sorted(WORKER_VALUES) == sorted(set(inspect.signature(Worker).parameters) - {"app"})


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WORKER_VALUES))
def test_worker_option__any_value_is_refused_cleanly_or_runs_a_job(
        make_app: MakeApp, name: str) -> None:
    unconnected = make_app()
    accepted = accepted_values(WORKER_VALUES[name], lambda v: Worker(unconnected, **{name: v}),
                               name, lambda v: known_worker_bug(name, v))
    problems = []
    for value in one_of_each_kind(accepted):
        try:
            run_worker_with(make_app, name, value)
        except Exception as exc:  # noqa: BLE001 - every value's failure is reported at once
            problems.append(f"{name}={value!r}: {type(exc).__name__}: {exc}")
    assert not problems, "\n".join(problems)


def run_worker_with(make_app: MakeApp, name: str, value: Any) -> None:
    """A real worker (in a thread) built with ``name=value`` runs a job and stops."""
    app = make_app()
    options = {**{k: v for k, v in FAST.items() if k != name}, name: value}
    queue = Worker(app, **options).queues[0]
    job = app.enqueue(jobs.add, 1, 2, _queue=queue)
    assert job is not None
    runner = WorkerThread(app, **options).start()

    def complete() -> bool:
        alive = runner.thread.is_alive()  # a burst worker leaves once the job is recorded
        if app.get_job(job.id).status.value == "complete":
            return True
        if not alive:
            raise RuntimeError(f"the worker with {name}={value!r} stopped: {runner.error!r}")
        return False

    try:
        eventually(complete, timeout=10, message=f"the job run by a worker with {name}={value!r}")
    finally:
        runner.stop(now=True, timeout=10)
    assert app.get_job(job.id).result == 3
    app.close()  # many values in one test: hold no connections for the rest of it


WORKER_DURATIONS = ("poll_interval", "heartbeat_interval", "flush_interval")
WORKER_DEFECTS = [
    Defect("Worker durations are not capped: a huge poll, heartbeat or flush interval "
           "is accepted, then the worker's own threads die (OverflowError in their waits)",
           WORKER_DURATIONS, huge,
           (("poll_interval", 1e300), ("heartbeat_interval", 1e300),
            ("flush_interval", timedelta.max))),
    Defect("flush_interval has no cap: with a flush interval of a day, the completion writer "
           "holds every outcome that long before writing it",
           ("flush_interval",), lambda v: not seconds_below(10.0)(v) and bool(numbers(v)),
           (("flush_interval", timedelta(days=1)),)),
    Defect("a NUL byte or a lone surrogate in the worker name reaches PostgreSQL (DataError) "
           "when the worker registers",
           ("name",), bad_text, (("name", "\x00"), ("name", "\ud800"))),
    Defect("Worker queues are not checked as _queue is: a NUL byte reaches PostgreSQL "
           "(DataError), and names over 255 characters are accepted though no job can have them",
           ("queues",), lambda v: bad_text(v) or any(len(t) > 255 for t in texts(v)),
           (("queues", "\x00"), ("queues", ["x" * 256]))),
    Defect("queues and on_exception are not checked before use: None, True or 5 fail with "
           "'... object is not iterable', naming no option",
           ("queues", "on_exception"),
           lambda v: not (callable(v) or isinstance(v, (str, bytes)) or hasattr(v, "__iter__")),
           (("queues", None), ("queues", 5), ("on_exception", True))),
    Defect("metrics is not checked: any object is accepted and the worker's claim loop then "
           "calls job_started on it (AttributeError)",
           ("metrics",), lambda v: v is not None and not isinstance(v, WorkerMetrics),
           (("metrics", True), ("metrics", "x"))),
]
#: Values a worker must refuse: trying them would take the machine down (threads, memory).
IMPOSSIBLE = [
    pytest.param("concurrency", 2**31 - 1, id="concurrency=2**31-1"),
    pytest.param("concurrency", 10**30, id="concurrency=10**30"),
]


def impossible(name: str, value: Any) -> bool:
    return name == "concurrency" and isinstance(value, int) and value > 1024


@pytest.mark.parametrize(("name", "value"), IMPOSSIBLE)
def test_worker_option__a_value_no_machine_can_run_is_refused(app: Werk, name: str,
                                                              value: Any) -> None:
    with pytest.raises((TypeError, ValueError), match=name):
        Worker(app, **{name: value})


def known_worker_bug(name: str, value: Any) -> bool:
    """Values never to try on a real worker, and those of an open defect."""
    return impossible(name, value) or any(
        name in d.options and d.concerns(value) for d in OPEN_DEFECTS)


@pytest.mark.parametrize(("name", "value"), pinned(WORKER_DEFECTS))
def test_worker_option__a_former_defect_is_refused_cleanly_or_runs_a_job(
        app: Werk, make_app: MakeApp, name: str, value: Any) -> None:
    try:
        Worker(app, **{name: value})
    except (TypeError, ValueError) as exc:
        assert_names(exc, name)
        return
    run_worker_with(make_app, name, value)
