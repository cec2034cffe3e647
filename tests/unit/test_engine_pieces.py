"""A round over many series is judged in pieces of whole devices (to bound its memory):
the pieces must raise exactly what one piece raises — partner channels (O2, flow) and
device-wide rules included."""

from __future__ import annotations

import pytest

from offsite.evaluation.runner import run_one
from offsite.rules import engine
from offsite.simulators.evalsuite import EvalRun, build_suite
from offsite.simulators.faults import FaultKind

KINDS = [
    FaultKind.DILUTION,
    FaultKind.FALSE_STOP,
    FaultKind.FLAG_ABUSE,
    FaultKind.EXCEEDANCE,
    FaultKind.FLATLINE,
]


def test_judging_a_round_in_pieces_raises_what_one_piece_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fresh() -> EvalRun:  # a fleet's streams are consumed as they are read
        (run, _clean) = build_suite(1, KINDS, devices_per_kind=2, clean_devices=1)
        return run

    whole = run_one(fresh())
    monkeypatch.setattr(engine, "ROUND_PIECE", 5)  # a device has up to 8 series
    pieces = run_one(fresh())
    assert {a.rule for a in whole} >= {k.value for k in KINDS}
    assert sorted(pieces, key=repr) == sorted(whole, key=repr)


def test_a_device_is_never_split_between_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of one reading: a cut inside a device would judge its concentrations
    without the O2 of the same instant, and see the dilution a minute late."""

    def fresh() -> EvalRun:
        (run,) = build_suite(2, [FaultKind.DILUTION], devices_per_kind=2, clean_devices=0)
        return run

    whole = run_one(fresh())
    monkeypatch.setattr(engine, "ROUND_PIECE", 1)
    assert "dilution" in {a.rule for a in whole}
    assert sorted(run_one(fresh()), key=repr) == sorted(whole, key=repr)
