"""Structured logs and the lock-free histogram behind ingest's Prometheus metrics."""

from __future__ import annotations

import io
import json
import logging

import pytest

from offsite.core.logs import setup_logging
from offsite.ingest.histogram import Counts


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_off_a_terminal_carry_context_fields(restore_logging):
    out = io.StringIO()  # not a terminal: a pipe, a container log
    setup_logging("INFO", stream=out)
    log = logging.getLogger("offsite.ingest")
    log.info(
        "dead letter: %s",
        "unknown_device",
        extra={"reason": "unknown_device", "mn": "010000A8", "topic": "devices/x/t"},
    )
    log.debug("not at info")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("pipeline stopped", extra={"enterprise_id": "E1"})
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["msg"] == "dead letter: unknown_device" and first["level"] == "info"
    assert (first["reason"], first["mn"], first["logger"]) == (
        "unknown_device",
        "010000A8",
        "offsite.ingest",
    )
    assert first["ts"].endswith("+00:00")
    assert second["enterprise_id"] == "E1" and "RuntimeError: boom" in second["exc"]
    assert "args" not in first and "levelno" not in first


def test_text_on_a_terminal_and_when_asked(restore_logging):
    out = _Tty()
    setup_logging("INFO", stream=out)
    logging.getLogger("offsite.x").warning("lag %d s", 3, extra={"worker": "w1"})
    line = out.getvalue().strip()
    assert "WARNING" in line and line.endswith("offsite.x: lag 3 s [worker=w1]")
    out2 = io.StringIO()
    setup_logging("INFO", stream=out2, fmt="text")
    logging.getLogger("offsite.x").info("plain")
    assert out2.getvalue().rstrip().endswith("offsite.x: plain")
    out3 = _Tty()
    setup_logging("INFO", stream=out3, fmt="json")
    logging.getLogger("offsite.x").info("forced")
    assert json.loads(out3.getvalue())["msg"] == "forced"


def test_histogram_counts_are_cumulative_with_inclusive_bounds():
    h = Counts((1, 10, 100))
    for v in (0.5, 1, 1.5, 10, 99, 1000):
        h.observe(v)
    assert h.cumulative() == [("1", 2), ("10", 4), ("100", 5), ("+Inf", 6)]
    assert h.n == 6 and h.total == pytest.approx(1112.0)
    with pytest.raises(ValueError, match="ascending"):
        Counts((10, 1))
