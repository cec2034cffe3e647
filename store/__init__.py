"""Store: PostgreSQL / TimescaleDB schema, pool, and one writer module per table.

Error tree::

    StoreError
     ├── MigrationError     a schema migration failed (the transaction was rolled back)
     ├── StoreUnavailable   the database cannot be reached (retry later)
     ├── AuditError         an audit entry's data is not JSON (store/audit.py)
     └── UserError          a user cannot be created as asked (store/users.py)
"""
