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
        f"{_fmt(d, '.1f') + _mark(d, d is not None and d <= t.delay_for(k.kind)):>11}",
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
            "median_delay_min_by_kind": dict(t.delay_by_kind),
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


def _cell(k: KindScore | None, t: Targets) -> str:
    """found/faults, recall, alerts, precision, delay of one kind in one split."""
    if k is None or (k.faults == 0 and k.alerts == 0):
        return f"{NA:>7} {NA:>6} {NA:>6} {NA:>6} {NA:>8}"
    r, p, d = k.recall, k.precision, k.median_delay_min
    return (
        f"{f'{k.detected}/{k.faults}':>7} "
        f"{_fmt(r, '.2f') + _mark(r, r is not None and r >= t.recall):>6} "
        f"{k.alerts:>6} "
        f"{_fmt(p, '.2f') + _mark(p, p is not None and p >= t.precision):>6} "
        f"{_fmt(d, '.1f') + _mark(d, d is not None and d <= t.delay_for(k.kind)):>8}"
    )


def splits_text_report(
    by_split: dict[str, Scores], t: Targets, header: list[str], verdict_split: str
) -> list[str]:
    """Every split's figures side by side, per kind, with the targets beside them.

    The verdict column judges ``verdict_split`` (the held-out one when it ran): the
    figures a tuning never saw are the ones that count.
    """
    names = list(by_split)
    kinds: list[str] = []
    for s in by_split.values():
        kinds += [k.kind for k in s.kinds if k.kind not in kinds]
    width = 38
    lines = [*header, ""]
    lines.append(f"{'':<12} " + " ".join(f"{('── ' + n + ' ').ljust(width, '─')}" for n in names))
    sub = f"{'found':>7} {'recall':>6} {'alerts':>6} {'prec':>6} {'delay':>8}"
    lines.append(
        f"{'kind':<12} " + " ".join(f"{sub:<{width}}" for _ in names) + " target delay  verdict"
    )
    for kind in kinds:
        cells = []
        for n in names:
            got = {k.kind: k for k in by_split[n].kinds}.get(kind)
            cells.append(f"{_cell(got, t):<{width}}")
        judged = {k.kind: k for k in by_split[verdict_split].kinds}.get(kind)
        verdict = NA if judged is None or judged.faults == 0 else (MISS if judged.missed(t) else OK)
        lines.append(
            f"{kind:<12} " + " ".join(cells) + f" ≤ {t.delay_for(kind):>5g} min  {verdict}"
        )
    clean = " ".join(f"{_clean_cell(s):<{width}}" for s in by_split.values())
    rate = by_split[verdict_split].clean_rate
    ok = rate is None or rate <= t.clean_per_device_day
    lines.append(
        f"{'clean/dd':<12} {clean} ≤ {t.clean_per_device_day:g}/dd    {OK if ok else MISS}"
    )
    lines.append(
        f"targets: recall ≥ {t.recall:g}, precision ≥ {t.precision:g}, median delay as shown "
        f"(step-like {t.delay_min:g} min), all rules together on clean devices ≤ "
        f"{t.clean_per_device_day:g} false alerts per device-day (dd). '!' marks a miss, "
        f"'-' nothing to measure; found = faults with a matching alert / faults."
    )
    for n in names:
        s = by_split[n]
        lines += ["", f"{n}: false alerts on clean devices by rule"]
        per_rule = s.clean_by_rule
        if not per_rule:
            lines.append("  (none)")
        else:
            days = s.clean_device_days or 1.0
            lines += [
                f"  {rule:<16} {count:>6}  {count / days:8.3f}/dd"
                for rule, count in sorted(per_rule.items(), key=lambda kv: -kv[1])
            ]
        for group, days in sorted(s.clean_days_by_group.items()):
            if not days:
                continue
            rules = s.clean_by_group.get(group, {})
            total = sum(rules.values())
            worst = ", ".join(
                f"{r} {c}" for r, c in sorted(rules.items(), key=lambda kv: -kv[1])[:4]
            )
            lines.append(
                f"  on {group:<22} {total:>6} in {days:g} dd = {total / days:8.3f}/dd"
                + (f"  ({worst})" if worst else "")
            )
        lines += [f"{n}: alerts of each rule (rows) explained by injected fault kind"]
        lines += _confusion(s)
    missed = by_split[verdict_split].missed(t)
    met = sum(1 for k in by_split[verdict_split].kinds if k.faults and k.kind not in missed)
    total = sum(1 for k in by_split[verdict_split].kinds if k.faults)
    lines += [
        "",
        f"summary ({verdict_split}): {met} of {total} fault kinds meet every target"
        + ("" if "clean (all rules)" not in missed else "; clean devices raise too many alerts"),
    ]
    for kind, why in missed.items():
        lines.append(f"  {kind}: {'; '.join(why)}")
    return lines


def _clean_cell(s: Scores) -> str:
    return f"{_fmt(s.clean_rate, '.3f')} ({s.clean_alerts} in {s.clean_device_days:g} dd)"


def _confusion(s: Scores) -> list[str]:
    cols = [k.kind for k in s.kinds if k.faults]
    seen = sorted({c for row in s.confusion.values() for c in row} - set(cols) - {UNEXPLAINED})
    cols += [*seen, UNEXPLAINED]
    if not s.confusion:
        return ["  (no alerts)"]
    width = max(len(c) for c in cols) + 1
    out = [f"  {'rule':<16}" + "".join(f"{c[:width]:>{width}}" for c in cols)]
    for rule in sorted(s.confusion):
        row = s.confusion[rule]
        out.append(f"  {rule:<16}" + "".join(f"{row.get(c, 0) or '.':>{width}}" for c in cols))
    return out


def splits_json_report(
    by_split: dict[str, Scores], t: Targets, meta: dict[str, Any], verdict_split: str
) -> dict[str, Any]:
    """``{"splits": {name: json_report …}, "verdict_split", "missed"}`` plus ``meta``."""
    splits = {}
    for name, s in by_split.items():
        doc = json_report(s, t, {})
        doc.pop("targets")
        doc["clean"]["by_rule"] = s.clean_by_rule
        doc["clean"]["by_profile"] = {
            g: {
                "device_days": days,
                "alerts": sum(s.clean_by_group.get(g, {}).values()),
                "per_device_day": sum(s.clean_by_group.get(g, {}).values()) / days,
                "by_rule": s.clean_by_group.get(g, {}),
            }
            for g, days in s.clean_days_by_group.items()
            if days
        }
        splits[name] = doc
    return {
        **meta,
        "targets": json_report(by_split[verdict_split], t, {})["targets"],
        "splits": splits,
        "verdict_split": verdict_split,
        "missed": by_split[verdict_split].missed(t),
    }
