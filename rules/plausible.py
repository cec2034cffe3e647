"""What each channel can physically read (for the ``implausible`` detector)."""

from __future__ import annotations

import math

_INF = math.inf
_CONCENTRATIONS = (
    "a21026",
    "a21002",
    "a34013",
    "a24088",
    "a21005",
    "a05002",
    "w01018",
    "w21003",
    "w21001",
    "w21011",
    "w01019",
    "w01009",
)

RANGES: dict[str, tuple[float, float]] = {
    **{code: (0.0, _INF) for code in _CONCENTRATIONS},
    "a19001": (0.0, 21.0),  # O2 %: air holds 20.9 %
    "w01001": (0.0, 14.0),  # pH
    "a01014": (0.0, 100.0),  # flue-gas humidity %
    "a01012": (-60.0, 1500.0),  # flue-gas temperature °C
    "a01011": (0.0, _INF),  # flue-gas velocity
    "a00000": (0.0, _INF),  # flue-gas flow
    "w00000": (0.0, _INF),  # wastewater flow
}


def plausible_range(code: str) -> tuple[float, float]:
    """(lowest, highest) possible value; unknown channels are unbounded."""
    return RANGES.get(code, (-_INF, _INF))
