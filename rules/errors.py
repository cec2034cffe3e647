"""Rules' error tree (drawn in ``rules/__init__.py``)."""


class RuleError(Exception):
    """Root of the rules package's errors."""


class InvalidTransition(RuleError):
    """An alert cannot move from its current state to the one asked for."""
