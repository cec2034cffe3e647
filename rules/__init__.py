"""Rules: pure numpy detectors over many series at once, and the alert lifecycle.

Data flow::

    readings (already committed, new to the store)
        → windows.py   per-series ring buffers, one row per (device, pollutant, kind)
        → partners.py  each series' partner channels (O2, flow, the load of its context)
        → detectors.py vectorised checks on a round of values against their windows
        → engine.py    findings (and offline findings on a timer, clock passed in)
        → alerts.py    lifecycle: which alerts to open, update or clear (pure)
        → store.alerts persists, and NOTIFY tells the API's live feed

The closed loop's decisions live here too, pure and clock-free: cases.py (the case
lifecycle and when an unanswered case escalates), visit_guard.py (the frequency guard).

Error tree::

    RuleError
     └── InvalidTransition   an alert or case action not allowed from its current state
"""
