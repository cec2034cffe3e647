"""The rule runner: takes what ingest committed to the rule queue, judges it once through
the rules engine and writes the alerts and the queue removal in one transaction.

``rule_runner.py`` is the loop (leader election by advisory lock, warm-up, slices);
``rule_process.py`` runs it in a process of its own beside an ingest worker.
"""
