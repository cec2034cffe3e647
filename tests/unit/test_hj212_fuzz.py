"""A fast run of the HJ 212 fuzzer (the long run: python -m offsite.bench.fuzz_hj212)."""

from __future__ import annotations

from offsite.bench.fuzz_hj212 import report, run


def test_fuzz_invariants_hold():
    # includes the inputs that tripped the bugs the first fuzz runs found
    fig = run(seconds=None, max_inputs=3000, seed=20260301)
    assert not fig.violations, report(fig, 0.0, 20260301)
    # the run reached every stage, not only the CRC check
    assert fig.parse["accepted"] > 500
    for reason in (
        "hj212_crc_mismatch",
        "hj212_length_mismatch",
        "hj212_malformed_field",
        "hj212_missing_field",
        "hj212_bad_header",
    ):
        assert fig.parse[reason] > 0, reason
    assert fig.message["records"] > 0 and fig.message["bad_timestamp"] > 0
    assert fig.process["readings"] > 0 and fig.process["dead:hj212_wrong_password"] > 0
    assert fig.framer["streams"] > 100 and fig.framer["garbage events"] > 0
    assert fig.split["sets complete"] > 0 and fig.split["sets expired/evicted"] > 0


def test_fuzz_is_deterministic_for_a_seed():
    a = run(seconds=None, max_inputs=300, seed=7)
    b = run(seconds=None, max_inputs=300, seed=7)
    assert (a.parse, a.process, a.framer) == (b.parse, b.process, b.framer)
