"""Periodic jobs: ``CronScheduler`` enqueues a job at each tick of a cron expression or a
fixed interval.

One scheduler is active at a time across every process that runs one: the leader holds a
session-level advisory lock on a connection of its own (in PgBouncer mode a lease row,
renewed while it leads; see ``pgwerk.store.lease``). The others try again every
``retry_interval`` seconds, so when the leader dies (its connection closes and the lock with
it, or its lease expires) another takes over. Each tick is enqueued with the idempotency key
``cron:<name>:<tick time, ISO 8601 UTC>``: even two leaders at once cannot enqueue a tick
twice. The schedules, their pause flags and their last tick are kept in the ``cron`` table,
so a new leader goes on where the previous one stopped.

Example::

    from pgwerk import Werk
    from pgwerk.cron import CronScheduler

    app = Werk()
    scheduler = CronScheduler(app)
    scheduler.register("myapp.tasks.cleanup", cron="*/15 * * * *", queue="maintenance")
    scheduler.register(send_digest, interval=3600, kwargs={"kind": "hourly"})
    scheduler.run()        # blocks; or `pgwerk-worker myapp:app --scheduler`

Ticks are computed in UTC (or in ``tz``); an interval schedule ticks at whole multiples of
its interval since the Unix epoch (``interval=3600`` at the top of every hour), so every
process computes the same tick times. A tick missed while no scheduler ran is still
enqueued if it is at most ``misfire_grace`` seconds old; older ones are skipped (and
logged). A paused schedule enqueues nothing; when resumed it goes on from then.

Each schedule is handled on its own: one that fails at tick time (its ticks cannot be
computed, its job cannot be built, or the database refuses its row) is logged and skipped,
and the others fire as usual.
"""

from __future__ import annotations

import builtins
import importlib
import json
import logging
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import psycopg

from pgwerk._allowlist import check_enqueue
from pgwerk._validate import seconds
from pgwerk.app import Werk
from pgwerk.exceptions import WerkError
from pgwerk.job import EnqueueParams, Job
from pgwerk.options import JobSpec, build_spec, function_path
from pgwerk.store.connections import UNREACHABLE, Row
from pgwerk.store.lease import leadership

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
#: ``EnqueueParams`` fields a schedule may set (the scheduler owns key, delay and at).
SCHEDULE_OPTIONS = tuple(
    f.name for f in fields(EnqueueParams)
    if f.name not in ("func", "args", "kwargs", "key", "delay", "at", "depends_on", "repeat")
)
#: The most ticks of one schedule a single pass enqueues (a safety net for tiny intervals).
MAX_TICKS_PER_PASS = 1000


class CronJobNotFound(WerkError, LookupError):
    """No schedule with the given name is registered or stored."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no cron job named {name!r}")
        self.name = name


@dataclass(frozen=True)
class CronJob:
    """A schedule as ``CronScheduler.list()`` reports it.

    Attributes:
        name: unique name (default: the function's dotted path).
        function: dotted path of the handler.
        schedule: the cron expression, or ``every <n>s`` for an interval.
        queue: queue its jobs go to.
        paused: no job is enqueued while paused.
        last_tick: the latest tick handled (enqueued, or skipped while paused).
        next_tick: the next tick due.
        registered: defined in this process; ``False`` for a schedule only found in the
            table (defined by another process, or left over from older code).
    """

    name: str
    function: str
    schedule: str
    queue: str
    paused: bool = False
    last_tick: datetime | None = None
    next_tick: datetime | None = None
    registered: bool = True


def _croniter() -> Any:
    try:
        croniter = importlib.import_module("croniter").croniter
    except ImportError:
        raise ImportError(
            "cron expressions need the croniter package: pip install pgwerk[cron] "
            "(or use interval=<seconds>, which needs nothing more)"
        ) from None
    return croniter


def _timezone(tz: str | tzinfo | None) -> tzinfo:
    if tz is None:
        return timezone.utc
    if isinstance(tz, tzinfo):
        return tz
    if isinstance(tz, str):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"tz {tz!r} is not a known time zone (e.g. 'Europe/Berlin')") \
                from None
    raise TypeError(f"tz must be a time zone name or a tzinfo, got {tz!r}")


@dataclass(frozen=True)
class _Schedule:
    """One registered schedule: when it ticks and what each tick enqueues."""

    name: str
    function: str
    params: EnqueueParams
    cron: str | None = None
    interval: float | None = None
    tz: tzinfo = field(default=timezone.utc)

    @property
    def text(self) -> str:
        if self.cron is not None:
            return self.cron if self.tz is timezone.utc else f"{self.cron} ({self.tz})"
        assert self.interval is not None
        return f"every {self.interval:g}s"

    def options_json(self) -> str:
        """What the table shows of the schedule's enqueue options."""
        shown = {"queue": self.params.queue, "priority": self.params.priority,
                 "args": list(self.params.args), "kwargs": dict(self.params.kwargs)}
        for name in SCHEDULE_OPTIONS:
            value = getattr(self.params, name)
            if name not in shown and value is not None and value != getattr(_DEFAULTS, name):
                shown[name] = value
        return json.dumps(shown, default=repr, sort_keys=True)

    # -- tick arithmetic (pure) ----------------------------------------------------------

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment``."""
        if self.interval is not None:
            step = int(round(self.interval * 1_000_000))
            elapsed = (moment - _EPOCH) // _MICROSECOND
            return _EPOCH + _MICROSECOND * ((elapsed // step + 1) * step)
        local = moment.astimezone(self.tz)
        found: datetime = _croniter()(self.cron, local).get_next(datetime)
        return found.astimezone(timezone.utc)

    def next_or_none(self, moment: datetime) -> datetime | None:
        """``next_after``, or ``None`` when no tick follows (a cron expression whose year
        field has passed: its schedule has ended)."""
        try:
            return self.next_after(moment)
        except ValueError:  # croniter found no matching date
            if self.interval is not None:
                raise
            return None

    def latest_until(self, moment: datetime) -> datetime:
        """The last tick at or before ``moment``."""
        if self.interval is not None:
            step = int(round(self.interval * 1_000_000))
            elapsed = (moment - _EPOCH) // _MICROSECOND
            return _EPOCH + _MICROSECOND * ((elapsed // step) * step)
        try:
            previous: datetime = _croniter()(self.cron, moment.astimezone(self.tz)).get_prev(
                datetime)
        except ValueError:  # no earlier tick (a year field in the future): none is due
            return moment
        following = self.next_after(previous)
        return following if following <= moment else previous.astimezone(timezone.utc)

    def ticks(self, after: datetime, until: datetime, limit: int) -> Iterator[datetime]:
        """Ticks in ``(after, until]``, oldest first, at most ``limit``."""
        tick = self.next_or_none(after)
        for _ in range(limit):
            if tick is None or tick > until:
                return
            yield tick
            tick = self.next_or_none(tick)

    def tick_params(self, tick: datetime) -> EnqueueParams:
        stamp = tick.astimezone(timezone.utc).isoformat()
        meta = {**(self.params.meta or {}), "cron": self.name, "tick": stamp}
        return replace(self.params, key=f"cron:{self.name}:{stamp}", meta=meta)


_DEFAULTS = EnqueueParams(func="pgwerk.cron.placeholder")

# Schedulers created for each app, so that `pgwerk-worker APP --scheduler` finds the
# schedules the app's module registered.
_SCHEDULERS: weakref.WeakKeyDictionary[Werk, list[CronScheduler]] = weakref.WeakKeyDictionary()


class CronScheduler:
    """Enqueues registered functions on a cron expression or a fixed interval.

    Args:
        app: the ``Werk`` whose queue gets the jobs.
        retry_interval: seconds between attempts of a non-leader to become the leader
            (how soon another process takes over after the leader dies).
        poll_interval: at most this many seconds pass between two looks at the table by
            the leader (how soon a pause or resume from another process takes effect).
        misfire_grace: ticks missed while no scheduler ran are enqueued late if they are
            at most this many seconds old; older ones are skipped.

    Example::

        scheduler = CronScheduler(app)
        scheduler.register(cleanup, cron="0 3 * * *", queue="maintenance", timeout=600)
        scheduler.register("myapp.tasks.ping", interval=60, name="ping")
        scheduler.run()
    """

    def __init__(self, app: Werk, *, retry_interval: float = 5.0, poll_interval: float = 1.0,
                 misfire_grace: float = 60.0) -> None:
        if not isinstance(app, Werk):
            raise TypeError(f"CronScheduler needs a Werk app, got {type(app).__name__}")
        self.app = app
        self.retry_interval = seconds("retry_interval", retry_interval, positive=True) or 5.0
        self.poll_interval = seconds("poll_interval", poll_interval, positive=True) or 1.0
        self.misfire_grace = seconds("misfire_grace", misfire_grace) or 0.0
        self._schedules: dict[str, _Schedule] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._running = False
        self._synced: tuple[_Schedule, ...] | None = None
        self._broken: set[str] = set()  # schedules whose ticks cannot be computed
        self._leader = False
        self.lock_key = zlib.crc32(f"pgwerk:cron:{app.config.schema}.{app.config.prefix}".encode())
        self._leadership = leadership(app._store, "cron", self.lock_key)
        _SCHEDULERS.setdefault(app, []).append(self)

    def __repr__(self) -> str:
        return f"<CronScheduler {len(self._schedules)} schedule(s) leader={self._leader}>"

    @classmethod
    def of(cls, app: Werk) -> CronScheduler:
        """The scheduler holding the schedules registered for ``app`` (all of them, if
        several schedulers were created for it); a new, empty one if there is none."""
        found = _SCHEDULERS.get(app, [])
        if len(found) == 1:
            return found[0]
        merged = cls(app)
        _SCHEDULERS[app].remove(merged)  # a view of the others, not one more scheduler
        for other in found:
            merged._schedules.update(other._schedules)
        return merged

    def with_app(self, app: Werk) -> CronScheduler:
        """A scheduler with the same schedules and settings, bound to another ``Werk``
        (for example one with other connection settings)."""
        copy = CronScheduler(app, retry_interval=self.retry_interval,
                             poll_interval=self.poll_interval, misfire_grace=self.misfire_grace)
        copy._schedules = dict(self._schedules)
        return copy

    @property
    def is_leader(self) -> bool:
        """Whether this scheduler currently holds the lock and enqueues ticks."""
        return self._leader

    @property
    def names(self) -> list[str]:
        """Names of the schedules registered on this scheduler."""
        with self._lock:
            return sorted(self._schedules)

    # -- defining schedules ---------------------------------------------------------------

    def register(self, func: Callable[..., Any] | str, *, cron: str | None = None,
                 interval: float | timedelta | None = None, name: str | None = None,
                 queue: str = "default", args: Sequence[Any] = (),
                 kwargs: Mapping[str, Any] | None = None, tz: str | tzinfo | None = None,
                 **options: Any) -> CronJob:
        """Enqueue ``func(*args, **kwargs)`` at every tick of ``cron`` or every
        ``interval`` seconds.

        Args:
            func: a module-level callable or its dotted path.
            cron: a cron expression (``"*/15 * * * *"``; needs the ``cron`` extra).
            interval: seconds (or a timedelta) between ticks, at least 1.
            name: unique name of the schedule; default the function's dotted path.
            queue: the queue its jobs go to.
            args / kwargs: the handler's payload.
            tz: time zone of the cron expression (name or tzinfo); default UTC.
            **options: other enqueue options, without the underscore: ``priority``,
                ``retry``, ``timeout``, ``heartbeat``, ``group``, ``meta``, ``ttl``,
                ``result_ttl``, ``failure_ttl``, ``failure_mode``, ``on_success``,
                ``on_failure``, ``on_stopped``.

        Returns:
            The schedule as a ``CronJob``.

        Raises:
            ValueError / TypeError: a bad schedule or option, a cron expression that never
                fires (``"0 0 30 2 *"``: February 30th), or another schedule already has
                this name. Nothing is registered.
        """
        unknown = sorted(set(options) - set(SCHEDULE_OPTIONS))
        if unknown:
            raise TypeError(
                f"register: unknown option(s) {', '.join(unknown)}; valid: "
                f"{', '.join(SCHEDULE_OPTIONS)} (key, delay, at, depends_on and repeat are "
                "set by the scheduler or make no sense for periodic jobs)"
            )
        if (cron is None) == (interval is None):
            raise ValueError("register takes exactly one of cron='* * * * *' or interval=seconds")
        path = function_path(func)
        if cron is not None:
            if not isinstance(cron, str) or not _croniter().is_valid(cron):
                raise ValueError(f"cron {cron!r} is not a valid cron expression")
        every = None
        if interval is not None:
            every = seconds("interval", interval, positive=True)
            if every is None or every < 1:
                raise ValueError(f"interval must be at least 1 second, got {interval!r}")
        schedule_name = path if name is None else name
        if not isinstance(schedule_name, str) or not schedule_name or len(schedule_name) > 200:
            raise ValueError(f"name must be a non-empty string of at most 200 characters, "
                             f"got {schedule_name!r}")
        params = EnqueueParams(func=path, args=tuple(args), kwargs=dict(kwargs or {}),
                               queue=queue, **options)
        spec = build_spec(params, self.app.config)  # every option checked now, not at a tick
        check_enqueue(self.app, [spec.row])  # and the app's handlers allow-list
        schedule = _Schedule(name=schedule_name, function=path, params=params, cron=cron,
                             interval=every, tz=_timezone(tz))
        if cron is not None:
            try:
                schedule.next_after(datetime.now(timezone.utc))
            except ValueError:  # croniter found no matching date
                raise ValueError(
                    f"cron {cron!r} never fires: no date matches it in the next 50 years "
                    "(a day the month does not have, such as February 30th?)"
                ) from None
        with self._lock:
            existing = self._schedules.get(schedule_name)
            if existing is not None and existing != schedule:
                raise ValueError(
                    f"a cron job named {schedule_name!r} is already registered "
                    f"({existing.function}, {existing.text}); pass another name="
                )
            self._schedules[schedule_name] = schedule
        return CronJob(name=schedule_name, function=path, schedule=schedule.text, queue=queue)

    def unregister(self, name: str) -> None:
        """Forget a schedule here and in the table. A schedule still registered by the code
        of a running scheduler comes back when that scheduler syncs; remove it from the
        code to remove it for good.

        Raises:
            CronJobNotFound: neither registered here nor stored.
        """
        with self._lock:
            known = self._schedules.pop(name, None) is not None
        removed = self.app._store.cron_delete(name)
        if not (known or removed):
            raise CronJobNotFound(name)

    def pause(self, name: str) -> None:
        """Stop enqueueing the schedule's ticks (for every scheduler process) until
        ``resume``. Raises ``CronJobNotFound``."""
        self._set_paused(name, True)

    def resume(self, name: str) -> None:
        """Enqueue the schedule's ticks again, from now on (ticks missed while paused are
        not enqueued). Raises ``CronJobNotFound``."""
        self._set_paused(name, False)

    def _set_paused(self, name: str, paused: bool) -> None:
        store = self.app._store
        if store.cron_pause(name, paused):
            return
        with self._lock:
            schedule = self._schedules.get(name)
        if schedule is None:
            raise CronJobNotFound(name)
        store.cron_upsert(_upsert_params([schedule]))
        store.cron_pause(name, paused)

    def run_now(self, name: str) -> Job:
        """Enqueue one run of a schedule now, outside its ticks (the "run now" button).

        It has no tick key, so it never stands in for a tick; its ``meta`` carries
        ``cron`` (the schedule's name) and ``manual: true``. A schedule defined in this
        process is enqueued with all its options; one only found in the table with its
        function, queue, priority and arguments. Raises ``CronJobNotFound``.
        """
        with self._lock:
            schedule = self._schedules.get(name)
        if schedule is not None:
            params = replace(schedule.params,
                             meta={**(schedule.params.meta or {}), "cron": name, "manual": True})
        else:
            rows = [r for r in self.app._store.cron_list() if r["name"] == name]
            if not rows:
                raise CronJobNotFound(name)
            options = rows[0]["options"] or {}
            params = EnqueueParams(
                func=rows[0]["function"], args=tuple(options.get("args") or ()),
                kwargs=dict(options.get("kwargs") or {}),
                queue=str(options.get("queue") or "default"),
                priority=int(options.get("priority") or 0),
                meta={"cron": name, "manual": True})
        job = self.app._insert([build_spec(params, self.app.config)])[0]
        assert job is not None  # no key, so no collision
        return job

    def list(self) -> list[CronJob]:
        """Every schedule registered here or stored in the table, by name."""
        rows = {r["name"]: r for r in self.app._store.cron_list()}
        with self._lock:
            schedules = dict(self._schedules)
        now = datetime.now(timezone.utc)
        found = []
        for name in sorted(set(rows) | set(schedules)):
            row, schedule = rows.get(name), schedules.get(name)
            if schedule is not None:
                next_tick = row["next_tick"] if row and row["next_tick"] else None
                found.append(CronJob(
                    name=name, function=schedule.function, schedule=schedule.text,
                    queue=schedule.params.queue, paused=bool(row and row["paused"]),
                    last_tick=row["last_tick"] if row else None,
                    next_tick=next_tick or schedule.next_or_none(now), registered=True,
                ))
            else:
                assert row is not None
                options = row["options"] or {}
                found.append(CronJob(
                    name=name, function=row["function"], schedule=row["schedule"],
                    queue=str(options.get("queue", "default")), paused=row["paused"],
                    last_tick=row["last_tick"], next_tick=row["next_tick"], registered=False,
                ))
        return found

    # -- running ----------------------------------------------------------------------------

    def run(self) -> None:
        """Take part in leader election and, while leader, enqueue ticks. Blocks until
        ``stop()``. Survives losing the database: it reconnects and competes again."""
        self._stop.clear()
        self._running = True
        backoff = 0.5
        try:
            while not self._stop.is_set():
                conn: psycopg.Connection[Row] | None = None
                try:
                    self.app.connect()  # creates or checks the tables
                    conn = self.app._store.connect_direct("run the cron scheduler")
                    self._follow_or_lead(conn)
                    backoff = 0.5
                except UNREACHABLE as exc:
                    if self._stop.is_set():
                        break
                    logger.warning("cron scheduler: database unreachable (%s); retrying in "
                                   "%.1fs", str(exc).strip(), backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.retry_interval)
                except Exception:
                    # A statement failed (the tables were dropped, a bug): never die
                    # silently in a background thread; start over a little later.
                    if self._stop.is_set():
                        break
                    logger.exception("cron scheduler failed; starting over in %.1fs",
                                     self.retry_interval)
                    self._stop.wait(self.retry_interval)
                finally:
                    if self._leader:
                        logger.info("cron scheduler: no longer the leader")
                    self._leader = False
                    self._synced = None
                    if conn is not None:
                        conn.close()  # releases the advisory lock, if we held it
        finally:
            self._running = False

    def stop(self) -> None:
        """Ask ``run()`` to return (and give up leadership). Safe from any thread or signal
        handler."""
        self._stop.set()

    def _follow_or_lead(self, conn: psycopg.Connection[Row]) -> None:
        leadership = self._leadership
        self._sync(conn)
        while not self._stop.is_set():
            if leadership.acquire(conn):
                break
            self._stop.wait(self.retry_interval)
        else:
            return
        self._leader = True
        logger.info("cron scheduler: leader now, %d schedule(s): %s",
                    len(self._schedules), ", ".join(self.names) or "none")
        try:
            while not self._stop.is_set():
                wait = self._pass(conn)
                self._stop.wait(min(wait, self.poll_interval, leadership.renew_every))
                if not self._stop.is_set() and not leadership.renew(conn):
                    logger.warning("cron scheduler: the leader lease expired before it was "
                                   "renewed and another scheduler took it")
                    return
        finally:
            if not conn.closed and not conn.broken:
                try:
                    leadership.release(conn)
                except psycopg.Error:
                    pass

    def _sync(self, conn: psycopg.Connection[Row]) -> None:
        with self._lock:
            schedules = tuple(self._schedules.values())
        if schedules and schedules != self._synced:
            self.app._store.cron_upsert(_upsert_params(list(schedules)), conn)
        self._synced = schedules

    def tick(self, now: datetime | None = None) -> builtins.list[Job]:
        """One pass of the leader's duty, without the election: enqueue every tick that is
        due, advance the schedules, and return the jobs enqueued. ``now`` defaults to the
        database's clock (tests pass a moment of their choosing)."""
        self.app.connect()
        conn = self.app._store.connect_direct("run the cron scheduler")
        try:
            self._sync(conn)
            jobs: builtins.list[Job] = []
            self._pass(conn, now, jobs)
            return jobs
        finally:
            self._synced = None
            conn.close()

    def _pass(self, conn: psycopg.Connection[Row], now: datetime | None = None,
              enqueued: builtins.list[Job] | None = None) -> float:
        """Enqueue due ticks in one transaction; return seconds until the next is due."""
        self._sync(conn)
        with self._lock:
            schedules = dict(self._schedules)
        if not schedules:
            return self.poll_interval
        app, store = self.app, self.app._store
        with conn.transaction():
            rows = store.cron_state(conn, list(schedules))
            clock = now or rows[0]["now"]
            state = {r["name"]: r for r in rows if r["name"] is not None}
            if set(schedules) - set(state):  # deleted by another process: define again
                self._synced = None
                self._sync(conn)
                rows = store.cron_state(conn, list(schedules))
                state = {r["name"]: r for r in rows if r["name"] is not None}
            planned: builtins.list[tuple[str, builtins.list[JobSpec]]] = []
            advance: builtins.list[tuple[str, datetime, datetime | None]] = []
            for name, schedule in schedules.items():
                # One schedule that fails is logged and skipped; the others still fire.
                try:
                    due, last, next_tick = self._due(name, schedule, state.get(name, {}), clock)
                except Exception:
                    self._report_broken(name)
                    continue
                self._broken.discard(name)
                advance.append((name, last, next_tick))
                try:
                    specs = [build_spec(schedule.tick_params(t), app.config) for t in due]
                except Exception:
                    logger.exception("cron %s: ticks %s skipped: their jobs could not be "
                                     "built", name, _tick_list(due))
                    continue
                if specs:
                    planned.append((name, specs))
            if planned:
                new = self._insert(conn, planned)
                if enqueued is not None:
                    enqueued.extend(new)
                for job in new:
                    logger.info("cron %s: enqueued job %s for %s", job.meta.get("cron"),
                                job.id, job.meta.get("tick"),
                                extra={"job_id": job.id, "function": job.function,
                                       "queue": job.queue})
            if not advance:
                return self.poll_interval
            names, lasts, nexts = zip(*advance, strict=True)
            store.cron_advance(conn, list(names), list(lasts), list(nexts))
        upcoming = [n for n in nexts if n is not None]
        if not upcoming:
            return self.poll_interval
        due_in = min(upcoming) - clock
        # A little after the tick, so that the database's clock has passed it too.
        return max(due_in.total_seconds() + 0.005, 0.005)

    def _due(self, name: str, schedule: _Schedule, row: Mapping[str, Any],
             clock: datetime) -> tuple[builtins.list[datetime], datetime, datetime | None]:
        """The ticks of one schedule due at ``clock``, its new last tick and its next
        (``None`` once a schedule with a year field has ended)."""
        last, paused = row.get("last_tick"), bool(row.get("paused"))
        next_tick = schedule.next_or_none(clock)
        if last is None or paused:
            return [], schedule.latest_until(clock), next_tick
        start = last
        oldest = clock - timedelta(seconds=self.misfire_grace)
        following = schedule.next_or_none(last)
        if following is not None and following < oldest:
            start = max(last, oldest - _MICROSECOND)
            logger.warning("cron %s: skipping ticks between %s and %s (older than "
                           "misfire_grace=%gs)", name, last.isoformat(),
                           oldest.isoformat(), self.misfire_grace)
        due = list(schedule.ticks(start, clock, MAX_TICKS_PER_PASS))
        return due, due[-1] if due else last, next_tick

    def _report_broken(self, name: str) -> None:
        # Logged in full once, not on every pass while it stays broken.
        if name in self._broken:
            logger.debug("cron %s: still failing; skipped", name, exc_info=True)
            return
        self._broken.add(name)
        logger.exception("cron %s: cannot compute its ticks; skipped until it can", name)

    def _insert(self, conn: psycopg.Connection[Row],
                planned: builtins.list[tuple[str, builtins.list[JobSpec]]]) -> builtins.list[Job]:
        """Insert the jobs of every schedule in one statement, oldest tick first. If the
        database refuses a row (a trigger, a constraint of the user's), insert schedule by
        schedule instead, each in a savepoint, and skip those refused."""
        store = self.app._store
        every = sorted((spec for _, specs in planned for spec in specs),
                       key=lambda spec: json.loads(spec.row["meta"])["tick"])
        try:
            with conn.transaction():  # a savepoint inside the pass's transaction
                jobs = store.insert_in(conn, every)
        except psycopg.Error:
            if conn.broken or conn.closed:
                raise
            jobs = []
            for name, specs in planned:
                try:
                    with conn.transaction():
                        jobs.extend(store.insert_in(conn, specs))
                except psycopg.Error:
                    if conn.broken or conn.closed:
                        raise
                    ticks = [json.loads(spec.row["meta"])["tick"] for spec in specs]
                    logger.exception("cron %s: ticks %s skipped: the database refused "
                                     "their jobs", name, ", ".join(ticks))
        return sorted((job for job in jobs if job is not None),
                      key=lambda job: str(job.meta.get("tick")))


def _tick_list(ticks: builtins.list[datetime]) -> str:
    return ", ".join(t.astimezone(timezone.utc).isoformat() for t in ticks) or "none"


def _upsert_params(schedules: list[_Schedule]) -> dict[str, list[str]]:
    return {
        "names": [s.name for s in schedules],
        "functions": [s.function for s in schedules],
        "schedules": [s.text for s in schedules],
        "options": [s.options_json() for s in schedules],
    }


def run_in_thread(scheduler: CronScheduler) -> threading.Thread:
    """Start ``scheduler.run()`` in a daemon thread (stop it with ``scheduler.stop()``)."""
    thread = threading.Thread(target=scheduler.run, name="pgwerk-cron", daemon=True)
    thread.start()
    return thread


def wait_for_leader(scheduler: CronScheduler, timeout: float) -> bool:
    """Block until ``scheduler`` is the leader or ``timeout`` passes; True if it is."""
    deadline = time.monotonic() + timeout
    while not scheduler.is_leader and time.monotonic() < deadline:
        time.sleep(0.01)
    return scheduler.is_leader
