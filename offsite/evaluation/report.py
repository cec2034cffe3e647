"""Scores as a text table or a JSON document. Pure formatting."""

from __future__ import annotations

from typing import Any

from offsite.evaluation.scoring import UNEXPLAINED, KindScore, Scores, Targets

OK, MISS, NA = "ok", "MISS", "-"


def _fmt(value: float | None, spec: str) -> str:
    return NA if value is None else format(value, spec)


def _mark(value: float | None, good: bool) -> str:
    return "" if value is None else ("" if good else " !")


def kind_row(k: KindScore, t: Targets) -> str:
    r, p, d, c = k.recall, k.precision, k.median_delay_min, k.clean_rate
    cells = [
        f"{k.kind:<12}",
        f"{k.faults:>6}",
        f"{k.detected:>6}",
        f"{_fmt(r, '.2f') + _mark(r, r is not None and r >= t.recall):>8}",
        f"{k.alerts:>7}",
        f"{_fmt(p, '.2f') + _mark(p, p is not None and p >= t.precision):>10}",
        f"{_fmt(d, '.1f') + _mark(d, d is not None and d <= t.delay_min):>11}",
        f"{_fmt(c, '.3f') + _mark(c, c is not None and c <= t.clean_per_device_day):>10}",
        f"  {MISS if k.missed(t) else OK}",
    ]
    return " ".join(cells)


def text_report(s: Scores, t: Targets, header: str) -> list[str]:
    lines = [
        header,
        "",
        f"{'kind':<12} {'faults':>6} {'found':>6} {'recall':>8} {'alerts':>7} "
        f"{'precision':>10} {'delay min':>11} {'clean/dd':>10}  verdict",
    ]
    lines += [kind_row(k, t) for k in s.kinds]
    lines.append(
        f"targets: recall ≥ {t.recall:g}, precision ≥ {t.precision:g}, median delay "
        f"≤ {t.delay_min:g} min, clean false alerts ≤ {t.clean_per_device_day:g} per "
        f"device-day ('!' marks a miss, '-' nothing to measure)"
    )
    rate = s.clean_rate
    lines.append(
        f"clean runs: {s.clean_alerts} alerts over {s.clean_device_days:.1f} "
        f"device-days = {_fmt(rate, '.3f')} per device-day (all rules)"
    )
    lines += [
        "",
        "confusion: alerts of each rule (rows) explained by injected fault kind "
        f"(columns; '{UNEXPLAINED}' = no fault explains it)",
    ]
    cols = [k.kind for k in s.kinds]
    seen = sorted({c for row in s.confusion.values() for c in row} - set(cols) - {UNEXPLAINED})
    cols += [*seen, UNEXPLAINED]
    if not s.confusion:
        lines.append("  (no alerts)")
    else:
        width = max(len(c) for c in cols) + 1
        lines.append(f"{'rule':<16}" + "".join(f"{c[:width]:>{width}}" for c in cols))
        for rule in sorted(s.confusion):
            row = s.confusion[rule]
            lines.append(f"{rule:<16}" + "".join(f"{row.get(c, 0) or '.':>{width}}" for c in cols))
    missed = s.missed(t)
    met = sum(1 for k in s.kinds if k.kind not in missed)
    lines += [
        "",
        f"summary: {met} of {len(s.kinds)} fault kinds meet every target"
        + ("" if "clean (all rules)" not in missed else "; clean data raises too many alerts"),
    ]
    for kind, why in missed.items():
        lines.append(f"  {kind}: {'; '.join(why)}")
    return lines


def json_report(s: Scores, t: Targets, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        **meta,
        "targets": {
            "precision": t.precision,
            "recall": t.recall,
            "median_delay_min": t.delay_min,
            "clean_per_device_day": t.clean_per_device_day,
        },
        "kinds": [
            {
                "kind": k.kind,
                "faults": k.faults,
                "detected": k.detected,
                "recall": k.recall,
                "alerts": k.alerts,
                "true_alerts": k.true_alerts,
                "precision": k.precision,
                "median_delay_min": k.median_delay_min,
                "delays_min": list(k.delays_min),
                "clean_alerts": k.clean_alerts,
                "clean_per_device_day": k.clean_rate,
                "missed": k.missed(t),
            }
            for k in s.kinds
        ],
        "clean": {
            "alerts": s.clean_alerts,
            "device_days": s.clean_device_days,
            "per_device_day": s.clean_rate,
        },
        "confusion": s.confusion,
        "missed": s.missed(t),
    }
