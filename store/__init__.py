"""Store: PostgreSQL / TimescaleDB schema, pool, and one writer module per table.

Every INSERT, UPDATE, DELETE or COPY of a table lives in its owner module (the list is
``OWNERS`` in tests/unit/test_table_writers.py, which fails on a second writer): the
engine's alert writes and people's alert actions are both in alerts.py; cases and their
steps, responses and attachments in cases.py; the console's notifications and the
webhook outbox in notices.py. ``errors.unavailable`` tells a transient database error
(retry, with ``errors.DB_BACKOFF`` and ``offsite.core.retry``) from a refusal of the data.

Error tree::

    StoreError
     ├── MigrationError     a schema migration failed (the transaction was rolled back)
     ├── StoreUnavailable   the database cannot be reached (retry later)
     ├── AuditError         an audit entry's data is not JSON (store/audit.py)
     └── UserError          a user cannot be created as asked (store/users.py)
"""
