"""The kernel's error tree (drawn in ``core/__init__.py``)."""


class OffsiteError(Exception):
    """Root of every error Offsite raises on purpose."""


class SettingsError(OffsiteError):
    """The OFFSITE_* environment does not describe a runnable configuration."""


class RegistryError(OffsiteError):
    """A registry of enterprises, points and devices is malformed or inconsistent."""


class EmbeddedError(OffsiteError):
    """An embedded service could not be started or stopped."""


class RetryError(OffsiteError):
    """A retried call did not succeed (``core.retry``); the last failure is the cause."""


class RetryExhausted(RetryError):
    """The attempts or the deadline ran out while the failure persisted."""


class RetryStopped(RetryError):
    """A stop was requested while waiting to try again."""
