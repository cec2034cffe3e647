"""Store's error tree (drawn in ``store/__init__.py``)."""


class StoreError(Exception):
    """Root of the store's errors."""


class MigrationError(StoreError):
    """A migration failed; its transaction was rolled back."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or went away mid-transaction."""
