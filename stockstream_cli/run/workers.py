"""run-local's batches in worker processes, for request rates one process cannot parse fast enough.

A symbol costs about 15 ms of CPU on the fetch path (yfinance's parse 13 ms of it; BENCHMARKS.md B3) and about
25 ms in a whole run (B6), and the threads of one process share one core (the GIL): one process tops out near
40-50 symbols per second, short of a
`--rate 100`. So run-local and rerun-failed spread their batches over worker processes when the rate
calls for it (`planned_processes`; `--processes N` decides instead), and keep in the parent what must be
one per run:

- the rate budget (pacing.RateBudget), served to every worker thread over a Unix socket by
  `BudgetService`: each worker thread has its own connection and its own serving thread here, so the
  budget's per-thread bookkeeping (which request a 429 answers) holds across processes;
- the batches: one queue the worker threads take jobs from as they free up, so at most --concurrency
  batches run at once over all processes;
- the observer (progress bars, notes): workers send their events back on a queue, replayed here;
- the stop: Ctrl-C (or SIGTERM) reaches the parent alone (workers ignore both), which sets a shared event; each
  worker's pacer then raises RunCancelled before its next request, exactly as threads of one process do.

Workers are started before the symbols step, so their imports (yfinance, pandas, polars) overlap it. A
worker that dies (killed, out of memory) fails the batches it held, recorded like any failed batch for
rerun-failed; the other workers go on.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator

PROCESS_RATE = 30.0  # requests/s one worker process sustains with room to spare (one core at ~25 ms CPU a symbol, BENCHMARKS.md B6)
MAX_AUTO_PROCESSES = 4  # each process holds its own yfinance, pandas and polars (~200 MB)
POLL_SECONDS = 0.1  # how often waiting loops look at the stop event, a Ctrl-C, a dead process
JOIN_SECONDS = 10.0  # how long a worker may take to drop its batch in flight and exit before it is killed

# messages
RESERVE, CONFIRM, ANSWERED, RATE_LIMITED = "reserve", "confirm", "answered", "rate_limited"  # worker thread -> BudgetService
STARTED, OUTCOME, CANCELLED = "started", "outcome", "cancelled"  # worker -> parent, besides the observer's
FATAL = "fatal"  # worker -> parent: an error no retry heals (errors.Unhealable) stops the whole run
NOTE, SYMBOL, RETRYING, DONE = "note", "symbol", "retrying", "done"


def planned_processes(settings, jobs: int | None = None) -> int:
    """Worker processes for a run: settings.processes if set, else as many as the expected request rate
    needs (capped by the cores and MAX_AUTO_PROCESSES; adaptive with no delay: one). 1 means the batches run
    on threads of this process."""
    if settings.processes is not None:
        wanted = settings.processes
    else:
        rate = expected_rate(settings)
        cores = min(os.cpu_count() or 1, MAX_AUTO_PROCESSES)
        # adaptive pacing with no delay has no rate of its own: Yahoo's limit sets it, and that (users report
        # trouble above 1-5 requests/s) is far below one process's PROCESS_RATE, so spawning more only costs
        # their start-up; --rate or --processes asks for more
        wanted = 1 if math.isinf(rate) else min(cores, math.ceil(rate / PROCESS_RATE))
    return max(1, min(wanted, settings.concurrency, wanted if jobs is None else jobs))


def expected_rate(settings) -> float:
    """The most requests per second the settings allow: the --rate cap and --concurrency workers each
    pausing --delay, whichever is lower; math.inf for adaptive pacing with no delay."""
    bounds = [math.inf]
    if settings.rate is not None:
        bounds.append(settings.rate)
    if settings.delay > 0:
        bounds.append(settings.concurrency / settings.delay)
    return min(bounds)


def reopenable(store) -> tuple[str, str | None, str | None] | None:
    """(uri, profile, region) a worker process opens the same store with; None for a store object it could
    not (a test's wrapper, say): such a run keeps its batches on threads."""
    from ..dataset.store import LocalStore, S3Store

    if type(store) is LocalStore:
        return os.path.abspath(store.uri), None, None
    if type(store) is S3Store:
        return store.uri, store._profile, store._region
    return None


def thread_shares(concurrency: int, processes: int) -> list[int]:
    """--concurrency spread over the processes: 10 over 3 is [4, 3, 3]."""
    return [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]


# ---------------------------------------------------------------------------------------------- the budget


class BudgetService:
    """A RateBudget served to worker processes over a Unix socket, one thread per connection.

    close() never waits on the accept thread: it sets `_closed`, then wakes a blocked accept() with a bare
    connection (no handshake, so nothing to answer it), then closes the listener. The thread looks at `_closed`
    after every accept, failed or not, so wherever close() finds it (blocked in accept, in a handshake, or
    between two accepts) it ends without another accept.
    """

    def __init__(self, budget):
        from multiprocessing.connection import Listener

        self.budget = budget
        self.authkey = os.urandom(16)
        self._folder = tempfile.mkdtemp(prefix="stockstream-budget-")
        self.address = os.path.join(self._folder, "budget.sock")
        # a backlog for every worker thread connecting at once (Listener's default is 1)
        self._listener = Listener(self.address, family="AF_UNIX", backlog=64, authkey=self.authkey)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="stockstream-budget", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        _wake(self.address)
        self._listener.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _accept(self) -> None:
        from multiprocessing import AuthenticationError

        while True:
            try:
                connection = self._listener.accept()
            except (AuthenticationError, OSError, EOFError):
                # a client that failed the handshake or hung up during it must not stop the service; close()'s
                # bare wake-up connection fails the handshake too, and so does an accept on a closed listener
                if self._closed.is_set():
                    return
                continue
            if self._closed.is_set():
                connection.close()
                return
            threading.Thread(target=self._serve, args=(connection,), name="stockstream-budget-client",
                             daemon=True).start()

    def _serve(self, connection) -> None:
        with connection:
            while True:
                try:
                    message = connection.recv()
                except (EOFError, OSError):
                    return
                if message == RESERVE:
                    connection.send(self.budget.reserve())
                elif message == CONFIRM:
                    connection.send(self.budget.confirm())
                elif message == ANSWERED:
                    self.budget.on_success()
                elif isinstance(message, tuple) and message[0] == RATE_LIMITED:
                    self.budget.on_rate_limited(message[1])  # (RATE_LIMITED, Retry-After seconds or None)


def _wake(address: str) -> None:
    """Connect to the listener without a handshake: a blocked accept() returns, and this never waits (a full
    backlog already holds a connection that wakes it)."""
    import socket

    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake:
        wake.setblocking(False)
        wake.connect(address)


class RemoteBudget:
    """The run's budget as a worker process's pacer sees it (acquire, on_success, on_rate_limited).

    Each thread has its own connection; only `acquire` waits for an answer (the seconds until its slot,
    slept here with `sleep`, so a stop cuts the wait short).
    """

    def __init__(self, address: str, authkey: bytes, *, sleep):
        self.address = address
        self.authkey = authkey
        self._sleep = sleep
        self._local = threading.local()

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            from multiprocessing.connection import Client

            connection = self._local.connection = Client(self.address, family="AF_UNIX", authkey=self.authkey)
        return connection

    def acquire(self) -> float:
        connection = self._connection()
        connection.send(RESERVE)
        waited = connection.recv()
        if waited > 0:
            self._sleep(waited)
        while True:  # the slot has come: RateBudget.confirm, through the service thread that reserved it
            connection.send(CONFIRM)
            extra = connection.recv()
            if extra <= 0:
                return waited
            self._sleep(extra)
            waited += extra

    def on_success(self) -> None:
        self._connection().send(ANSWERED)

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        self._connection().send((RATE_LIMITED, retry_after))


# ---------------------------------------------------------------------------------------------- the parent


class WorkerPool:
    """`processes` worker processes fetching one day's batches; a context manager (close() stops them).

    control: the run's types.Control (its stop event, set by a caller, stops the workers too).
    """

    def __init__(self, store_spec: tuple[str, str | None, str | None], day, settings, processes: int, control,
                 command: str = "run-local"):
        import multiprocessing

        from ..fetch.pacing import budget_for

        context = multiprocessing.get_context("spawn")  # fork is unsafe beside threads (progress, polars)
        self._control = control
        self._jobs = context.Queue()
        # one events queue per worker: a queue's writers share a lock, and a worker killed while its feeder
        # thread held it (mid-put) would leave every other worker's puts, and so the run, waiting forever
        self._event_queues = [context.Queue() for _ in thread_shares(settings.concurrency, processes)]
        self._stop = context.Event()
        self._failed = context.Event()  # set with _stop when an error stopped the run (types.Control.fail)
        self._service = BudgetService(budget_for(settings))
        self._threads = thread_shares(settings.concurrency, processes)
        self._processes = [
            context.Process(target=worker_main, name=f"stockstream-worker-{index}", daemon=True,
                            args=(store_spec, day, settings, threads, self._service.address, self._service.authkey,
                                  self._jobs, self._event_queues[index], self._stop, self._failed, os.getpid(),
                                  command))
            for index, threads in enumerate(self._threads)
        ]
        with _sigint_ignored():  # the workers inherit SIGINT and SIGTERM ignored, from their first instruction on
            for process in self._processes:
                process.start()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def budget(self):
        return self._service.budget

    def run(self, jobs, observer) -> tuple[dict, bool]:
        """Fetch the jobs (types.BatchJob). Returns ({batch_number: BatchOutcome}, whether it was stopped)."""
        for job in jobs:
            self._jobs.put(job)
        for _ in range(sum(self._threads)):
            self._jobs.put(None)  # after every job: a worker thread that takes one has nothing left to do
        run = _RunState({job.batch_number for job in jobs})
        # until every batch has an outcome; once stopped, until the workers have dropped theirs and exited
        while self._alive() if run.interrupted else run.pending:
            try:
                if self._control.stop.is_set() and not run.interrupted:
                    self._stopping(run, observer)
                self._replay(self._next_event(POLL_SECONDS), run, observer)
            except queue.Empty:
                if not run.interrupted:
                    self._fail_lost_batches(run, observer)
            except KeyboardInterrupt:
                if not run.interrupted:
                    self._stopping(run, observer)
        self._drain(run, observer)
        if run.fatal is not None:
            raise run.fatal  # as the threads of one process stop the run on it (local.py)
        return run.outcomes, run.interrupted

    def _stopping(self, run: "_RunState", observer) -> None:
        run.interrupted = True
        self._stop.set()
        observer.stopping()

    def close(self) -> None:
        """Stop the workers (a batch in flight is dropped before anything of it is written) and wait for them."""
        self._stop.set()
        for process in self._processes:
            _join(process, self._event_queues)
        self._jobs.cancel_join_thread()
        self._jobs.close()
        for events in self._event_queues:
            events.close()
        self._service.close()

    def _alive(self) -> bool:
        return any(process.is_alive() for process in self._processes)

    def _replay(self, event: tuple, run: "_RunState", observer) -> None:
        kind, *args = event
        if kind == STARTED:
            batch_number, pid = args
            run.holders[batch_number] = pid
        elif kind == OUTCOME:
            outcome = args[0]
            run.outcomes[outcome.batch_number] = outcome
            run.pending.discard(outcome.batch_number)
        elif kind == CANCELLED:
            run.pending.discard(args[0])
        elif kind == FATAL:
            batch_number, error = args
            run.pending.discard(batch_number)
            run.fatal = run.fatal or error
            run.interrupted = True  # wait for the workers to drop what they hold and exit
            self._failed.set()
            self._stop.set()
        elif kind == NOTE:
            observer.note(*args)
        elif kind == SYMBOL:
            observer.symbol_done(*args)
        elif kind == RETRYING:
            observer.batch_retrying(*args)
        elif kind == DONE:
            observer.batch_done(*args)

    def _next_event(self, timeout: float) -> tuple:
        """The next event of any worker, waiting up to `timeout` for one; queue.Empty if none came. Waits on
        the queues' pipes (Queue._reader, as concurrent.futures.ProcessPoolExecutor does for its results)."""
        from multiprocessing.connection import wait

        for events in self._event_queues:
            with contextlib.suppress(queue.Empty):
                return events.get_nowait()
        wait([events._reader for events in self._event_queues], timeout)
        for events in self._event_queues:
            with contextlib.suppress(queue.Empty):
                return events.get_nowait()
        raise queue.Empty

    def _drain(self, run: "_RunState", observer) -> None:
        while True:
            try:
                self._replay(self._next_event(0), run, observer)
            except queue.Empty:
                return

    def _fail_lost_batches(self, run: "_RunState", observer) -> None:
        """Fail the batches held by a worker that died, and every batch left when none is alive."""
        dead = {process.pid: process.exitcode for process in self._processes if not process.is_alive()}
        if not dead:
            return
        self._drain(run, observer)  # what a worker sent before it exited is in the queue: read it first
        lost = {n: dead[pid] for n, pid in run.holders.items() if pid in dead and n in run.pending}
        if len(dead) == len(self._processes):
            codes = sorted({code for code in dead.values() if code is not None})
            lost.update({n: codes[0] if len(codes) == 1 else codes for n in run.pending if n not in lost})
        from .types import BatchOutcome

        for number, code in sorted(lost.items()):
            error = f"the worker process running it exited (exit code {code}) before the batch finished"
            run.outcomes[number] = BatchOutcome(number, None, error)
            run.pending.discard(number)
            observer.batch_done(number, None, error)


class _RunState:
    def __init__(self, pending: set[int]):
        self.pending = pending
        self.outcomes: dict = {}
        self.holders: dict[int, int] = {}  # batch number -> pid of the worker that took it
        self.interrupted = False
        self.fatal: BaseException | None = None  # the first error no retry heals, sent by a worker


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _join(process, event_queues) -> None:
    """Wait for a worker to exit, reading what it still sends (it cannot exit before that is read); kill it
    after JOIN_SECONDS. A second Ctrl-C does not cut this short: no worker is left behind."""
    waited = 0.0
    while process.is_alive() and waited < JOIN_SECONDS:
        try:
            for events in event_queues:
                with contextlib.suppress(queue.Empty, OSError, ValueError):
                    while True:
                        events.get_nowait()
            process.join(POLL_SECONDS)
            waited += POLL_SECONDS
        except KeyboardInterrupt:
            continue
    if process.is_alive():
        process.kill()
        process.join()


# ---------------------------------------------------------------------------------------------- a worker


def worker_main(store_spec, day, settings, threads: int, budget_address: str, authkey: bytes, jobs, events, stop,
                failed, parent_pid: int, command: str) -> None:
    """A worker process: `threads` threads taking batch jobs until the queue says there are no more; they
    commit under the day lock the parent holds (dataset/commit.py)."""
    # Ctrl-C and SIGTERM are the parent's (sent to the whole process group, too): it sets `stop`
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from ..fetch import pacing
    from .types import Control, StoppablePacer
    from ..dataset.commit import Writer
    from ..dataset.store import open_store

    _preload()
    uri, profile, region = store_spec
    writer = Writer(open_store(uri, profile=profile, region=region), command)
    control = Control(stop, None, failed)
    budget = RemoteBudget(budget_address, authkey, sleep=control.wait)
    pacer = StoppablePacer(pacing.pacer_for(settings, sleep=control.wait, budget=budget), control)
    observer = _RelayObserver(events)
    workers = [threading.Thread(target=_take_jobs, name=f"stockstream-batch-{i}",
                                args=(writer, day, settings, jobs, events, observer, control, pacer, parent_pid))
               for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if os.getppid() == parent_pid:  # orphaned, what is left in the queue has no reader: flushing it would hang
        events.close()
        events.join_thread()  # everything sent has reached the pipe to the parent
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    # Every file is written (atomically) and every result sent: skip tearing down yfinance, pandas and
    # polars, which takes longer than the exit the parent is waiting for.
    os._exit(0)


def _preload() -> None:
    """Import what fetching needs now, while the parent runs the symbols step, not at the first batch."""
    from ..fetch import batch as fetch  # noqa: F401
    from ..sources import yahoo  # noqa: F401
    import polars  # noqa: F401
    import yfinance  # noqa: F401

    yahoo.silence_third_party_warnings()  # before any thread of this process parses a response


def _take_jobs(writer, day, settings, jobs, events, observer, control, pacer, parent_pid: int) -> None:
    from ..errors import Unhealable
    from .task import run_batch
    from .types import RunCancelled

    while not control.stop.is_set() and os.getppid() == parent_pid:  # else stopped, or the parent was killed
        try:
            job = jobs.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
        if job is None:
            return
        events.put((STARTED, job.batch_number, os.getpid()))
        try:
            outcome = run_batch(writer, day, settings, job, observer, control, pacer)
        except RunCancelled:
            events.put((CANCELLED, job.batch_number))
            return
        except Unhealable as error:  # a full disk, Yahoo unreachable: the run stops (the parent raises it)
            events.put((FATAL, job.batch_number, error))
            control.fail()
            return
        events.put((OUTCOME, outcome))


class _RelayObserver:
    """types.Observer in a worker: every event goes to the parent, whose observer shows it."""

    def __init__(self, events):
        self._events = events

    def note(self, message: str) -> None:
        self._events.put((NOTE, message))

    def symbol_done(self, batch_number: int, symbol: str, reason: str | None) -> None:
        self._events.put((SYMBOL, batch_number, symbol, reason))

    def batch_retrying(self, batch_number: int, attempt: int, error: str) -> None:
        self._events.put((RETRYING, batch_number, attempt, error))

    def batch_done(self, batch_number: int, record, error: str | None) -> None:
        self._events.put((DONE, batch_number, record, error))
