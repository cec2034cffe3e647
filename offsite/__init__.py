"""Offsite: off-site inspection of emission-monitoring devices.

One import package. The folders of the source tree map into it (see ``pyproject.toml``),
floors from the bottom up: ``offsite.core`` (kernel) → ``offsite.rules`` (pure) →
``offsite.store`` → ``offsite.runner`` / ``offsite.ingest`` → ``offsite.api`` →
``offsite.simulators`` → the shell (``offsite.cli``, demo, soak, evaluation, bench).
The error tree of the kernel is drawn in ``offsite/core/__init__.py``.
"""

from importlib import metadata

__version__ = metadata.version("offsite")  # one source: pyproject.toml
