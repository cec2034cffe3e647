-- Alert episodes in device time (issue 17: `offsite alerts export`).
-- An alert row is reused when its condition returns (reopened), so its first_seen and
-- last_seen span every episode. Each lifecycle event now keeps what the alert looked
-- like in device time when it happened: the episode's start on 'opened'/'reopened',
-- its end (the last reading that showed the condition) on 'cleared'/'resolved', and the
-- severity and suppression at that moment. The engine passes the start of a reopened
-- episode (the row cannot know it); everything else is filled in by the trigger, so
-- every writer of alert_events (the API's lifecycle included) records it unchanged.
ALTER TABLE alert_events
    ADD COLUMN device_at  timestamptz,
    ADD COLUMN severity   text,
    ADD COLUMN suppressed text;

CREATE FUNCTION alert_events_device_time() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    a alerts%ROWTYPE;
BEGIN
    SELECT * INTO a FROM alerts WHERE id = NEW.alert_id;
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;
    IF NEW.device_at IS NULL THEN
        NEW.device_at := CASE
            WHEN NEW.kind = 'opened' THEN a.first_seen
            WHEN NEW.kind IN ('cleared', 'resolved', 'updated') THEN a.last_seen
        END;
    END IF;
    NEW.severity := coalesce(NEW.severity, a.severity);
    NEW.suppressed := coalesce(NEW.suppressed, a.suppressed);
    RETURN NEW;
END;
$$;

CREATE TRIGGER alert_events_device_time BEFORE INSERT ON alert_events
    FOR EACH ROW EXECUTE FUNCTION alert_events_device_time();

-- the export walks events alert by alert over a device-time range
CREATE INDEX alerts_last_seen ON alerts (last_seen);
