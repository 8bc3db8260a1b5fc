"""Every HTTP request of a batch, by kind, at the transport and inside the budget: healthy, each fault, a storm.

fetch_batch runs on a clock this test controls (the pacer's sleep moves it; the fake Yahoo reads it), with
a --rate budget, so "inside the budget" is checked on the times the fake received the requests.
"""

from __future__ import annotations

import datetime as dt

import pytest

from stockstream_cli.fetch import batch as fetch, pacing
from stockstream_cli.errors import BatchFailed
from stockstream_cli.settings import Settings
from stockstream_cli.sources.http import RequestCounts, request_kind
from stockstream_cli.dataset.store import LocalStore
from yahoo_fake import FakeYahoo
from helpers import fetch_batch
from clock import Clock

DAY = dt.date(2026, 1, 9)
RATE = 5.0


@pytest.fixture
def paced_world(tmp_path):
    """(fake, run): `run(codes, **settings)` fetches one batch at --rate RATE on the controlled clock and
    returns (document or BatchFailed, the batch's RequestCounts, the budget)."""
    clock = Clock()
    fake = FakeYahoo(clock=clock, sleep=clock.sleep, latency=0.05)

    def run(codes, **overrides):
        settings = Settings.resolve(environ={}, **{"rate": RATE, "retry_wait": 2.0, "retries": 3,
                                                   "cache_dir": str(tmp_path / "cache"), **overrides})
        pacer = pacing.pacer_for(settings, sleep=clock.sleep, clock=clock)
        counts = RequestCounts()
        try:
            result = fetch_batch(LocalStore(tmp_path / "store"), DAY, 0, settings, symbols=codes,
                                       pacer=pacer, sleep=clock.sleep, requests=counts)
        except BatchFailed as failed:
            result = failed
        return result, counts, pacer.budget

    with fake.installed():
        yield fake, run, clock


def assert_inside_the_budget(fake, budget, counts, rate=RATE):
    """Every request the fake received took a slot of the budget, was counted by kind, and no second held
    more than `rate` of them."""
    assert budget.requests == len(fake.requests) == counts.total
    by_kind = {kind: n for kind, n in counts.snapshot().items() if n}
    fake_kinds: dict[str, int] = {}
    for request in fake.requests:
        kind = request_kind(request.url)
        fake_kinds[kind] = fake_kinds.get(kind, 0) + 1
    assert by_kind == fake_kinds
    times = sorted(r.at for r in fake.requests)
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:i + int(rate) + 2] if t < start + 1.0) <= rate


def test_a_healthy_cold_batch_of_100_costs_100_chart_requests_one_cookie_one_crumb(paced_world):
    fake, run, clock = paced_world
    codes = [f"A{i:02d}" for i in range(100)]
    document, counts, budget = run(codes)
    assert document["metadata"]["symbols_fetched"] == 100
    assert counts.snapshot() == {"cookie": 1, "crumb": 1, "consent": 0, "chart": 100, "other": 0}
    assert fake.refused() == 0
    assert_inside_the_budget(fake, budget, counts)
    assert clock.now >= 101 / RATE  # 102 slots at (1 + MARGIN)/RATE


@pytest.mark.parametrize(
    ("fault", "reason", "kinds"),
    [  # one symbol faulty (every attempt), one healthy; retries 3: 4 attempts of the faulty one
        ("not_found", "not_found", {"cookie": 1, "crumb": 2, "chart": 3}),
        ("empty", "no_data", {"cookie": 1, "crumb": 1, "chart": 2}),
        ("malformed", "error", {"cookie": 1, "crumb": 1, "chart": 5}),
        ("timeout", "timeout", {"cookie": 1, "crumb": 1, "chart": 5}),
        ("rate_limited", "rate_limited", {"cookie": 1, "crumb": 5, "chart": 9}),
        ("server_error", "error", {"cookie": 1, "crumb": 5, "chart": 9}),
    ],
)
def test_each_fault_costs_these_requests_by_kind_all_inside_the_budget(paced_world, fault, reason, kinds):
    fake, run, _ = paced_world
    fake.fault("XYZ", fault)
    document, counts, budget = run(["BHP", "XYZ"])
    assert document["metadata"]["failure_reasons"] == {"XYZ": reason}
    assert {k: n for k, n in counts.snapshot().items() if n} == kinds
    assert_inside_the_budget(fake, budget, counts)
    if fault == "rate_limited":
        assert budget.decreases >= 1 and budget.cap < RATE


def test_blocking_and_a_poisoned_crumb_are_counted_and_inside_the_budget(paced_world):
    fake, run, _ = paced_world
    fake.poison_crumb(times=1)
    document, counts, budget = run(["AAA", "BBB"])
    assert document["metadata"]["symbols_fetched"] == 2
    assert counts.rate_limited == 1 and budget.rate_limited == 1  # the poisoned crumb, as a 429
    assert {k: n for k, n in counts.snapshot().items() if n} == {"cookie": 1, "crumb": 2, "chart": 2}
    fake.reset_counts()
    fake.block()
    document, counts, budget = run(["CCC", "DDD"])
    assert document["metadata"]["failure_reasons"] == {"CCC": "not_found", "DDD": "not_found"}
    assert {k: n for k, n in counts.snapshot().items() if n} == {"crumb": 2, "chart": 4}
    assert_inside_the_budget(fake, budget, counts)


def test_a_ten_minute_storm_costs_few_requests_all_counted_and_inside_the_budget(paced_world):
    """One worker at --delay 2 (the default pace), adaptive, 100 symbols; Yahoo refuses everything for 10
    minutes from t = 60 s."""
    fake, run, clock = paced_world
    fake.storm(600, start=60)
    codes = [f"S{i:02d}" for i in range(100)]
    document, counts, budget = run(codes, rate=None, delay=2.0)
    storm = [r for r in fake.requests if 60 <= r.at < 660]
    after = [r for r in fake.requests if r.at >= 660]
    assert all(r.status == 429 for r in storm) and all(r.status != 429 for r in after)
    assert len(storm) <= 600 * pacing.MIN_RATE + 15  # about one request per 10 s once the cap is at the floor
    assert counts.rate_limited == len(storm) == budget.rate_limited
    assert set(kind for kind, n in counts.snapshot().items() if n) <= {"cookie", "crumb", "chart"}
    assert budget.requests == len(fake.requests) == counts.total
    failed = document["metadata"]["failure_reasons"]
    assert set(failed.values()) == {"rate_limited"} and len(failed) <= 5  # retryable, for rerun-failed
    assert document["metadata"]["symbols_fetched"] == 100 - len(failed)
    gaps = [b.at - a.at for a, b in zip(after, after[1:]) if a.at >= 660 + pacing.RECOVERY_BOUND]
    assert min(gaps) == pytest.approx(2.0) and max(gaps) == pytest.approx(2.0)  # back at the default pace


def test_a_worker_process_passes_retry_after_to_the_runs_budget():
    from stockstream_cli.run.workers import BudgetService, RemoteBudget

    clock = Clock()
    service = BudgetService(pacing.RateBudget(None, clock=clock))
    try:
        remote = RemoteBudget(service.address, service.authkey, sleep=clock.sleep)
        remote.acquire()
        remote.on_rate_limited(30.0)
        # answered in order on one connection; the worker asks again every HORIZON s until Retry-After's end
        assert remote.acquire() == pytest.approx(30.0) and max(clock.slept) <= pacing.HORIZON
    finally:
        service.close()


def test_a_failing_pacer_is_not_taken_for_yahoos_answer(fake_yahoo, tmp_path):
    """A worker whose budget service is gone (the parent killed) must fail the batch, not record its symbols
    as failed with the pacer's error and write them."""

    class Gone:
        def wait(self):
            pass

        def on_success(self):
            raise BrokenPipeError(32, "Broken pipe")

        def on_rate_limited(self, retry_after=None):
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        fetch_batch(LocalStore(tmp_path), DAY, 0, Settings.resolve(environ={}, delay=0, retry_wait=0),
                          symbols=["AAA", "BBB"], pacer=Gone())
    assert not (tmp_path / "runs").exists()
