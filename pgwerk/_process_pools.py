"""The fork and process pools: handlers in forked children, behind the interface of
``pgwerk._pools``.

``pool="fork"`` forks a fresh child per job (isolation, hard kills); ``pool="process"``
keeps ``capacity`` children and sends them jobs through a pipe. A reader thread collects
outcomes (and the progress jobs report before them), notices children that die (busy or
idle) and replaces idle ones. Children die with their worker, even a SIGKILLed one.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import pickle
import select
import signal
import struct
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

from pgwerk._execute import (
    ABORTED,
    ERROR,
    INTERRUPTED,
    TIMEOUT,
    Outcome,
    execute,
    stray_outcome,
)
from pgwerk._progress import INTERVAL
from pgwerk._timeouts import Deadline, DeadlineWatcher, raise_in_thread, release_logging_locks
from pgwerk.exceptions import JobAborted, JobTimeout, WorkerShutdown
from pgwerk.job import Job

if TYPE_CHECKING:
    from pgwerk._pools import OnDone
    from pgwerk.app import Werk
    from pgwerk.worker import Worker

logger = logging.getLogger(__name__)


def _write_frame(fd: int, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(struct.pack("!I", len(data)) + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> Any:
    header = _read_exact(fd, 4)
    if header is None:
        return None
    body = _read_exact(fd, struct.unpack("!I", header)[0])
    return None if body is None else pickle.loads(body)


class StartedFrame(NamedTuple):
    """A child took its job from the pipe and starts it: from then on, the child's death is
    the job's (before it, the job never ran and goes back to its queue)."""

    job_id: int


class ProgressFrame(NamedTuple):
    """What a job in a child reported with ``ctx.progress``, on its way to the parent."""

    fraction: float
    message: str | None


class _ProgressSender:
    """In a child: sends the running job's progress to the parent, at most one frame per
    ``INTERVAL`` (the parent throttles again on the way to the database; this keeps the
    pipe and the reader thread quiet whatever the handler does).

    A report within the interval after a frame waits (the newest replaces the older), and a
    thread of the child's own sends it once the interval has passed, so that a handler that
    reports and then works for long is seen on time. What still waits when the handler
    returns is sent just before the outcome; nothing is sent after it (to the parent, a
    frame from a child that has no job means that it died). A frame is about 2 KB at most
    (``PROGRESS_MESSAGE_MAX``), less than ``PIPE_BUF``, so each goes in one atomic write: an
    interruption of the handler (its time limit) cannot leave half a frame in the pipe.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._cond = threading.Condition()
        self._job: Job | None = None  # the job running now
        self._waiting: tuple[float, str | None] | None = None
        self._next = 0.0
        self._thread: threading.Thread | None = None

    def begin(self, job: Job) -> None:
        with self._cond:
            self._job, self._waiting, self._next = job, None, 0.0

    def report(self, job: Job, fraction: float, message: str | None) -> None:
        with self._cond:
            if job is not self._job:
                return  # a thread an earlier handler left behind, still reporting
            now = time.monotonic()
            if self._waiting is None and now >= self._next:
                self._send((fraction, message), now)
                return
            self._waiting = (fraction, message)
            if self._thread is None:
                self._thread = threading.Thread(target=self._send_later,
                                                name="pgwerk-progress", daemon=True)
                self._thread.start()
            self._cond.notify()

    def end(self) -> None:
        """The handler returned: send what waits, and nothing more for this job."""
        with self._cond:
            if self._job is not None and self._waiting is not None:
                self._send(self._waiting, time.monotonic())
            self._job, self._waiting = None, None

    def _send(self, value: tuple[float, str | None], now: float) -> None:
        self._waiting, self._next = None, now + INTERVAL
        _write_frame(self._fd, ProgressFrame(*value))

    def _send_later(self) -> None:
        try:
            with self._cond:
                while True:
                    if self._waiting is None:  # only ever set while a job runs
                        self._cond.wait()
                        continue
                    delay = self._next - time.monotonic()
                    if delay > 0:
                        self._cond.wait(delay)
                        continue
                    self._send(self._waiting, time.monotonic())
        except OSError as exc:  # the parent is gone: this child is about to end too
            logger.warning("cannot send a job's progress to the worker: %s", exc)


def _child_main(app: Werk, worker: Worker, jobs_fd: int, results_fd: int,
                first: Job | None) -> None:
    """The body of a forked child: run jobs from the pipe (or just ``first``), report each."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watcher = DeadlineWatcher(use_signal=True)
    watcher.start()
    main = threading.get_ident()
    progress = _ProgressSender(results_fd)
    job = first
    while True:
        if job is None:
            job = _read_frame(jobs_fd)
            if job is None:
                return
        _write_frame(results_fd, StartedFrame(job.id))
        deadline = None
        if job.timeout:
            deadline = watcher.add(job.timeout, lambda: raise_in_thread(main, JobTimeout),
                                   signal_safe=True)
        progress.begin(job)
        try:
            outcome = execute(app, worker, job, functools.partial(watcher.cancel, deadline),
                              progress.report)
        except (JobTimeout, JobAborted, WorkerShutdown) as exc:
            outcome = stray_outcome(exc)
        watcher.cancel(deadline)
        if deadline is not None and deadline.fired:
            release_logging_locks()  # the next job of this child must be able to log
        progress.end()
        _write_frame(results_fd, replace(outcome, exception=None))
        if first is not None:
            return
        job = None


# -- children die with their worker --------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    # Resolved once in the parent: looking a symbol up in a child forked from a threaded
    # process could wait for a loader lock some other thread held at the fork.
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None


_prctl = _load_prctl()


def die_with_parent(parent: int) -> None:
    """Called first thing in a forked child: make sure it never outlives ``parent``.

    A child that outlived a SIGKILLed worker would go on running a job that the sweep has
    meanwhile handed to another worker. On Linux the kernel sends SIGKILL when the parent
    dies (``PR_SET_PDEATHSIG``; strictly, when the parent's thread that forked the child
    ends: pools fork only from threads that live as long as their children). The parent
    may have died before the request was made, so the parent pid is checked after it.
    Elsewhere a thread checks the parent pid twice a second.
    """
    if _prctl is not None and _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
        if os.getppid() != parent:
            os._exit(1)
        return
    threading.Thread(target=_watch_parent, args=(parent,), name="pgwerk-parent-watch",
                     daemon=True).start()


def _watch_parent(parent: int) -> None:  # pragma: no cover - only without prctl
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)


class _Child:
    """One forked process and the pipes to it."""

    def __init__(self, pool: ProcessPool, first: Job | None) -> None:
        jobs_r, jobs_w = os.pipe()
        try:
            results_r, results_w = os.pipe()
        except OSError:
            os.close(jobs_r)
            os.close(jobs_w)
            raise
        parent = os.getpid()
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns about fork in a threaded process; the child only runs
                # the job and pgwerk never touches locks or connections inherited from the
                # parent.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:  # no process to be had (EAGAIN, ENOMEM): nothing may leak
            for fd in (jobs_r, jobs_w, results_r, results_w):
                os.close(fd)
            raise
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                die_with_parent(parent)
                os.close(jobs_w)
                os.close(results_r)
                # Pipes of the siblings forked before this child: holding their write ends
                # would keep them from ever seeing EOF on their job pipe (and so exiting).
                for sibling in [*pool._idle, *pool._busy.values(), *pool._dead,
                                *pool._retiring]:
                    if {sibling.jobs_fd, sibling.results_fd} & {jobs_r, results_w}:
                        continue  # a number reused for this child's own pipes
                    sibling.close()
                _child_main(pool.app, pool.worker, jobs_r, results_w, first)
            except BaseException:
                logger.exception("pgwerk child process failed")
                code = 1
            finally:
                os._exit(code)
        os.close(jobs_r)
        os.close(results_w)
        self.pid = pid
        self.jobs_fd: int = jobs_w
        self.results_fd: int = results_r
        self.job: Job | None = first
        self.kill_reason: str | None = None
        self.deadline: Deadline | None = None
        # Whether it took its job (a StartedFrame came), and the signal it died of.
        self.started = False
        self.killed_by: int | None = None

    def exit_description(self, patience: float = 0.0) -> str:
        """Reap the child and say how it ended. With ``patience``, a child still running
        after that many seconds is killed first (one that closed its pipe but hangs)."""
        end = time.monotonic() + patience
        try:
            while True:
                pid, status = os.waitpid(self.pid, os.WNOHANG if patience else 0)
                if pid:
                    break
                if time.monotonic() >= end:
                    os.kill(self.pid, signal.SIGKILL)
                    _, status = os.waitpid(self.pid, 0)
                    break
                time.sleep(0.005)
        except ChildProcessError:
            return "the child process vanished"
        if os.WIFSIGNALED(status):
            sig = self.killed_by = os.WTERMSIG(status)
            return f"the child process was killed by signal {signal.Signals(sig).name}"
        return f"the child process exited with code {os.WEXITSTATUS(status)}"

    def close(self) -> None:
        # Forget the numbers before closing them: a child forked meanwhile (which closes
        # the pipes of its siblings) must never see a number the OS may already reuse.
        fds, self.jobs_fd, self.results_fd = (self.jobs_fd, self.results_fd), -1, -1
        for fd in fds:
            if fd < 0:
                continue
            try:
                os.close(fd)
            except OSError:
                pass


class ProcessPool:
    """Handlers in forked processes. ``persistent=False`` (``pool="fork"``) forks a fresh
    child per job; ``persistent=True`` (``pool="process"``) keeps ``capacity`` children and
    sends them jobs. A time limit raises ``JobTimeout`` in the child (SIGALRM), then the
    parent kills it with SIGKILL after the grace period; abort kills the child at once.

    Children die unexpectedly (the OOM killer, an operator's ``kill``): the reader thread
    watches idle children too, and reaps and replaces one that dies. A job handed to a
    child that died unseen goes to a fresh child; one written to a child that is killed
    before it takes it (it acknowledges each job with a ``StartedFrame``) goes back to its
    queue without spending an attempt; a child that dies while running a job ends that job
    as failed. Only the reader thread closes a child's pipes while the pool
    runs, so the descriptors it waits on are never closed under it.
    """

    def __init__(self, app: Werk, worker: Worker, capacity: int, watcher: DeadlineWatcher,
                 grace: float, on_done: OnDone, persistent: bool) -> None:
        self.kind = "process" if persistent else "fork"
        self.app, self.worker, self.capacity = app, worker, capacity
        self.watcher, self.grace, self.on_done = watcher, grace, on_done
        self.persistent = persistent
        self._lock = threading.Lock()
        self._idle: list[_Child] = []
        self._busy: dict[int, _Child] = {}
        # Children found dead by ``submit`` and jobs it could not start: the reader thread
        # buries the former and reports the latter (``on_done`` must not run in ``submit``,
        # whose caller holds the worker's dispatch lock).
        self._dead: list[_Child] = []
        self._rejected: list[tuple[Job, Outcome]] = []
        self._retiring: list[_Child] = []
        self._stopping = False
        self._failure: str | None = None
        self._reader = threading.Thread(target=self._run_reader, name="pgwerk-children",
                                        daemon=True)
        self._wake_r, self._wake_w = os.pipe()

    def start(self) -> None:
        try:
            if self.persistent:
                while len(self._idle) + len(self._busy) < self.capacity:
                    self._idle.append(_Child(self, None))
            self._reader.start()
        except BaseException:  # no fork to be had: the children made so far must go
            self.stop()
            raise

    def problem(self) -> str | None:
        if self._failure is not None:
            return self._failure
        if self._reader.ident is not None and not self._reader.is_alive() \
                and not self._stopping:
            return f"the {self.kind} pool's reader thread ended unexpectedly"
        return None

    def child_pids(self) -> list[int]:
        """Pids of the pool's children, idle and busy."""
        with self._lock:
            return [c.pid for c in [*self._idle, *self._busy.values()]]

    def free_slots(self) -> int:
        with self._lock:
            return self.capacity - len(self._busy)

    def running_ids(self) -> list[int]:
        with self._lock:
            return list(self._busy)

    def submit(self, job: Job) -> None:
        try:
            child = self._hand_over(job)
        except OSError as exc:  # no fork or no pipe to be had (EAGAIN, ENOMEM, EMFILE)
            logger.error("job %s: cannot start a child process: %s", job.id, exc)
            with self._lock:
                self._rejected.append((job, Outcome(ERROR, error=(
                    f"pgwerk: job {job.id} could not be started in a child process: {exc}"))))
            self._wake()
            return
        if job.timeout:
            child.deadline = self.watcher.add(job.timeout + self.grace,
                                              lambda: self._kill(job.id, TIMEOUT))
        self._wake()

    def _hand_over(self, job: Job) -> _Child:
        with self._lock:
            if not self.persistent:
                child = _Child(self, job)
            else:
                child = self._send_to_idle(job) or self._send_to_fresh(job)
            self._busy[job.id] = child
        return child

    def _send_to_idle(self, job: Job) -> _Child | None:
        while self._idle:
            child = self._idle.pop()
            try:
                _write_frame(child.jobs_fd, job)
            except OSError as exc:  # it died while idle, before the reader noticed
                logger.warning("child process %s died while idle (%s); job %s goes to "
                               "another", child.pid, exc, job.id)
                self._dead.append(child)
                continue
            child.job, child.started = job, False
            return child
        return None

    def _send_to_fresh(self, job: Job) -> _Child:
        child = _Child(self, None)
        try:
            _write_frame(child.jobs_fd, job)
        except OSError:
            self._dead.append(child)
            raise
        child.job, child.started = job, False
        return child

    def _wake(self) -> None:
        if self._wake_w < 0:
            return
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:  # pragma: no cover - the reader has plenty of wake-ups
            pass

    def abort(self, job_id: int) -> bool:
        return self._kill(job_id, ABORTED)

    def interrupt(self) -> list[int]:
        ids = self.running_ids()
        for job_id in ids:
            self._kill(job_id, INTERRUPTED)
        return ids

    def _kill(self, job_id: int, reason: str) -> bool:
        with self._lock:
            child = self._busy.get(job_id)
            if child is None or child.kill_reason is not None:
                return False
            child.kill_reason = reason
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            idle, self._idle = self._idle, []
            if self._reader.is_alive():  # it closes and reaps them (it may be watching them)
                self._retiring.extend(idle)
                idle = []
            else:
                idle += self._dead
                self._dead = []
        self._wake()
        if idle:
            self._retire(idle)
        elif self._reader.is_alive():
            self._reader.join(timeout=5.0)
        if not self._reader.is_alive() and self._wake_w >= 0:  # nobody wakes it any more
            fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
            for fd in fds:
                os.close(fd)

    @staticmethod
    def _retire(children: list[_Child]) -> None:
        for child in children:
            child.close()  # EOF on its job pipe: the child exits
        for child in children:
            child.exit_description(patience=2.0)

    # -- the reader thread ------------------------------------------------------------------

    def _run_reader(self) -> None:
        try:
            self._read_results()
        except BaseException as exc:  # noqa: B036 - whatever it was, the worker must know
            self._failure = f"the {self.kind} pool's reader thread died: {exc!r}"
            logger.critical("%s", self._failure, exc_info=True)

    def _read_results(self) -> None:
        while True:
            with self._lock:
                if self._stopping and not self._busy and not self._rejected:
                    break
                dead, self._dead = self._dead, []
                rejected, self._rejected = self._rejected, []
                retiring, self._retiring = self._retiring, []
                watched = {c.results_fd: c for c in [*self._idle, *self._busy.values()]}
            self._retire(retiring)
            for child in dead:
                self._guarded(self._bury, child, False)
            for job, outcome in rejected:
                self._report(job, outcome)
            # poll, not select: select cannot watch a descriptor numbered 1024 or more,
            # which a busy application's process easily has.
            poller = select.poll()
            for fd in (self._wake_r, *watched):
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(1000):
                if fd == self._wake_r:
                    os.read(self._wake_r, 4096)
                else:
                    self._guarded(self._on_readable, watched[fd])
        with self._lock:
            dead, self._dead = self._dead, []
            retiring, self._retiring = self._retiring, []
        self._retire(retiring)
        for child in dead:
            self._bury(child, replace=False)

    @staticmethod
    def _guarded(step: Callable[..., None], child: _Child, *args: Any) -> None:
        """One child's trouble is logged and stays that child's: the reader goes on."""
        try:
            step(child, *args)
        except Exception:
            logger.exception("child process %s: unexpected error; the pool goes on", child.pid)

    def _on_readable(self, child: _Child) -> None:
        with self._lock:
            idle = child in self._idle
            if idle:
                self._idle.remove(child)
            busy = child.job is not None and self._busy.get(child.job.id) is child
        if idle:  # an idle child has nothing to say: it died
            self._bury(child, replace=True)
        elif busy:
            self._collect(child)
        # else: submit found it dead meanwhile; it is buried from ``_dead``.

    def _bury(self, child: _Child, replace: bool) -> None:
        """Reap a child that died (or misbehaved) outside a job; replace it if idle."""
        cause = child.exit_description(patience=1.0)
        child.close()
        logger.warning("child process %s of the %s pool ended while idle: %s", child.pid,
                       self.kind, cause)
        if not replace:
            return
        with self._lock:
            if self._stopping or len(self._idle) + len(self._busy) >= self.capacity:
                return
            try:
                self._idle.append(_Child(self, None))
            except OSError as exc:  # submit forks one when it needs it
                logger.error("cannot replace the child process: %s", exc)

    def _collect(self, child: _Child) -> None:
        job = child.job
        assert job is not None
        try:
            read = self._read_outcome(child, job)
            if read is None:  # a progress report: the job runs on
                return
            outcome, alive = read
        except Exception as exc:  # recorded on the job; the child is not trusted again
            self.watcher.cancel(child.deadline)
            child.deadline = None
            logger.exception("job %s: cannot read its outcome", job.id)
            outcome = Outcome(ERROR, error=f"pgwerk: cannot read the outcome of job {job.id} "
                                           f"from its child process: {exc!r}")
            alive = False
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.exit_description()
            child.close()
        with self._lock:
            self._busy.pop(job.id, None)
            if alive and not self._stopping:
                child.job = None
                self._idle.append(child)
            elif alive:
                child.close()
                child.exit_description()
        self._report(job, outcome)

    def _read_outcome(self, child: _Child, job: Job) -> tuple[Outcome, bool] | None:
        """The outcome the child sent, or the one its death means; and whether the child
        lives on to run another job. None when what came was a progress report (passed
        on to the worker): the job runs on."""
        try:
            outcome = _read_frame(child.results_fd)
        except (OSError, EOFError, pickle.UnpicklingError):
            outcome = None
        if isinstance(outcome, StartedFrame):
            child.started = True
            return None
        if isinstance(outcome, ProgressFrame):
            self.worker.record_progress(job, outcome.fraction, outcome.message)
            return None
        self.watcher.cancel(child.deadline)
        child.deadline = None
        alive = outcome is not None and self.persistent and child.kill_reason is None
        if outcome is None:
            cause = child.exit_description()
            child.close()
            if self.persistent and not child.started and child.kill_reason is None \
                    and child.killed_by is not None:
                # Killed before it took the job (while idle, just as the job was written to
                # it): the job never ran, and goes back to its queue. (A child that exits by
                # itself before its first job is broken: the job fails as it would.)
                outcome = Outcome(INTERRUPTED, error=(
                    f"pgwerk: {cause} before it started job {job.id}; the job goes back "
                    "to its queue"))
            else:
                outcome = self._death_outcome(job, child.kill_reason, cause)
        elif not self.persistent:
            child.exit_description()
            child.close()
        return outcome, alive

    def _report(self, job: Job, outcome: Outcome) -> None:
        try:
            self.on_done(job, outcome, False)
        except Exception:
            logger.exception("recording the outcome of job %s failed", job.id)

    def _death_outcome(self, job: Job, reason: str | None, cause: str) -> Outcome:
        if reason == TIMEOUT:
            return Outcome(TIMEOUT, error=(
                f"JobTimeout: job {job.id} exceeded its timeout of {job.timeout}s and was "
                f"killed after a {self.grace}s grace period ({cause})"))
        if reason == ABORTED:
            return Outcome(ABORTED, error=f"JobAborted: aborted on request ({cause})")
        if reason == INTERRUPTED:
            return Outcome(INTERRUPTED, error=f"WorkerShutdown: the worker stopped ({cause})")
        return Outcome(ERROR, error=f"pgwerk: {cause} while running job {job.id}")
