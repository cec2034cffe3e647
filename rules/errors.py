"""Rules' error tree (drawn in ``rules/__init__.py``)."""


class RuleError(Exception):
    """Root of the rules package's errors."""


class InvalidTransition(RuleError):
    """An alert or a case cannot move from its current state to the one asked for."""


class RulesFileError(RuleError):
    """A rules file that cannot be used; the message names the file, line and reason."""
