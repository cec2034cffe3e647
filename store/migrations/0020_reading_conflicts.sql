-- Rewritten history: a reading resent for a stored (device, pollutant, kind, time) with a
-- different value or flag. The first value received stays in ``readings`` (the record the
-- rules judged); every different version is kept here, with both values and both receive
-- times, as evidence — a logger "correcting" a past minute is what a regulator wants to
-- see. The rule runner raises a ``rewritten_history`` alert for each row (``alerted_at``
-- is set in the alert's transaction). An identical redelivery leaves nothing here, and
-- the same rewrite redelivered is kept once (the unique key).
CREATE TABLE reading_conflicts (
    id                  bigserial PRIMARY KEY,
    mn                  text NOT NULL,
    pollutant           text NOT NULL,
    kind                text NOT NULL,
    ts                  timestamptz NOT NULL,
    stored_value        double precision NOT NULL,
    stored_flag         text NOT NULL,
    stored_received_at  timestamptz NOT NULL,
    new_value           double precision NOT NULL,
    new_flag            text NOT NULL,
    new_received_at     timestamptz NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    alerted_at          timestamptz,
    UNIQUE (mn, pollutant, kind, ts, new_value, new_flag)
);
CREATE INDEX reading_conflicts_unalerted ON reading_conflicts (id) WHERE alerted_at IS NULL;
CREATE INDEX reading_conflicts_device ON reading_conflicts (mn, ts DESC);
