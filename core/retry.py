"""One retry helper for every "try again until the service is back" loop.

A call is retried while ``retry_on(exc)`` says the failure is transient (a lost or refused
connection, an exhausted pool), with exponential backoff between attempts, until it
succeeds, ``attempts`` calls have failed, the next wait would end past ``deadline_s``, or
the sleep reports a stop request. The clock and the sleep are passed in, so callers wait
on their own stop event (``stop.wait``) and tests run without waiting at all.

Any failure that ``retry_on`` does not accept is raised as it is, at once: the data was
refused, and retrying would not change that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from offsite.core.errors import RetryExhausted, RetryStopped

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits of ``first_s``, then ``factor`` times the last, capped at ``max_s``
    (``factor`` 1: a fixed interval)."""

    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.first_s < 0 or self.factor < 1 or self.max_s < self.first_s:
            raise ValueError(f"a backoff needs 0 <= first_s <= max_s and factor >= 1: {self}")

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * self.factor, self.max_s)


def plain_sleep(seconds: float) -> bool:
    """``time.sleep`` as a retry sleep: never asks to stop."""
    time.sleep(seconds)
    return False


class _Budget:
    """Attempts and deadline, shared by the blocking and the async helper."""

    def __init__(
        self,
        backoff: Backoff,
        attempts: int | None,
        deadline_s: float | None,
        clock: Callable[[], float],
    ) -> None:
        if attempts is not None and attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self.delays = backoff.delays()
        self.attempts, self.clock = attempts, clock
        self.ends = None if deadline_s is None else clock() + deadline_s
        self.failed = 0

    def next_delay(self) -> float:
        self.failed += 1
        return next(self.delays)

    def check(self, exc: BaseException, delay: float) -> None:
        """Raise RetryExhausted when no attempt may follow a wait of ``delay``."""
        if self.attempts is not None and self.failed >= self.attempts:
            raise RetryExhausted(f"gave up after {self.failed} attempts: {exc}") from exc
        if self.ends is not None and self.clock() + delay > self.ends:
            raise RetryExhausted(
                f"gave up after {self.failed} attempts (deadline reached): {exc}"
            ) from exc


def retry(
    fn: Callable[[], T],
    *,
    retry_on: Callable[[BaseException], bool],
    backoff: Backoff = Backoff(),
    attempts: int | None = None,
    deadline_s: float | None = None,
    sleep: Callable[[float], bool] = plain_sleep,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Call ``fn`` until it returns, retrying the failures ``retry_on`` accepts.

    ``sleep(seconds)`` waits and returns True to stop (``threading.Event.wait`` fits):
    then RetryStopped is raised. ``on_retry(exc, delay)`` is told of every transient
    failure (to log it, count it), with the wait that follows if the budget allows
    another attempt. RetryExhausted when ``attempts`` or ``deadline_s`` run out; both
    chain the last failure.
    """
    budget = _Budget(backoff, attempts, deadline_s, clock)
    while True:
        try:
            return fn()
        except Exception as exc:
            if not retry_on(exc):
                raise
            delay = budget.next_delay()
            if on_retry is not None:
                on_retry(exc, delay)
            budget.check(exc, delay)
            if sleep(delay):
                raise RetryStopped(f"stopped while retrying: {exc}") from exc


async def _asleep(seconds: float) -> bool:
    await asyncio.sleep(seconds)
    return False


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    *,
    retry_on: Callable[[BaseException], bool],
    backoff: Backoff = Backoff(),
    attempts: int | None = None,
    deadline_s: float | None = None,
    sleep: Callable[[float], Awaitable[bool]] = _asleep,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """``retry`` for coroutines; cancelling the task stops it like any other await."""
    budget = _Budget(backoff, attempts, deadline_s, clock)
    while True:
        try:
            return await fn()
        except Exception as exc:
            if not retry_on(exc):
                raise
            delay = budget.next_delay()
            if on_retry is not None:
                on_retry(exc, delay)
            budget.check(exc, delay)
            if await sleep(delay):
                raise RetryStopped(f"stopped while retrying: {exc}") from exc
