"""Feeding simulated runs through the rule engine and the alert lifecycle, in device time.

Every call into ``rules`` is in ``run_engine``: when the engine's API changes, that
one function is re-pointed and nothing else here moves. The rest turns a fleet
into minute-by-minute batches (received time = device time, as a live logger
with no delay) and collects which alerts were *raised* (a plan upsert that opens
a key not already active).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from offsite.core.registry import Registry
from offsite.evaluation.scoring import Raised
from offsite.simulators.evalsuite import EvalRun
from offsite.simulators.faults import Message

Batch = tuple[datetime, Sequence[Message]]  # device time, what every device sent then


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """What ``offsite ingest`` takes from Settings for its rules: the rules file
    (None: the packaged rules) and the default time a condition must be gone."""

    rules_file: Path | None = None
    alert_clear_s: float = 300.0


def run_engine(
    registry: Registry,
    ordered_batches: Iterable[Batch],
    check_offline_every: int = 1,
    config: EngineConfig | None = None,
) -> list[Raised]:
    """The alerts the engine raises on ``ordered_batches`` (in device-time order).

    Wired as ``ingest`` wires it (``ingest/service.py``): the rules file, the registry
    as the engine sees it, the alert book with each rule's clear time and cooldown,
    offline judged on receive times. The offline check runs after every
    ``check_offline_every``-th batch with the batch's time as the clock. Muted alerts
    (maintenance, silences) are raised like the others: they are stored and shown.
    """
    from offsite.core.readings import Reading
    from offsite.rules.alerts import Plan
    from offsite.rules.engine import Evaluation, RuleEngine
    from offsite.rules.registry_view import device_meta
    from offsite.rules.rules_file import load_rules

    cfg = config or EngineConfig()
    batches = iter(ordered_batches)
    first = next(batches, None)
    if first is None:
        return []
    engine = RuleEngine(load_rules(cfg.rules_file), device_meta(registry), started_at=first[0])
    book = engine.alert_book(timedelta(seconds=cfg.alert_clear_s))  # as the runner's
    raised: list[Raised] = []

    def apply(ev: Evaluation) -> None:
        plan: Plan = book.plan(ev.findings, ev.seen, ev.judged)
        active = set(book.active)
        for u, key in plan.closed:  # episodes that began and ended within this batch
            if u is not None and key not in active:
                raised.append(Raised(u.rule, u.mn, u.pollutant, u.first_seen))
            active.discard(key)
        for u in plan.upserts:
            if u.key not in active:
                raised.append(Raised(u.rule, u.mn, u.pollutant, u.first_seen))
        book.applied(plan)

    def chain() -> Iterator[Batch]:
        yield first
        yield from batches

    for k, (ts, messages) in enumerate(chain()):
        readings = [
            Reading(ts, m.mn, code, value, m.flags.get(code, "N"))
            for m in messages
            for code, value in m.values.items()
        ]
        apply(engine.evaluate(readings, {m.mn: ts for m in messages}))
        if (k + 1) % check_offline_every == 0:
            apply(engine.check_offline(ts))
    return raised


def batches_of(run: EvalRun) -> Iterator[Batch]:
    """The run's device ticks in time order, each with every message sent then."""
    for ts in run.fleet.timestamps(run.duration_s):
        yield ts, run.fleet.messages(ts)


def run_one(run: EvalRun, config: EngineConfig | None = None) -> list[Raised]:
    return run_engine(run.fleet.registry, batches_of(run), 1, config)
