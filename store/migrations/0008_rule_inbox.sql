-- Readings new to the store, queued for the rule engine in the same transaction that
-- stores them: with several ingest workers on a shared subscription one device's
-- messages reach different workers, so one rule runner (the worker holding the rules
-- lock) judges them all, in order; and a crash between storing and judging loses
-- nothing, because the queue commits with the readings and is emptied with the alerts.
CREATE TABLE rule_inbox (
    id            bigserial PRIMARY KEY,
    queued_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    min_received  timestamptz NOT NULL,
    ts            timestamptz[] NOT NULL,
    mn            text[] NOT NULL,
    pollutant     text[] NOT NULL,
    kind          text[] NOT NULL,
    value         double precision[] NOT NULL,
    flag          text NOT NULL,           -- one HJ 212 flag character per reading
    received      timestamptz[] NOT NULL,  -- when ingest received each reading
    heard_mn      text[] NOT NULL,         -- devices heard in the batch (duplicates too) …
    heard_at      timestamptz[] NOT NULL   -- … and when: what the offline rule needs
);
CREATE INDEX rule_inbox_received ON rule_inbox (min_received);

-- Each worker's promise: everything it received before this instant is committed.
-- The runner judges only readings received before the smallest promise of the live
-- workers, so a worker that commits a little late cannot make another's later reading
-- of the same device be judged first.
ALTER TABLE ingest_workers ADD COLUMN committed_through timestamptz;
