"""The rule runner's pure pieces: exit descriptions, lock keys, lock-free figures."""

from __future__ import annotations

from offsite.runner.rule_process import describe_exit, figures_in, new_counts
from offsite.runner.rule_runner import RULES_LOCK
from offsite.store import migrate, partitions


def test_exits_are_described_by_status_or_signal() -> None:
    assert describe_exit(0) == "exited with status 0"
    assert describe_exit(1) == "exited with status 1"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-15) == "killed by SIGTERM"
    assert describe_exit(None) == "still running"


def test_every_advisory_lock_key_is_distinct() -> None:
    """Partition upkeep once shared the rule runner's key: a leading runner holds its
    lock as long as it leads, so every upkeep run was skipped."""
    keys = [RULES_LOCK, migrate._LOCK_KEY, partitions._LOCK_KEY]
    assert len(set(keys)) == len(keys)


def test_figures_are_read_without_a_lock() -> None:
    """A runner killed while holding a lock on its counters would block every reader."""
    counts = new_counts()
    assert not hasattr(counts, "get_lock")
    counts[:] = [1, 10, 2, 3, 4]
    f = figures_in(counts)
    assert (f.leading, f.judged, f.late, f.opened, f.cleared) == (True, 10, 2, 3, 4)


def test_healthz_names_a_worker_whose_rule_runner_is_being_restarted() -> None:
    from offsite.api.routes.health import _worker

    base = {
        "heartbeat_age_s": 1.0,
        "broker_connected": True,
        "lag_s": 0.0,
        "rules_runner": "running",
        "rules_restarts": 0,
        "rules_last_exit": None,
    }
    assert _worker(base, identify=False)["state"] == "ok"
    restarting = {**base, "rules_runner": "restarting", "rules_last_exit": "killed by SIGKILL"}
    assert _worker(restarting, identify=False)["state"] == "rules restarting"
    assert _worker({**restarting, "heartbeat_age_s": 60.0}, identify=True)["state"] == "stale"


def test_the_worker_metrics_show_runner_restarts_and_whether_it_is_up() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from offsite.ingest.metrics import IngestCollector
    from offsite.ingest.pipeline import IngestStats
    from offsite.runner.rule_process import RulesFigures

    registry = CollectorRegistry()
    registry.register(
        IngestCollector(
            IngestStats(),
            lambda: (True, None),
            lambda: (0, 0.0),
            lambda: RulesFigures(leading=False, judged=7, restarts=2, up=False),
        )
    )
    text = generate_latest(registry).decode()
    assert "offsite_rules_runner_restarts_total 2.0" in text
    assert "offsite_rules_runner_up 0.0" in text
    assert "offsite_rules_judged_total 7.0" in text


def test_a_runner_that_keeps_dying_young_is_restarted_ever_more_slowly() -> None:
    from offsite.runner.rule_process import RESTART_MAX_S, RESTART_S, STABLE_S, restart_delay

    assert restart_delay(RESTART_S, 5.0, 0) == RESTART_S  # the first death: at once
    d = RESTART_S
    for n in range(1, 10):
        d = restart_delay(d, 5.0, n)
    assert d == RESTART_MAX_S
    assert restart_delay(d, STABLE_S + 1, 10) == RESTART_S  # it lived: forgiven
