"""How fast requests go to Yahoo: the per-worker `--delay`, the shared `--rate` budget, and retry backoff.

Every HTTP request yfinance sends (cookie, crumb, consent, chart, resend) goes through sources/http.py's
session, which calls `pacer.wait()` before it and `on_success()` or `on_rate_limited(retry_after)` after it
(fetch/batch.py binds the pacer to the fetching thread). Two limits apply, both optional:

- `FixedDelayPacer` is the `--delay` of one worker: at least `delay` seconds between the starts of its
  consecutive requests (each thread keeps its own last start, taken when the request really goes).
- `RateBudget` is a token bucket every worker of a run draws from (one per run: a run-local run, whose
  worker processes reach it through workers.RemoteBudget; a fetch-batch; one Lambda invocation), with AIMD
  backoff:
    * `--rate R`: at most R requests per second, from the first request;
    * no `--rate` (adaptive): no cap of its own until Yahoo answers 429; from then on a cap found by AIMD.
  On a 429 the cap drops to `DECREASE` x the rate Yahoo has been answering, or only to `NEAR` x it when that
  rate is a measurement of the limit: the first 429 of an uncapped budget after answers (the workers sent as
  fast as they could, so Yahoo's answers were all it let through), or a probe that touched the limit already found
  (Yahoo's limit has not moved); the 429s of
  requests sent before that drop are ignored (they report the old rate), and answers landing after it to
  requests sent in the second before the refused one count towards the limit found (they were in flight
  when its 429 came: Yahoo accepted them all within that second). Each answer
  to a request the cap held back (however long it waited: one worker at 2 s recovers too) raises the cap
  additively, by `INCREASE_FRACTION` per second of the highest rate that drew a 429 (the limit), at most
  doubling it per answer and never carrying it past `NEAR` x that rate in one step; then on to the limit
  itself; beyond it only `PROBE_AFTER` seconds after the last 429 (`PROBE_AFTER_MEASURED` after a gentle
  cut, whose rate measured the limit, when the workers have no delay of their own), a quarter as fast.
  Never above R. The
  starts of the last second stay on record through a drop, so confirm() lets nothing go until they fit the
  new cap: the server's window drains instead of refusing every request sent into it. A `Retry-After`
  holds every slot until then. The rate-limited symbol itself is retried by fetch/batch.py after its backoff.
  `--retry-wait 0` turns the backing off off (the contract: `--delay 0 --retry-wait 0` remove every wait).

Recovery is bounded: after a storm (cap at MIN_RATE) the workers are back at their own pace within
RECOVERY_BOUND seconds of its end with the defaults (delay 2 s, retry wait 2 s, 3 retries): the next slot
at the floor (1/MIN_RATE = 10 s), the doublings (10 + 5 + 2.5 + ... s, overlapping it), at most 9 s to NEAR of
the pace, 1 s on to it, and the margin above it (MARGIN of the pace, at a quarter of the step: about 1 s) once
PROBE_AFTER has passed since the storm's last 429; tests/test_pacing.py checks it for one worker and ten.

`Paced` puts the two together; `pacer_for(settings)` builds it. Every wait goes through an injectable
`sleep` and the time through an injectable `clock`, and a wait of 0 never calls sleep, so tests never sleep.
"""

from __future__ import annotations

import collections
import itertools
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ..backoff import wait_before

Sleep = Callable[[float], None]
Clock = Callable[[], float]

DECREASE = 0.7  # multiplicative decrease on a 429: the cap becomes 70% of the rate Yahoo answered
INCREASE_FRACTION = 0.1  # additive increase: 10% of the rate at the last decrease, per second
NEAR = 0.9  # the cap climbs to 90% of the limit in one go; a 429 at the limit found cuts it only to 90%
PROBE_AFTER = 30.0  # seconds at the limit found before the cap probes beyond it: a 429 costs a resend (and
# often a crumb) of the budget, so probing a steady limit every few seconds costs more than it finds (B1)
PROBE_AFTER_MEASURED = 120.0  # the same after a cut whose rate measured the limit (a gentle cut): a probe then
# rarely finds more, and each costs a 429 (at 5 requests/s one 429 every 30 s is 0.65 % of the requests)
MIN_RATE = 0.1  # never slower than one request per 10 s (Yahoo refusing that is an outage: retries record it)
WINDOW = 1.0  # seconds over which the rate Yahoo answers is measured
MARGIN = 0.03  # slots 3% wider than 1/cap: jitter between a slot and the request's arrival at Yahoo (thread
# wake-ups, the network) must not put more than cap requests into any one second there. The allowance is
# MARGIN x 1 s whatever the rate (cap requests span (1 + MARGIN) s): 2% (20 ms) drew 429s at 5 and 40
# requests/s on a busy machine (B1), each costing the AIMD's 30% cut; 3% costs 3% of the ideal
RECOVERY_BOUND = 45.0  # seconds after a storm's end until the workers are back at their pace (see above)
SAMPLES = 32  # answers kept to measure a sparse rate (fewer than SAMPLES/4 in a WINDOW)
HORIZON = 5.0  # seconds ahead a slot is handed out at most (see _take_slot)
STARTS_KEPT = 256  # request starts confirm() looks back over: a second's worth at any cap a client reaches


@runtime_checkable
class Pacer(Protocol):
    def wait(self) -> None:
        """Block until the next request may be sent."""

    def on_success(self) -> None:
        """The last request was answered (whatever the symbol's outcome), without a 429."""

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        """The last request was refused with a 429 (`retry_after`: the seconds Yahoo asked to wait, if any)."""


class FixedDelayPacer:
    """At least `delay` seconds between the starts of consecutive requests of each worker (thread).

    The first request of a worker goes at once. One instance may be shared by several workers: each
    thread keeps its own last start, so the delay stays per worker, as `--delay` promises.
    """

    def __init__(self, delay: float, *, sleep: Sleep = time.sleep, clock: Clock = time.monotonic):
        if delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay}")
        self.delay = delay
        self._sleep = sleep
        self._clock = clock
        self._worker = threading.local()

    def wait(self) -> None:
        last_start = getattr(self._worker, "last_start", None)
        if self.delay and last_start is not None:
            remaining = self.delay - (self._clock() - last_start)
            if remaining > 0:
                self._sleep(remaining)
        self._worker.last_start = self._clock()

    def started(self) -> None:
        """This worker's request goes now (later than `wait` returned: another limit held it)."""
        self._worker.last_start = self._clock()

    def on_success(self) -> None:
        pass

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        pass


class RateBudget:
    """Requests per second shared by every thread of a process: a token bucket with AIMD backoff.

    rate: the cap, requests per second; None for adaptive (no cap until the first 429). The bucket holds
    one token (no bursts): request k may start no earlier than (1 + MARGIN)/cap after request k-1 was
    allowed to.
    backoff: False keeps the cap fixed (and adaptive never caps).
    greedy: the workers have no delay of their own (--delay 0) and send whenever the budget lets them, so its
    cap sits at Yahoo's limit and every probe beyond it is a 429: after a cut whose rate measured the limit
    it probes only PROBE_AFTER_MEASURED later. With a delay, what a 429 interrupts is the workers' own pace,
    to be recovered: PROBE_AFTER.
    """

    def __init__(self, rate: float | None = None, *, backoff: bool = True, greedy: bool = False,
                 sleep: Sleep = time.sleep, clock: Clock = time.monotonic):
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be above 0, got {rate}")
        self.ceiling = math.inf if rate is None else float(rate)
        self.backoff = backoff
        self.greedy = greedy
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._worker = threading.local()  # the slot of this thread's request in flight
        self._cap = self.ceiling  # math.inf: not capped
        self._last_slot = -math.inf  # the latest slot handed out; the next is 1/cap after it at the cap of the moment
        self._sent: collections.deque[float] = collections.deque(maxlen=SAMPLES)
        self._started: collections.deque[float] = collections.deque(maxlen=STARTS_KEPT)  # confirm()'s record
        self._answered: collections.deque[float] = collections.deque(maxlen=4096)
        self._answered_slots: collections.deque[float] = collections.deque(maxlen=4096)  # their requests' slots
        self._burst = (math.inf, -math.inf)  # the second of slots before the request whose 429 dropped the cap
        self._burst_answered = 0  # answers to requests of that second (Yahoo accepted them all)
        self._blocked_until = -math.inf  # a Retry-After: no slot before this
        self._last_decrease = -math.inf
        self._gentle = False  # the last decrease's rate measured the limit: it kept NEAR of it, not DECREASE
        self._step = 0.0
        self._peak = 0.0  # the highest rate Yahoo had been answering when it said 429 (this run)
        self.requests = 0
        self.rate_limited = 0
        self.decreases = 0
        self.lowest_cap = self._cap
        self.blocked_until = -math.inf  # the end of the last Retry-After, on `clock`

    @property
    def cap(self) -> float:
        """The current cap in requests per second (math.inf: none)."""
        return self._cap

    def acquire(self) -> float:
        """Take a token: wait for this request's slot, then until confirm() lets it go. Returns the seconds waited."""
        waited = self.reserve()
        if waited > 0:
            self._sleep(waited)
        while (extra := self.confirm()) > 0:
            self._sleep(extra)
            waited += extra
        return waited

    def confirm(self) -> float:
        """The calling thread's slot has come: its request goes now (0 is returned and its start recorded),
        unless ceil(cap) requests already started within the last 1 + MARGIN seconds, or the thread was told
        to ask again (its slot was over HORIZON away); then the seconds to wait before confirming again. Slots are handed out ahead, so a thread woken late (a busy machine)
        would otherwise go right before the next thread's slot: two requests a few ms apart, and at the
        server's one-second window one request too many, a 429 that costs the cap 30%. A start is taken as
        the later of the clock and the slot (a clock that stands still in a test: the slot)."""
        with self._lock:
            if getattr(self._worker, "slot", 0.0) is None:  # asked to ask again: take a slot now
                wait = self._take_slot(self._clock())
                if wait > 0:
                    return wait
            start = max(self._clock(), getattr(self._worker, "slot", -math.inf))
            if self._cap != math.inf:
                most = math.ceil(self._cap - 1e-9)
                earlier = sorted(at for at in self._started if at <= start)
                if len(earlier) >= most:
                    free_at = earlier[-most] + 1.0 + MARGIN
                    if free_at > start + 1e-9:
                        self._worker.slot = free_at
                        return free_at - start
            self._started.append(start)
            return 0.0

    def reserve(self) -> float:
        """Take a token without waiting: the seconds until this request's slot (the caller waits them).

        The slot is remembered for the calling thread, which on_rate_limited reads: a worker in another
        process reserves through a thread of its own here (workers.BudgetService).
        """
        with self._lock:
            return self._take_slot(self._clock())

    def _take_slot(self, now: float) -> float:
        """The seconds until the calling thread's slot. A slot over HORIZON away is not handed out: the thread
        waits HORIZON and asks again (confirm), so a cap that rises meanwhile (a storm's end) moves it up."""
        slot = max(now, self._blocked_until)
        next_slot = self._last_slot + (1.0 + MARGIN) / self._cap if self._cap != math.inf else -math.inf
        self._worker.held_back = next_slot > slot or getattr(self._worker, "slot", 0.0) is None
        slot = max(slot, next_slot)
        if slot - now > HORIZON:
            self._worker.slot = None
            return HORIZON
        self._last_slot = slot
        self._sent.append(slot)
        self.requests += 1
        self._worker.slot = slot
        return max(slot - now, 0.0)

    def on_success(self) -> None:
        """Additive increase, only for an answer to a request the cap held back (else there is no evidence
        that the cap is what limits the workers: they are slower on their own).

        Whether the request waited is remembered per thread from its `reserve`, however long ago that was:
        a single worker whose wait plus request take longer than a second recovers too.
        """
        with self._lock:
            now = self._clock()
            self._answered.append(now)
            slot = self._thread_slot(-math.inf)
            self._answered_slots.append(slot)
            if self.backoff and self._burst[0] < slot <= self._burst[1]:
                self._burst_answered += 1
                self._count_towards_the_limit(self._burst_answered / WINDOW)
            if not self.backoff or self._cap >= self.ceiling or not getattr(self._worker, "held_back", False):
                return
            # an answer at cap c stands for 1/c seconds of the additive increase; at most a doubling, so a cap
            # at the floor after a storm climbs back in a few answers, not in one jump past what was tolerated
            near = NEAR * self._peak
            if self._cap < near:
                self._cap = min(self._cap + min(self._step / self._cap, self._cap), near, self.ceiling)
            elif self._cap < self._peak:
                self._cap = min(self._cap + self._step / self._cap, self._peak, self.ceiling)
            elif now - self._last_decrease >= self._hold():  # beyond the limit found: probe, a quarter as fast
                self._cap = min(self.ceiling, self._cap + self._step / 4 / self._cap)

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        """Multiplicative decrease: the cap becomes DECREASE (or NEAR, see below) x the rate Yahoo has been answering.

        A 429 to a request sent before the last decrease is ignored: it reports the old rate, and the
        cap already reacted to it (at most one decrease per round of requests in flight). `retry_after`
        (Yahoo's Retry-After, in seconds) holds every slot of the budget until then, whichever request
        it answers.
        """
        with self._lock:
            self.rate_limited += 1
            if not self.backoff:
                return
            now = self._clock()
            if retry_after is not None and retry_after > 0:
                self._blocked_until = max(self._blocked_until, now + retry_after)
                self.blocked_until = self._blocked_until
            sent_at = self._thread_slot(math.inf)
            if sent_at <= self._last_decrease:
                return
            tolerated = self._answered_rate(now)
            # the rate answered is a measurement of the limit when the workers were uncapped (they sent as fast
            # as they could: Yahoo's answers were all it let through) or when a probe touched the limit found
            # (the cap and the answers both near it: the limit has not moved), and the cut is gentle; anything
            # else (a storm, a lower limit) cuts deep, from the lower of the cap and the rate answered, so that
            # a storm's 429s (answers stopped) halve the cap each round
            near = NEAR * self._peak
            at_the_limit = self._peak > 0 and tolerated >= near and self._cap >= near
            measured = self._cap == math.inf and len(self._answered) >= 2
            self._gentle = at_the_limit or measured
            self._cap = max(MIN_RATE, min(self.ceiling, self._cut() * min(self._cap, tolerated)))
            # a storm's 429s arrive while Yahoo answers nothing: the rate measured then says nothing of what
            # it tolerates, so the increase stays sized on the highest rate that drew a 429
            self._peak = max(self._peak, tolerated)
            self._step = max(MIN_RATE, INCREASE_FRACTION * self._peak)
            self._last_decrease = now
            self._burst = (sent_at - WINDOW, sent_at)
            self._burst_answered = sum(1 for slot in self._answered_slots if sent_at - WINDOW < slot <= sent_at)
            self.decreases += 1
            self.lowest_cap = min(self.lowest_cap, self._cap)

    def _cut(self) -> float:
        """The fraction of the rate answered the last decrease kept."""
        return NEAR if self._gentle else DECREASE

    def _hold(self) -> float:
        """Seconds after the last decrease before the cap probes beyond the limit found."""
        return PROBE_AFTER_MEASURED if self.greedy and self._gentle else PROBE_AFTER

    def _thread_slot(self, unknown: float) -> float:
        """The slot of the calling thread's request (`unknown` when it has none)."""
        slot = getattr(self._worker, "slot", None)
        return unknown if slot is None else slot

    def _count_towards_the_limit(self, answered: float) -> None:
        """An answer to a request sent in the second before the one whose 429 dropped the cap: Yahoo accepted
        all of them within one second, so they count towards the limit. (The first 429 of a burst is often
        handled before the answers to requests sent just before it.) The cap follows the limit up, at the
        fraction of it the decrease kept."""
        if answered > self._peak:
            self._peak = answered
            self._step = max(MIN_RATE, INCREASE_FRACTION * answered)
            self._cap = min(self.ceiling, max(self._cap, self._cut() * answered))

    def _answered_rate(self, now: float) -> float:
        """Requests per second Yahoo answered lately: over the last WINDOW seconds, or over the last
        SAMPLES/4 answers when they are sparser: every answer of the whole WINDOWs those span (a server
        allowing L in any second may answer 2L within 1.1 s, but never more than kL in k s); the rate
        requests were sent at when none was answered."""
        recent = 0
        for answered_at in reversed(self._answered):
            if answered_at <= now - WINDOW:
                break
            recent += 1
        if recent >= SAMPLES // 4:
            return recent / WINDOW
        if len(self._answered) >= 2:
            first = self._answered[-min(len(self._answered), SAMPLES // 4)]
            span = WINDOW * max(math.ceil((now - first) / WINDOW - 1e-9), 1)
            answered = sum(1 for _ in itertools.takewhile(lambda at: at >= now - span, reversed(self._answered)))
            return max(MIN_RATE, answered / span)
        if len(self._sent) >= 2 and self._sent[-1] > self._sent[0]:
            return (len(self._sent) - 1) / (self._sent[-1] - self._sent[0])
        return 1.0


class Paced:
    """The pacer a process's workers share: each worker's --delay, then a token from the shared budget."""

    def __init__(self, delay: FixedDelayPacer, budget: RateBudget):
        self.delay = delay
        self.budget = budget

    def wait(self) -> None:
        self.delay.wait()
        if self.budget.acquire() > 0:
            self.delay.started()  # the delay runs from when the request goes, after the budget's wait

    def on_success(self) -> None:
        self.budget.on_success()

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        self.budget.on_rate_limited(retry_after)


def pacer_for(settings, *, sleep: Sleep = time.sleep, clock: Clock = time.monotonic, budget=None) -> Paced:
    """The pacer every worker of a process shares: settings.delay per worker and settings.rate for all.

    Build it once per run and hand the same object to every worker. `budget`: a run's budget kept
    elsewhere (workers.RemoteBudget in a worker process); by default a new RateBudget(settings.rate).
    """
    if budget is None:
        budget = budget_for(settings, sleep=sleep, clock=clock)
    return Paced(FixedDelayPacer(settings.delay, sleep=sleep, clock=clock), budget)


def budget_for(settings, *, sleep: Sleep = time.sleep, clock: Clock = time.monotonic) -> RateBudget:
    """The budget of a run: settings.rate, backing off unless --retry-wait 0, greedy when --delay is 0."""
    return RateBudget(settings.rate, backoff=settings.retry_wait > 0, greedy=settings.delay == 0, sleep=sleep,
                      clock=clock)


def pacer_from_settings(settings, *, sleep: Sleep = time.sleep, clock: Clock = time.monotonic) -> Paced:
    """The pacer of a process with one worker (fetch-batch, a Lambda invocation): the same as pacer_for."""
    return pacer_for(settings, sleep=sleep, clock=clock)


def backoff_wait(retry_wait: float, retry: int, *, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number `retry` (1, 2, ...): exponential, with equal jitter.

    The base grows by the one backoff (backoff.py: retry_wait, 2*retry_wait, 4*retry_wait, ...); the wait is
    drawn in [base/2, base], so concurrent workers spread out but never retry at once. 0 when retry_wait is 0.
    """
    if retry_wait <= 0:
        return 0.0
    base = wait_before(retry, retry_wait)
    return base / 2 + rng() * base / 2
