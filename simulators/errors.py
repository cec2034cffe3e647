"""The simulators' error tree (drawn in ``simulators/__init__.py``)."""

from __future__ import annotations


class SimulatorError(Exception):
    """Root of every error the simulators raise on purpose.

    Kept apart from ``OffsiteError`` because the simulators stand in for the
    field devices: the platform must never depend on (or catch) their failures.
    """


class ScenarioError(SimulatorError):
    """A device, fault or fleet definition that cannot produce meaningful data."""


class PublishError(SimulatorError):
    """A message that cannot be encoded, a broker URL that cannot be used, or a
    broker that cannot be reached or did not acknowledge what we sent."""


class ReplayError(SimulatorError):
    """A recorded series (CSV) that cannot be replayed: the message names the line."""
