"""``offsite eval``: how well the rules catch injected faults, measured.

simulators.evalsuite (fleets + ground truth) → runner.run_engine (the one place
that calls the rule engine) → scoring (pure) → report (text / JSON) ← command
"""
