"""The benchmarks at toy scale on the real services: their books must balance (every
published reading stored, every message delivered once, each worker got a share, every
injected exceedance seen on the feed). Figures are not asserted — they are the output."""

from __future__ import annotations

import pytest

from offsite.bench.ingest import IngestBenchArgs, run_ingest_bench
from offsite.bench.latency import LatencyBenchArgs, run_latency_bench
from tests import services

pytestmark = [pytest.mark.integration, pytest.mark.mosquitto]


@pytest.fixture(autouse=True)
def _needs_mosquitto() -> None:
    if services.mosquitto_binary() is None:
        if services.required():
            pytest.fail("OFFSITE_TEST_REQUIRE_SERVICES=1 but no mosquitto binary was found")
        pytest.skip("the benchmarks run a Mosquitto of their own")


def test_ingest_bench_two_workers_balance(admin_db_url: str) -> None:
    r = run_ingest_bench(
        IngestBenchArgs(devices=30, ticks=10, publishers=2, workers=2, rounds=2),
        admin_db_url,
        out=lambda _s: None,
    )
    assert r["messages"] == 300
    assert r["lost"] == 0 and r["stored"] == r["readings"]
    shares = r["worker_messages"]
    assert isinstance(shares, list) and sum(shares) == 300 and min(shares) > 0
    assert r["latency_samples"] and r["offsite_messages_per_s"] and r["bare_messages_per_s"]
    # the minimal lossless comparator ran beside it, round by round, and stored everything
    rates = r["rates_per_round"]
    assert isinstance(rates, dict) and len(rates["minimal"]) == len(rates["offsite"]) == 2
    assert r["minimal_messages_per_s"] and r["ratio_offsite_minimal"]


def test_latency_bench_sees_every_probe_on_the_feed(admin_db_url: str) -> None:
    r = run_latency_bench(
        LatencyBenchArgs(readings_per_s=300, probes=4, probe_every_s=0.2),
        admin_db_url,
        out=lambda _s: None,
    )
    assert r["probes"] == r["alerts_seen"] == 4
    assert r["lost"] == 0
