"""slow_drift: an analyser creeping a per cent or two an hour away from its partners is
found; a step (a fuel change) and the analyser's own wander, which turns back, are not.

The detector is driven directly, a reading a minute for three days, with the load its
partners share given as the ``load`` partner (as the engine gives it)."""

from __future__ import annotations

import numpy as np

from offsite.rules.config import SeriesInfo
from offsite.rules.detectors import Batch, Partner
from offsite.rules.detectors.base import FLAG_N
from offsite.rules.detectors.drift import SlowDrift
from offsite.rules.rules_file import load_rules

T0 = 1_795_996_800.0  # 2026-11-30T00:00:00Z
MIN = 3 * 1440
START = 36 * 60  # the fault starts a day and a half in


def ar(rng: np.random.Generator, n: int, sd: float, tau_min: float) -> np.ndarray:
    """A smooth, mean-reverting wander (AR(1) low-passed) of about ``sd``."""
    phi = np.exp(-1.0 / tau_min)
    z = rng.normal(0.0, sd * np.sqrt(2.0 * (1 - phi * phi)), n)
    a = np.zeros(n)
    lp = np.zeros(n)
    for k in range(1, n):
        a[k] = phi * a[k - 1] + z[k]
        lp[k] = phi * lp[k - 1] + (1 - phi) * a[k]
    return lp


def shared_load(rng: np.random.Generator) -> np.ndarray:
    """A load with a daily cycle of ±12 % and ±8 % wander over half an hour."""
    i = np.arange(MIN)
    return (1 + 0.12 * np.cos(2 * np.pi * i / 1440.0)) * (1 + ar(rng, MIN, 0.05, 30.0))


def plant(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(load, value): a load with a daily cycle and ±8 % wander over half an hour; the
    value follows it (elasticity 0.8) with its analyser's own 2 % wander over two hours,
    1 % noise and soot blowing (+60 % for 20 minutes) three times a day."""
    rng = np.random.default_rng(seed)
    i = np.arange(MIN)
    load = shared_load(rng)
    value = 3.2 * load**0.8 * (1 + ar(rng, MIN, 0.02, 120.0)) * (1 + rng.normal(0, 0.01, MIN))
    soot = ((i % 480) >= 200) & ((i % 480) < 220)
    value = value * np.where(soot, 1.6, 1.0)
    return load, value


def verdicts(
    values: np.ndarray,
    load: np.ndarray,
    det: SlowDrift | None = None,
    flag: np.ndarray | None = None,
    peers: np.ndarray | None = None,
) -> np.ndarray:
    """hit[minute, series] for ``values[minute, series]`` against ``load[minute, series]``
    (``flag[minute, series]``: the readings' flags, N where not given; ``peers`` as the
    engine gives them, the same every minute)."""
    det = det or SlowDrift()
    n = values.shape[1]
    state = det.new_state(n)
    out = np.zeros(values.shape, dtype=bool)
    rows = np.arange(n)
    for k in range(values.shape[0]):
        f = np.full(n, FLAG_N, dtype=np.uint8) if flag is None else flag[k]
        out[k] = det(minute(k, rows, values[k], load[k], f, peers), state).hit
    return out


def minute(
    k: int,
    rows: np.ndarray,
    x: np.ndarray,
    load: np.ndarray,
    flag: np.ndarray,
    peers: np.ndarray | None = None,
) -> Batch:
    """Minute ``k``'s readings of series ``rows`` (as the engine gives them)."""
    n = rows.shape[0]
    return Batch(
        rows,
        np.round(x, 2),
        np.full(n, T0 + 60.0 * k),
        flag,
        np.full(n, 10.0),
        np.full(n, 0.0),
        np.full(n, np.inf),
        np.full(n, 6.0),
        np.full(n, 60.0),
        np.zeros((n, 0)),
        np.zeros((n, 0), dtype=np.uint8),
        np.zeros((n, 0)),
        {"load": Partner(np.round(load, 3), np.zeros((n, 0)))},
        peers=peers,
    )


def fleet(seeds: range) -> tuple[np.ndarray, np.ndarray]:
    pairs = [plant(s) for s in seeds]
    return np.stack([p[0] for p in pairs], axis=1), np.stack([p[1] for p in pairs], axis=1)


def test_a_steady_creep_is_found_within_hours_and_not_before_it_starts() -> None:
    load, value = fleet(range(4))
    rate = np.array([0.01, 0.015, 0.02, 0.015])  # per hour
    hours = np.maximum(np.arange(MIN) - START, 0)[:, None] / 60.0
    hit = verdicts(value * (1 + rate * hours), load)
    assert not hit[:START].any()
    first = np.argmax(hit, axis=0)
    assert hit.any(axis=0).all(), "every creep is found"
    delay_h = (first - START) / 60.0
    # a day at most: no one hour may carry more than a fifth of the departure
    # (``max_step``), so a creep is only judged once it stands well clear of the
    # wander's own hourly moves (11–22 h here)
    assert (delay_h <= 24).all(), delay_h


def test_a_creep_downwards_is_found_too() -> None:
    load, value = fleet(range(4, 6))
    hours = np.maximum(np.arange(MIN) - START, 0)[:, None] / 60.0
    hit = verdicts(value / (1 + 0.02 * hours), load)
    assert not hit[:START].any()
    assert hit.any(axis=0).all()


def test_a_step_that_stays_is_not_a_drift() -> None:
    # a fuel change: +25 % (or −20 %) over 20 minutes, flat after
    load, value = fleet(range(6, 10))
    ramp = np.clip((np.arange(MIN) - START) / 20.0, 0, 1)[:, None]
    size = np.array([1.25, 0.8, 1.25, 0.8])
    hit = verdicts(value * (1 + (size - 1) * ramp), load)
    assert not hit.any(), np.argwhere(hit)[:3]


def test_the_analysers_own_wander_and_the_shared_load_raise_nothing() -> None:
    load, value = fleet(range(10, 18))
    assert not verdicts(value, load).any()


def test_the_load_is_what_its_partners_share() -> None:
    # the same creep found against the load, and a load ramp every channel shares
    # (the value following it) is not a drift
    load, value = fleet(range(18, 20))
    ramp = 1 + 0.02 * np.maximum(np.arange(MIN) - START, 0)[:, None] / 60.0
    assert not verdicts(value * ramp**0.8, load * ramp).any()


def test_memory_per_series_is_bounded_and_stated() -> None:
    det = SlowDrift()
    assert det.bytes_per_series == 717
    assert SlowDrift(hours=72).bytes_per_series == 717 + 24 * 12


def test_a_departure_a_third_of_which_came_in_one_hour_is_not_a_creep() -> None:
    # a steady creep of 1.5 %/h whose departure is a third carried by one hour: a swing
    # of the analyser's own wander (or a small step) riding on it, not the even
    # hour-by-hour creep of a drifting analyser. Without the jump it is found.
    load, value = fleet(range(20, 24))
    minute = np.arange(MIN)
    hours = np.maximum(minute - START, 0)[:, None] / 60.0
    creep = 1 + 0.015 * hours
    # +10 % over one hour, six hours into the creep (its departure then about 19 %)
    jump = 1 + 0.1 * np.clip((minute - START - 6 * 60) / 60.0, 0, 1)[:, None]
    assert verdicts(value * creep, load).any(axis=0).all()
    hit = verdicts(value * creep * jump, load)
    # judged from the close of the jump's hour on, while it still carries more than a
    # fifth of the departure (the next 6 hours: the departure grows to about 28 %)
    k = START + 7 * 60 + 1
    assert not hit[k : k + 6 * 60].any(), np.argwhere(hit[k : k + 6 * 60])[:3]


def test_a_slow_creep_is_measured_from_before_it_began() -> None:
    # 0.6 %/h from a day in, for two days: the newer reference hours creep with it (their
    # median and spread follow it, and it hid behind itself); measured from the oldest
    # 24 reference hours it stands out
    load, value = fleet([40, 43, 49, 50])
    start = 24 * 60
    hours = np.maximum(np.arange(MIN) - start, 0)[:, None] / 60.0
    hit = verdicts(value * (1 + 0.006 * hours), load)
    assert not hit[:start].any()
    assert hit.any(axis=0).all()
    assert not verdicts(value * (1 + 0.006 * hours), load, SlowDrift(ref_hours=40)).any()


def test_a_step_taken_while_the_plant_was_stopped_is_still_a_step() -> None:
    # a night stop of 5 hours (readings flagged F, no hour judged) across which the
    # level comes back 30 % higher (or lower) and stays: the move across the gap is a
    # step, though no one judged hour shows it
    load, value = fleet(range(24, 32))
    minute = np.arange(MIN)
    stop = (minute >= START) & (minute < START + 5 * 60)
    size = np.array([1.3, 0.7, 1.3, 0.7, 1.3, 0.7, 1.3, 0.7])
    after = (minute >= START + 5 * 60)[:, None]
    flag = np.where(stop[:, None], ord("F"), FLAG_N).astype(np.uint8)
    flag = np.broadcast_to(flag, value.shape)
    hit = verdicts(value * np.where(after, size, 1.0), load, flag=flag)
    assert not hit.any(), np.argwhere(hit)[:3]


def _packaged(device_type: str, pollutant: str) -> SlowDrift:
    info = SeriesInfo("MN", pollutant, "min", device_type, "E", "P", True)
    (det,) = [b.detector for b in load_rules(None).resolve(info) if b.name.startswith("slow_drift")]
    assert isinstance(det, SlowDrift)
    return det


def test_a_treated_water_outlet_wants_more_evidence_than_a_stack() -> None:
    # its quality lags the inflow by hours, as its partners do, and the residual against
    # them swings far more than a stack's against its flow: the packaged
    # slow_drift_water judges at 8 robust sds where slow_drift judges at 6, so the same
    # creep is found later there
    water, stack = _packaged("wastewater", "w21003"), _packaged("flue_gas", "a21026")
    assert (water.z, stack.z) == (8.0, 6.0)
    load, value = fleet(range(32, 36))
    hours = np.maximum(np.arange(MIN) - START, 0)[:, None] / 60.0
    crept = value * (1 + 0.015 * hours)
    at_stack, at_outlet = verdicts(crept, load, stack), verdicts(crept, load, water)
    assert at_stack.any(axis=0).all()
    first_stack = np.argmax(at_stack, axis=0)
    first_outlet = np.where(at_outlet.any(axis=0), np.argmax(at_outlet, axis=0), MIN)
    assert (first_outlet >= first_stack).all()
    assert (first_outlet > first_stack).any(), (first_stack, first_outlet)


def test_a_departure_a_peer_explains_is_the_peers_and_a_pair_cannot_tell() -> None:
    # series 0 creeps 2 %/h; series 1 follows the load and is judged against a load
    # half of which is series 0 (its other partner, the flow, is not judged by the
    # rule: -2), so it seems to fall by about 1 %/h
    rng = np.random.default_rng(22)
    i = np.arange(MIN)
    load = shared_load(rng)
    creep = 1 + 0.02 * np.maximum(i - START, 0) / 60.0
    noise = 1 + rng.normal(0, 0.005, (MIN, 2))
    values = np.stack([3.0 * load * creep, 5.0 * load], axis=1) * noise
    loads = np.stack([load, load * np.sqrt(creep)], axis=1)
    alone = verdicts(values, loads)
    assert alone.any(axis=0).all(), "without peers both are raised"
    with_peers = verdicts(values, loads, peers=np.array([[1, -2, -1], [0, -2, -1]]))
    assert (with_peers[:, 0] == alone[:, 0]).all() and not with_peers[:, 1].any()
    # of a pair (one partner each), either may have moved: both stay raised
    pair = verdicts(values, loads, peers=np.array([[1, -1, -1], [0, -1, -1]]))
    assert (pair == alone).all()


def test_a_peer_gone_silent_explains_nothing() -> None:
    # the same two series; the one that crept falls silent an hour after it is found,
    # and its last departure must not hold back the other's own creep for ever after
    rng = np.random.default_rng(23)
    i = np.arange(MIN)
    load = shared_load(rng)
    up = 1 + 0.02 * np.maximum(i - 36 * 60, 0) / 60.0  # series 0 creeps up from 36 h
    down = 1 / (1 + 0.02 * np.maximum(i - 55 * 60, 0) / 60.0)  # series 1 down from 55 h
    noise = 1 + rng.normal(0, 0.005, (MIN, 2))
    values = np.stack([3.0 * load * up, 5.0 * load * down], axis=1) * noise
    loads = np.stack([load, load * np.sqrt(np.minimum(up, up[50 * 60]))], axis=1)
    flag = np.full((MIN, 2), FLAG_N, dtype=np.uint8)
    values[50 * 60 :, 0] = np.nan  # silent: the detector sees it no more

    def run(peers: np.ndarray | None) -> tuple[np.ndarray, float]:
        det = SlowDrift()
        state = det.new_state(2)
        hit1 = np.zeros(MIN, dtype=bool)
        for k in range(MIN):
            rows = np.array([0, 1]) if k < 50 * 60 else np.array([1])
            mine = None if peers is None else peers[rows]
            b = minute(k, rows, values[k, rows], loads[k, rows], flag[k, rows], mine)
            hit1[k] = det(b, state).hit[-1]
        return hit1, float(state["rise"][0])

    alone, _ = run(None)
    hit1, left = run(np.array([[1, -2, -1], [0, -2, -1]]))
    assert left > 0.1, "series 0 was found, and left its departure behind"
    assert alone[55 * 60 :].any(), "series 1's own creep is found"
    assert (hit1[55 * 60 :] == alone[55 * 60 :]).all(), "and raised as without peers"


def test_only_a_peer_that_departed_beyond_z_itself_explains() -> None:
    # a noisy (lagged) peer swings far in log terms but not against its own spread
    # (half ``z``: a creep's own score sinks as it creeps into its reference hours)
    det = SlowDrift()
    state = det.new_state(2)
    state["hour"][:] = 500
    state["rise"][:] = [0.10, -0.30]  # series 0 up 10 %; its peer down 30 %
    rows, peers = np.array([0]), np.array([[1, -2, -1]])
    state["verdict"][:] = [8.0, -2.5]  # the peer's swing is 2.5 of its own sds
    assert not det._a_peers(state, rows, peers)[0]
    state["verdict"][1] = -9.0  # beyond z: that peer moved, series 0 is dragged
    assert det._a_peers(state, rows, peers)[0]
    state["hour"][1] = 498  # ... but not if it was judged hours ago
    assert not det._a_peers(state, rows, peers)[0]
