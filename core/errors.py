"""The kernel's error tree (drawn in ``core/__init__.py``)."""


class OffsiteError(Exception):
    """Root of every error Offsite raises on purpose."""


class SettingsError(OffsiteError):
    """The OFFSITE_* environment does not describe a runnable configuration."""


class RegistryError(OffsiteError):
    """A registry of enterprises, points and devices is malformed or inconsistent."""


class EmbeddedError(OffsiteError):
    """An embedded service could not be started or stopped."""
