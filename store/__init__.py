"""Store: PostgreSQL / TimescaleDB schema, pool, and one writer module per table.

Error tree::

    StoreError
     ├── MigrationError     a schema migration failed (the transaction was rolled back)
     └── StoreUnavailable   the database cannot be reached (retry later)
"""
