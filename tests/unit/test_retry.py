"""core.retry: backoff, attempts, deadline, stop, and what is not retried — on a fake
clock whose sleep only advances it."""

from __future__ import annotations

import asyncio

import pytest

from offsite.core.errors import RetryError, RetryExhausted, RetryStopped
from offsite.core.retry import Backoff, retry, retry_async


class Transient(Exception):
    pass


class FakeTime:
    def __init__(self, stop_after: int | None = None) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.stop_after = stop_after

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.slept.append(seconds)
        self.now += seconds
        return self.stop_after is not None and len(self.slept) >= self.stop_after

    async def asleep(self, seconds: float) -> bool:
        return self.sleep(seconds)


def flaky(fails: int, exc: type[Exception] = Transient):
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= fails:
            raise exc(f"failure {calls['n']}")
        return "ok"

    return fn, calls


def transient(exc: BaseException) -> bool:
    return isinstance(exc, Transient)


def test_backoff_doubles_up_to_its_cap():
    t = FakeTime()
    fn, calls = flaky(7)
    seen: list[tuple[str, float]] = []
    out = retry(
        fn,
        retry_on=transient,
        backoff=Backoff(0.5, 2, 5),
        sleep=t.sleep,
        clock=t.clock,
        on_retry=lambda e, d: seen.append((str(e), d)),
    )
    assert out == "ok" and calls["n"] == 8
    assert t.slept == [0.5, 1, 2, 4, 5, 5, 5]
    assert seen[0] == ("failure 1", 0.5) and len(seen) == 7


def test_a_fixed_interval():
    t = FakeTime()
    fn, _ = flaky(3)
    retry(fn, retry_on=transient, backoff=Backoff(2, 1, 2), sleep=t.sleep, clock=t.clock)
    assert t.slept == [2, 2, 2]


def test_success_at_once_never_sleeps():
    t = FakeTime()
    fn, calls = flaky(0)
    assert retry(fn, retry_on=transient, sleep=t.sleep, clock=t.clock) == "ok"
    assert calls["n"] == 1 and t.slept == []


def test_a_failure_that_is_not_transient_is_raised_at_once():
    t = FakeTime()
    fn, calls = flaky(5, exc=ValueError)
    with pytest.raises(ValueError, match="failure 1"):
        retry(fn, retry_on=transient, sleep=t.sleep, clock=t.clock)
    assert calls["n"] == 1 and t.slept == []


def test_attempts_run_out_with_the_last_failure_as_cause():
    t = FakeTime()
    fn, calls = flaky(10)
    told: list[float] = []
    with pytest.raises(RetryExhausted, match="after 3 attempts") as info:
        retry(
            fn,
            retry_on=transient,
            attempts=3,
            sleep=t.sleep,
            clock=t.clock,
            on_retry=lambda e, d: told.append(d),
        )
    # every failure is told (and counted by callers), the last one too; two waits
    assert calls["n"] == 3 and len(t.slept) == 2 and told == [0.5, 1.0, 2.0]
    assert isinstance(info.value.__cause__, Transient) and str(info.value.__cause__) == "failure 3"
    assert isinstance(info.value, RetryError)


def test_the_deadline_stops_before_a_wait_that_would_pass_it():
    t = FakeTime()
    fn, calls = flaky(10)
    with pytest.raises(RetryExhausted, match="deadline"):
        retry(
            fn,
            retry_on=transient,
            backoff=Backoff(1, 2, 30),
            deadline_s=10,
            sleep=t.sleep,
            clock=t.clock,
        )
    # waits 1 + 2 + 4 = 7 fit in 10 s; the next (8) would end at 15
    assert t.slept == [1, 2, 4] and calls["n"] == 4 and t.now == 107


def test_a_stop_request_ends_the_wait():
    t = FakeTime(stop_after=2)
    fn, calls = flaky(10)
    with pytest.raises(RetryStopped) as info:
        retry(fn, retry_on=transient, sleep=t.sleep, clock=t.clock)
    assert calls["n"] == 2 and isinstance(info.value.__cause__, Transient)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        Backoff(first_s=5, max_s=1)
    with pytest.raises(ValueError):
        Backoff(factor=0.5)
    with pytest.raises(ValueError):
        retry(lambda: 1, retry_on=transient, attempts=0)


def test_async_retries_the_same_way():
    t = FakeTime()
    fn, calls = flaky(2)

    async def afn() -> str:
        return fn()

    out = asyncio.run(
        retry_async(afn, retry_on=transient, sleep=t.asleep, clock=t.clock, attempts=5)
    )
    assert out == "ok" and calls["n"] == 3 and t.slept == [0.5, 1.0]


def test_async_stop_and_exhaustion():
    t = FakeTime(stop_after=1)
    fn, _ = flaky(10)

    async def afn() -> str:
        return fn()

    with pytest.raises(RetryStopped):
        asyncio.run(retry_async(afn, retry_on=transient, sleep=t.asleep, clock=t.clock))
    t2 = FakeTime()
    with pytest.raises(RetryExhausted):
        asyncio.run(
            retry_async(afn, retry_on=transient, sleep=t2.asleep, clock=t2.clock, attempts=2)
        )
