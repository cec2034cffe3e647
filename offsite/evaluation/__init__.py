"""``offsite eval``: how well the rules catch injected faults, measured.

simulators.plantsuite (multi-day plant fleets + ground truth, tuning and held-out
splits) → runner.run_engine (the one place that calls the rule engine) → scoring
(pure) → report (text / JSON, splits side by side) ← command (worker processes)
"""
