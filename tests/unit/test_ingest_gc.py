"""The worker's garbage-collector settings (ingest.service.tune_gc)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from offsite.ingest.service import GC_THRESHOLDS, tune_gc


@pytest.fixture
def gc_state() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_thresholds_raised_and_start_frozen(gc_state: None) -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 0  # what was there at start is set aside
    # cycles are still collected
    a: list[object] = []
    a.append(a)
    del a
    assert gc.collect() >= 1


def test_higher_thresholds_kept(gc_state: None) -> None:
    gc.set_threshold(50_000, 5, 100)
    tune_gc()
    assert gc.get_threshold() == (50_000, GC_THRESHOLDS[1], 100)
