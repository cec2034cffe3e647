-- Alert lifecycle: assignment, reopening, comments, muting, and the evidence an alert
-- carries (in detail: the trigger's window of values and the rule with its parameters).
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_state_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_state_check
    CHECK (state IN ('open', 'acknowledged', 'assigned', 'resolved', 'cleared'));
ALTER TABLE alerts
    ADD COLUMN assignee     text,
    ADD COLUMN assigned_by  text,
    ADD COLUMN assigned_at  timestamptz,
    ADD COLUMN reopened     integer NOT NULL DEFAULT 0,
    -- why the alert is muted (maintenance flags, a declared silence); NULL: it is not
    ADD COLUMN suppressed   text;

DROP INDEX alerts_one_active;
CREATE UNIQUE INDEX alerts_one_active ON alerts (rule, mn, pollutant)
    WHERE state IN ('open', 'acknowledged', 'assigned');
-- the newest alert of a key: what a returning condition reopens
CREATE INDEX alerts_key_newest ON alerts (rule, mn, pollutant, id DESC);

ALTER TABLE alert_events DROP CONSTRAINT IF EXISTS alert_events_kind_check;
ALTER TABLE alert_events ADD CONSTRAINT alert_events_kind_check
    CHECK (kind IN ('opened', 'updated', 'acknowledged', 'assigned', 'resolved', 'cleared',
                    'reopened', 'commented'));
