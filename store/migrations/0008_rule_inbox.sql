-- Readings new to the store, queued for the rule engine in the same transaction that
-- stores them: with several ingest workers on a shared subscription one device's
-- messages reach different workers, so one rule runner (the worker holding the rules
-- lock) judges them all, in order; and a crash between storing and judging loses
-- nothing, because the queue commits with the readings and is emptied with the alerts.
-- One row per committed batch, packed: the batch's distinct series as arrays, and per
-- reading little-endian arrays (float64 times and values, int32 series index), so
-- neither side builds a Python object per reading.
CREATE TABLE rule_inbox (
    id            bigserial PRIMARY KEY,
    queued_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    min_received  timestamptz NOT NULL,
    s_mn          text[] NOT NULL,        -- the batch's series …
    s_pollutant   text[] NOT NULL,
    s_kind        text[] NOT NULL,
    sidx          bytea NOT NULL,         -- int32 per reading: its series
    ts            bytea NOT NULL,         -- float64 per reading: device time, epoch s
    value         bytea NOT NULL,         -- float64 per reading
    received      bytea NOT NULL,         -- float64 per reading: when ingest received it
    flag          text NOT NULL,          -- one HJ 212 flag character per reading
    heard_mn      text[] NOT NULL,        -- devices heard in the batch (duplicates too) …
    heard_at      timestamptz[] NOT NULL  -- … and when: what the offline rule needs
);
CREATE INDEX rule_inbox_received ON rule_inbox (min_received);

-- Each worker's promise: everything it received before this instant is committed.
-- The runner judges only readings received before the smallest promise of the live
-- workers, so a worker that commits a little late cannot make another's later reading
-- of the same device be judged first.
ALTER TABLE ingest_workers ADD COLUMN committed_through timestamptz;
