-- How far each ingest disk spool (ingest/spool.py) has been drained into the store.
-- Written in the same transaction as the drained readings, so a kill -9 of ingest at
-- any point neither replays a drained message (a second dead letter) nor skips one.
-- One row per spool: the id is random per spool directory, so a wiped directory
-- starts afresh instead of inheriting an old position.
CREATE TABLE spool_marks (
    spool_id    text PRIMARY KEY,
    worker      text NOT NULL,
    segment     bigint NOT NULL,
    byte_offset bigint NOT NULL,
    drained_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
