"""The shared request budget (pacing.RateBudget): its arithmetic on a fake clock, AIMD, threads, wiring."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from stockstream_cli.fetch import pacing
from stockstream_cli.errors import InputError
from stockstream_cli.fetch.pacing import (DECREASE, HORIZON, INCREASE_FRACTION, MARGIN, MIN_RATE, NEAR, PROBE_AFTER, PROBE_AFTER_MEASURED, FixedDelayPacer, Paced, RateBudget, pacer_for)
from stockstream_cli.settings import Settings
from clock import Clock


def budget(rate=None, backoff=True, greedy=False):
    fake = Clock()
    return RateBudget(rate, backoff=backoff, greedy=greedy, sleep=fake.sleep, clock=fake), fake


def answer_every(bucket: RateBudget, fake: Clock, gap: float, count: int) -> None:
    """`count` requests `gap` seconds apart from t=0, every one answered."""
    for k in range(count):
        fake.now = k * gap
        bucket.acquire()
        bucket.on_success()


def test_a_rate_spaces_requests_evenly_and_the_first_goes_at_once():
    bucket, fake = budget(4.0)
    waits = [bucket.acquire() for _ in range(5)]
    gap = (1 + MARGIN) / 4  # a little more than 1/rate, so arrival jitter never puts 5 into one second
    assert waits == pytest.approx([0.0, gap, gap, gap, gap])
    assert fake.now == pytest.approx(4 * gap) and fake.now > 1.0


def test_time_spent_elsewhere_counts_towards_the_next_slot():
    bucket, fake = budget(2.0)
    gap = (1 + MARGIN) / 2
    bucket.acquire()
    fake.advance(0.3)  # the request itself took 0.3 s
    assert bucket.acquire() == pytest.approx(gap - 0.3)
    fake.advance(5.0)  # idle: no burst is saved up, the bucket holds one token
    assert [bucket.acquire() for _ in range(3)] == pytest.approx([0.0, gap, gap])


def test_adaptive_budget_never_waits_before_the_first_429():
    bucket, fake = budget(None)
    for _ in range(1000):
        assert bucket.acquire() == 0.0
        bucket.on_success()
    assert fake.slept == [] and bucket.cap == float("inf")


def test_a_429_caps_an_adaptive_budget_near_the_rate_yahoo_answered():
    """Uncapped, the workers sent as fast as they could: the 20 answers a second were Yahoo's limit, measured."""
    bucket, fake = budget(None)
    for _ in range(30):  # 20 requests per second, all answered
        bucket.acquire()
        fake.advance(0.05)
        bucket.on_success()
    dropped_at = fake.now
    bucket.on_rate_limited()  # 20 answers in the last second
    assert bucket.cap == pytest.approx(NEAR * 20)
    starts = []
    for _ in range(60):
        bucket.acquire()
        starts.append(fake.now)
    # the second before the drop stays on record: nothing goes until 3 of its 20 starts have left it, so a
    # server counting a sliding second drains instead of refusing what is sent into it
    assert starts[0] - dropped_at == pytest.approx(0.05 * 3 + MARGIN - 0.05, abs=1e-9)
    record = [dropped_at - 0.05 * (k + 1) for k in range(20)] + starts
    for at in starts:  # never more than the cap in the second before any request after the drop
        assert sum(at - 1 - MARGIN + 1e-9 < other <= at + 1e-9 for other in record) <= 18
    assert (starts[-1] - starts[0]) / 59 == pytest.approx((1 + MARGIN) / 18, rel=0.05)  # then the cap's pace


def test_a_429_before_any_answer_cuts_deep_from_the_rate_requests_were_sent_at():
    """No answer yet (Yahoo refusing from the start): the rate sent at measures nothing of Yahoo's limit."""
    bucket, fake = budget(None)
    for _ in range(5):  # 10 requests per second, none answered yet
        bucket.acquire()
        fake.advance(0.1)
    bucket.on_rate_limited()
    assert bucket.cap == pytest.approx(DECREASE * 10)


def test_a_429_at_a_set_rate_cuts_deep():
    """--rate 10 paced the requests: the rate answered was the pacer's, not a measurement of Yahoo's limit."""
    bucket, fake = budget(10.0)
    answer_every(bucket, fake, 0.1, 20)
    bucket.on_rate_limited()
    assert bucket.cap == pytest.approx(DECREASE * 10)


def test_a_sparse_rate_is_measured_over_the_last_answers():
    bucket, fake = budget(None)
    for _ in range(12):  # one answer every 2 s: 0.5 requests per second
        bucket.acquire()
        bucket.on_success()
        fake.advance(2.0)
    bucket.acquire()
    bucket.on_rate_limited()
    assert bucket.cap == pytest.approx(NEAR * 8 / 16)  # the last 8 answers span 16 s


def test_a_sparse_rate_is_measured_over_whole_seconds_and_never_above_the_limit():
    """Yahoo allowing 5 in any second answered 5 at once, then 5 more a second later: 8 answers within 1.08 s,
    which over their own span would read as 7.4 a second. Over the 2 whole seconds they span: 5."""
    bucket, fake = budget(None)
    for at in [0.0, 0.01, 0.02, 0.03, 0.04, 1.05, 1.06, 1.07, 1.08, 1.09]:
        fake.now = at
        bucket.acquire()
        bucket.on_success()
    fake.now = 1.1
    bucket.acquire()
    bucket.on_rate_limited()
    assert bucket._peak == pytest.approx(5.0) and bucket.cap == pytest.approx(NEAR * 5.0)


def test_429s_to_requests_sent_before_the_decrease_are_ignored():
    bucket, fake = budget(None)
    answer_every(bucket, fake, 0.1, 20)  # 10 answers per second
    in_flight = threading.Thread(target=bucket.acquire)
    in_flight.start()
    in_flight.join()
    bucket.on_rate_limited()
    assert bucket.cap == pytest.approx(9.0) and bucket.decreases == 1
    bucket.on_rate_limited()  # this thread's request went before the decrease: the same signal
    assert bucket.decreases == 1 and bucket.rate_limited == 2
    fake.advance(0.01)
    bucket.acquire()  # sent at the lowered cap, and still refused: a new signal
    bucket.on_rate_limited()
    assert bucket.decreases == 2


def test_additive_increase_recovers_a_tenth_of_the_old_rate_per_second_up_to_the_ceiling():
    bucket, fake = budget(10.0)
    for _ in range(20):
        bucket.acquire()
        bucket.on_success()
    fake.advance(0.01)
    bucket.on_rate_limited()
    assert bucket.cap == pytest.approx(DECREASE * 10.0)
    bucket.acquire()  # waits until the second before the drop has room at the new cap
    bucket.on_success()
    start = fake.now
    while fake.now - start < 1.0:  # a second of requests held back by the cap, every one answered
        bucket.acquire()
        bucket.on_success()
    assert bucket.cap == pytest.approx(8.0, abs=0.15)  # +10% of 10 req/s per second
    for _ in range(200):
        bucket.acquire()
        bucket.on_success()
    assert bucket.cap == 10.0  # never above --rate


def test_no_increase_without_evidence_when_the_cap_holds_nobody_back():
    bucket, fake = budget(None)
    for _ in range(30):
        fake.advance(0.1)  # 10 requests per second
        bucket.acquire()
        bucket.on_success()
    bucket.on_rate_limited()
    assert bucket.cap == pytest.approx(9.0)
    for _ in range(50):
        fake.advance(1.0)  # one request per second: far below the cap
        bucket.acquire()
        bucket.on_success()
    assert bucket.cap == pytest.approx(9.0)


def test_the_cap_never_falls_below_the_floor():
    bucket, fake = budget(1.0)
    for _ in range(300):  # refused every time: nothing answered, so the rate sent is what is measured
        bucket.acquire()
        fake.advance(0.01)
        bucket.on_rate_limited()
    assert bucket.cap == MIN_RATE and bucket.lowest_cap == MIN_RATE


def test_without_backoff_a_429_changes_nothing():
    bucket, fake = budget(5.0, backoff=False)
    for _ in range(10):
        bucket.acquire()
    bucket.on_rate_limited()
    assert bucket.cap == 5.0 and bucket.decreases == 0 and bucket.rate_limited == 1
    adaptive, fake = budget(None, backoff=False)
    adaptive.acquire()
    adaptive.on_rate_limited()
    assert adaptive.acquire() == 0.0 and fake.slept == []


def test_bad_rates_are_refused():
    for rate in (0, -1, float("nan")):
        with pytest.raises(ValueError):
            RateBudget(rate)


def test_threads_share_one_budget_each_slot_given_once():
    frozen = Clock()
    bucket = RateBudget(50.0, clock=frozen, sleep=lambda s: None)  # time stands still: only slots count
    slots: list[float] = []
    workers = [threading.Thread(target=lambda: slots.extend(bucket.acquire() for _ in range(25))) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    slots.sort()  # with the clock at 0, the wait is the slot
    assert len(slots) == 200 and bucket.requests == 200
    assert slots == pytest.approx([k * (1 + MARGIN) / 50.0 for k in range(200)])


class BudgetWorker:
    """A thread that calls the budget when told to (a slot belongs to the thread that reserved it)."""

    def __init__(self, bucket: RateBudget):
        import queue

        self._calls, self._results = queue.Queue(), queue.Queue()
        threading.Thread(target=self._serve, args=(bucket,), daemon=True).start()

    def _serve(self, bucket) -> None:
        while (name := self._calls.get()) is not None:
            self._results.put(getattr(bucket, name)())

    def call(self, name: str) -> float:
        self._calls.put(name)
        return self._results.get(timeout=30)

    def stop(self) -> None:
        self._calls.put(None)


def test_a_request_woken_late_never_puts_more_than_the_cap_into_one_second():
    """Slots are handed out ahead; the first worker wakes 0.1 s late. Without confirm() the sixth request
    would go 0.93 s after it: six in one second at a server allowing five."""
    bucket, fake = budget(5.0)
    gap = (1 + MARGIN) / 5
    workers = [BudgetWorker(bucket) for _ in range(6)]
    assert [w.call("reserve") for w in workers] == pytest.approx([k * gap for k in range(6)])
    starts = []
    for index, worker in enumerate(workers[:5]):
        fake.now = 0.1 if index == 0 else index * gap  # worker 0 late, the others on time
        assert worker.call("confirm") == 0.0
        starts.append(fake.now)
    fake.now = 5 * gap
    extra = workers[5].call("confirm")
    assert extra == pytest.approx(0.1 + 1 + MARGIN - 5 * gap)  # until 1 + MARGIN after the late start
    fake.now += extra
    assert workers[5].call("confirm") == 0.0
    starts.append(fake.now)
    assert starts[5] - starts[0] == pytest.approx(1 + MARGIN)
    for worker in workers:
        worker.stop()


def test_aimd_against_a_server_limit_keeps_close_to_it_with_few_429s():
    """A deterministic simulation: one request every 1/cap s against a 100 req/s sliding-window limit."""
    fake = Clock()
    bucket = RateBudget(None, sleep=fake.sleep, clock=fake)
    accepted: list[float] = []
    refused = 0
    for _ in range(5000):
        bucket.acquire()
        fake.advance(0.002)  # 2 ms of work per request: 500 req/s when nothing holds the worker back
        now = fake.now
        while accepted and accepted[0] <= now - 1.0:
            accepted.pop(0)
        if len(accepted) >= 100:
            refused += 1
            bucket.on_rate_limited()
        else:
            accepted.append(now)
            bucket.on_success()
    throughput = (5000 - refused) / fake.now
    assert 80 <= throughput <= 100
    assert refused / 5000 < 0.03


def test_paced_applies_the_delay_per_worker_then_the_budget():
    fake = Clock()
    pacer = Paced(FixedDelayPacer(1.0, sleep=fake.sleep, clock=fake),
                  RateBudget(4.0, sleep=fake.sleep, clock=fake))
    for _ in range(3):
        pacer.wait()
    assert fake.slept == [1.0, 1.0]  # the delay already spaces requests more than the budget asks


def test_settings_a_rate_replaces_the_delay_unless_it_is_given_too():
    assert Settings.resolve(environ={}).delay == 2.0 and Settings.resolve(environ={}).rate is None
    assert Settings.resolve(environ={}, rate=100).delay == 0.0
    assert Settings.resolve(environ={"STOCKSTREAM_RATE": "20"}).delay == 0.0
    assert Settings.resolve(environ={}, rate=100, delay=0.5).delay == 0.5
    assert Settings.resolve(environ={"STOCKSTREAM_DELAY": "1"}, rate=5).delay == 1.0
    for bad in ("0", "-3", "nan"):
        with pytest.raises(InputError, match="^rate must be above 0"):
            Settings.resolve(environ={}, rate=bad)


def test_pacer_for_builds_the_settings_budget():
    pacer = pacer_for(Settings.resolve(environ={}, rate=25, retry_wait=2))
    assert pacer.delay.delay == 0.0 and pacer.budget.cap == 25.0 and pacer.budget.backoff
    quiet = pacer_for(Settings.resolve(environ={}, delay=0, retry_wait=0))
    assert quiet.budget.cap == float("inf") and not quiet.budget.backoff


def test_a_rate_limited_symbol_is_retried_and_slows_the_whole_batch(fake_yahoo, tmp_path):
    """fetch_batch with the budget: the 429 lowers the cap, the symbol is fetched on its retry."""
    from stockstream_cli.fetch import batch as fetch
    from stockstream_cli.dataset.store import LocalStore

    fake = Clock()
    settings = Settings.resolve(rate=10, retry_wait=1.0)
    pacer = pacer_for(settings, sleep=fake.sleep, clock=fake)
    fake_yahoo.fault("CCC", "rate_limited", times=1)
    document = fetch_batch(LocalStore(tmp_path), dt.date(2026, 1, 9), 0, settings,
                                 symbols=["AAA", "BBB", "CCC", "DDD"], pacer=pacer, sleep=fake.sleep,
                                 rng=lambda: 0.0)
    assert document["metadata"]["symbols_failed"] == [] and document["metadata"]["requests"] == 5
    assert fake_yahoo.chart_requests("CCC") == 3  # refused, yfinance's resend refused, then the retry
    # two decreases: the 429 and yfinance's resend, sent at the lowered cap and refused again (a new signal)
    assert pacer.budget.decreases == 2 and pacer.budget.cap < 10.0
    assert 0.5 in fake.slept  # the symbol's own backoff: retry_wait/2 with rng 0


def test_run_local_workers_share_one_budget(monkeypatch):
    """pipeline builds the pacer once per run, so every batch draws from the same budget."""
    from stockstream_cli.run import local, types as run_types

    built = []
    real = pacing.pacer_for

    def counting(settings, **kwargs):
        built.append(settings)
        return real(settings, **kwargs)

    monkeypatch.setattr(pacing, "pacer_for", counting)
    jobs = [run_types.BatchJob(n, ("AAA",)) for n in range(3)]
    monkeypatch.setattr(local, "run_batch", lambda *args: run_types.BatchOutcome(args[3].batch_number, {"metadata": {}}))
    control = run_types.Control(threading.Event(), None)
    outcomes, _ = local._run_batches(None, dt.date(2026, 1, 9), Settings.resolve(environ={}), jobs,
                                        run_types.Observer(), control)
    assert sorted(outcomes) == [0, 1, 2] and len(built) == 1


@pytest.mark.parametrize("delay, greedy", [(0.0, True), (2.0, False)])
def test_a_runs_budget_is_greedy_only_when_its_workers_have_no_delay(delay, greedy):
    budget_of_run = pacing.budget_for(Settings.resolve(environ={}, delay=delay, retry_wait=2.0))
    assert budget_of_run.greedy is greedy and budget_of_run.backoff and budget_of_run.ceiling == float("inf")


@pytest.mark.parametrize("rate, greedy, hold", [(None, True, PROBE_AFTER_MEASURED), (None, False, PROBE_AFTER),
                                                 (10.5, True, PROBE_AFTER)])
def test_at_the_limit_found_the_cap_holds_then_probes_beyond_it_a_quarter_as_fast(rate, greedy, hold):
    """Uncapped, the first 429's rate measured the limit: a gentle cut; workers with no delay of their own
    (greedy) then hold the long time before probing, as each probe is a 429. With --rate the rate answered
    was the pacer's: a deep cut, and probing sooner."""
    bucket, fake = budget(rate, greedy=greedy)
    answer_every(bucket, fake, 0.1, 20)  # 10 answers per second
    bucket.on_rate_limited()  # the limit: 10; cap 9 (or 7), then 1 req/s per second up to 10 itself
    dropped_at = fake.now
    while bucket.cap < 10.0:
        bucket.acquire()
        bucket.on_success()
    assert fake.now - dropped_at < 4.0
    while fake.now - dropped_at < hold:  # held at the limit found
        bucket.acquire()
        bucket.on_success()
        assert bucket.cap == pytest.approx(10.0) or fake.now - dropped_at >= hold
    start, cap = fake.now, bucket.cap
    while fake.now - start < 2.0:
        bucket.acquire()
        bucket.on_success()
    assert bucket.cap - cap == pytest.approx(0.5, abs=0.05)  # two seconds at a quarter of 1 req/s per second


def test_a_429_at_the_limit_found_cuts_the_cap_only_to_near_it():
    bucket, fake = budget(None)
    answer_every(bucket, fake, 0.1, 20)  # 10 answers per second
    bucket.on_rate_limited()  # the first 429, uncapped: 90% of the 10 answered
    assert bucket.cap == pytest.approx(NEAR * 10)
    while bucket.cap < 10.0:
        bucket.acquire()
        bucket.on_success()
    for _ in range(10):  # at the limit a while
        bucket.acquire()
        bucket.on_success()
    bucket.acquire()
    bucket.on_rate_limited()  # a probe touched it again: Yahoo answered 9-10 a second, at least 90% of the limit
    assert NEAR * NEAR * 10 - 1e-9 <= bucket.cap <= NEAR * 10 + 1e-9  # (a deep cut's 70% would be <= 7)


def test_answers_in_flight_at_the_first_429_count_towards_the_limit():
    """A burst: the first 429 is handled before answers to requests sent with it; they raise the limit."""
    bucket, fake = budget(None)
    workers = [BudgetWorker(bucket) for _ in range(9)]
    for worker in workers:
        worker.call("acquire")  # nine requests go at once (adaptive: no cap yet)
    for worker in workers[:3]:
        worker.call("on_success")
    fake.advance(0.02)
    workers[8].call("on_rate_limited")  # 3 answered so far: the cap is 90% of 3
    assert bucket.cap == pytest.approx(NEAR * 3)
    for worker in workers[3:8]:
        worker.call("on_success")  # the other five land: 8 answered within the second
    assert bucket._peak == pytest.approx(8) and bucket.cap == pytest.approx(NEAR * 8)
    for worker in workers:
        worker.stop()


# ---------------------------------------------------------------------------------------------- storms and recovery

from stockstream_cli.fetch.pacing import RECOVERY_BOUND  # noqa: E402 (the README's pacing section states it)
from helpers import fetch_batch


def simulate_workers(workers: int, *, delay: float = 2.0, rate: float | None = None, storm=(60.0, 660.0),
                     latency: float = 0.2, until: float = 900.0, limit: float | None = None,
                     ) -> tuple[dict[int, list[float]], RateBudget]:
    """`workers` workers on one budget, as a discrete-event simulation on a clock this test controls: each
    sends a request (after its --delay, the budget's slot and its confirm), Yahoo answers after `latency`,
    with a 429 during the storm or beyond `limit` requests accepted in any second. Returns each worker's
    send times. The budget's per-thread bookkeeping is given
    one record per simulated worker (each would be a thread)."""
    import heapq
    import types

    fake = Clock()
    bucket = RateBudget(rate, greedy=delay == 0, clock=fake, sleep=fake.sleep)
    states = [types.SimpleNamespace() for _ in range(workers)]
    events = [(0.0, w, "reserve") for w in range(workers)]  # (time, worker, step): each worker's next step
    accepted: list[float] = []
    sent: dict[int, list[float]] = {w: [] for w in range(workers)}
    while events and events[0][0] < until:
        fake.now, worker, step = heapq.heappop(events)
        bucket._worker = states[worker]
        if step == "reserve":
            heapq.heappush(events, (fake.now + bucket.reserve(), worker, "confirm"))
        elif (extra := bucket.confirm()) > 0:
            heapq.heappush(events, (fake.now + extra, worker, "confirm"))
        else:
            send_at = fake.now
            accepted[:] = [at for at in accepted if at > send_at - 1.0]
            refused = storm[0] <= send_at < storm[1] or (limit is not None and len(accepted) >= limit)
            fake.now = send_at + latency
            sent[worker].append(send_at)
            if refused:
                bucket.on_rate_limited()
            else:
                accepted.append(send_at)
                bucket.on_success()
            heapq.heappush(events, (max(send_at + delay, fake.now), worker, "reserve"))
    return sent, bucket


@pytest.mark.parametrize("limit", [5.0, 10.0, 40.0])
def test_ten_workers_without_a_delay_find_a_servers_limit_and_keep_to_it(limit):
    """B1's adaptive scenario on a controlled clock: 10 workers at --delay 0 against a server accepting
    `limit` requests in any second. One burst of 429s finds the limit; then the cap holds just under it."""
    sent, bucket = simulate_workers(10, delay=0.0, storm=(0.0, 0.0), latency=0.02, until=60.0, limit=limit)
    accepted = bucket.requests - bucket.rate_limited
    assert accepted / 60.0 >= 0.95 * limit  # within the slots' 3% margin and one climb from 90%
    assert bucket.rate_limited / bucket.requests < 0.01 * 10 / limit + 0.01  # the burst, then one probe a 30 s
    assert bucket.decreases <= 3


def back_to_pace_after(sent: dict[int, list[float]], storm_end: float, delay: float) -> float:
    """Seconds after the storm's end from which every worker sends every `delay` seconds again."""
    latest = storm_end
    for times in sent.values():
        for before, after in zip(times, times[1:]):
            if before >= storm_end and after - before > delay * (1 + 1e-6):
                latest = max(latest, after)
    return latest - storm_end


@pytest.mark.parametrize("workers", [1, 10])
@pytest.mark.parametrize("rate", [None, 5.0])
def test_after_a_ten_minute_storm_the_workers_are_back_to_their_pace_within_the_bound(workers, rate):
    sent, bucket = simulate_workers(workers, rate=rate)
    assert bucket.decreases > 10 and bucket.lowest_cap == MIN_RATE  # the storm pushed the cap to the floor
    # once the cap is at the floor (within the storm's first minute), one request per 10 s for all workers
    late = sum(120.0 <= t < 660.0 for times in sent.values() for t in times)
    assert late <= 540 * MIN_RATE + 1
    assert sum(60.0 <= t < 120.0 for times in sent.values() for t in times) <= 20 + workers
    pace = max(2.0, workers * (1 + MARGIN) / rate) if rate else 2.0  # --rate 5 holds 10 workers back
    assert back_to_pace_after(sent, 660.0, pace) <= RECOVERY_BOUND
    assert back_to_pace_after(sent, 0.0, pace) > 600  # (the storm did slow them down)


def test_one_worker_recovers_from_a_single_429_and_a_short_burst():
    """The case that never recovered: below ~1.6 requests/s the wait plus the request outlast a second."""
    for storm in ((100.0, 100.5), (100.0, 220.0)):
        sent, bucket = simulate_workers(1, storm=storm, until=600.0)
        assert bucket.decreases >= 1
        assert back_to_pace_after(sent, storm[1], 2.0) <= RECOVERY_BOUND
        gaps = [b - a for a, b in zip(sent[0], sent[0][1:]) if a > storm[1] + RECOVERY_BOUND]
        assert gaps and max(gaps) == pytest.approx(2.0) and min(gaps) >= 2.0 - 1e-9


def test_adaptive_recovery_never_jumps_past_the_rate_yahoo_answered():
    """An answer at the floor (one every 10 s) may double the cap, but not carry it past 90% of the highest
    rate that drew a 429; from there it climbs on to that rate at the step, and holds there."""
    bucket, fake = budget(None)
    answer_every(bucket, fake, 0.5, 40)  # 2 answers per second
    bucket.on_rate_limited()
    for _ in range(50):  # a storm: refused every time
        bucket.acquire()
        fake.advance(0.1)
        bucket.on_rate_limited()
    assert bucket.cap == MIN_RATE
    storm_end = fake.now
    caps, times = [], []
    for _ in range(20):
        bucket.acquire()
        bucket.on_success()
        caps.append(bucket.cap)
        times.append(fake.now)
    peak, step = bucket._peak, bucket._step
    assert peak >= 2.0 and step == pytest.approx(INCREASE_FRACTION * peak)  # sized on the rate before the storm
    assert caps[:3] == pytest.approx([0.2, 0.4, 0.8])  # doubling while far below
    near = [k for k, cap in enumerate(caps) if cap >= NEAR * peak - 1e-9]
    assert near and caps[near[0]] == pytest.approx(NEAR * peak)  # stopped at 90%, not carried past it
    for before, after, at in zip(caps[near[0]:], caps[near[0] + 1:], times[near[0] + 1:]):
        if before < peak - 1e-9:  # then the step, up to the peak
            assert after - before == pytest.approx(min(step / before, peak - before))
        elif at - storm_end < PROBE_AFTER:  # held there
            assert after == before
        else:  # the last 429 is PROBE_AFTER ago: probing, a quarter as fast
            assert after - before == pytest.approx(step / 4 / before)
    assert caps[-1] == pytest.approx(peak)


def test_a_retry_after_holds_every_worker_of_the_budget_until_then():
    bucket, fake = budget(None)
    for _ in range(20):
        bucket.acquire()
        fake.advance(0.1)
        bucket.on_success()
    bucket.on_rate_limited(retry_after=30.0)
    assert bucket.blocked_until == pytest.approx(fake.now + 30.0)
    went: list[tuple[float, float]] = []
    sleeps_before = len(fake.slept)
    other = threading.Thread(target=lambda: went.append((bucket.acquire(), fake.now)))
    other.start()
    other.join()
    waited, at = went[0]
    assert waited >= 30.0 - 1e-9 and at >= bucket.blocked_until - 1e-9  # another worker waits too
    assert all(slept <= HORIZON + 1e-9 for slept in fake.slept[sleeps_before:])  # asking again every HORIZON s
    quiet, _ = budget(None, backoff=False)  # --retry-wait 0: no wait at all, the contract's promise
    quiet.on_rate_limited(retry_after=30.0)
    assert quiet.reserve() == 0.0


@pytest.mark.parametrize("retry_after", [7, "date"])
def test_yahoos_retry_after_is_honoured_through_the_session(tmp_path, retry_after):
    """Through yfinance and the session: a storm answering Retry-After (seconds, or an HTTP date) holds the
    next request until then."""
    from stockstream_cli.fetch import batch as fetch
    from stockstream_cli.dataset.store import LocalStore
    from yahoo_fake import FakeYahoo

    time_ = Clock()
    fake = FakeYahoo(clock=time_, sleep=time_.sleep, as_of="2026-01-09T17:00")
    settings = Settings.resolve(environ={}, delay=0, retry_wait=1.0, retries=3, cache_dir=str(tmp_path / "cache"))
    pacer = pacer_for(settings, sleep=time_.sleep, clock=time_)
    with fake.installed():
        fake.storm(7.0, retry_after=retry_after)
        document = fetch_batch(LocalStore(tmp_path / "store"), dt.date(2026, 1, 9), 0, settings,
                                     symbols=["AAA", "BBB"], pacer=pacer, sleep=time_.sleep)
    assert document["metadata"]["symbols_fetched"] == 2
    first, *rest = fake.requests
    assert first.status == 429 and first.at == 0.0
    assert rest[0].at >= 7.0  # nothing sent until the Retry-After
    assert all(r.status != 429 for r in rest)
