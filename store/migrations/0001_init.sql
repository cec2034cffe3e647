-- Registry: enterprises → monitoring points → devices, with permit limits per point.
CREATE TABLE enterprises (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    region      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE points (
    id             text PRIMARY KEY,
    enterprise_id  text NOT NULL REFERENCES enterprises (id),
    name           text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('flue_gas', 'wastewater')),
    o2_ref         double precision CHECK (o2_ref >= 0 AND o2_ref < 21)
);
CREATE INDEX points_enterprise ON points (enterprise_id);

CREATE TABLE point_limits (
    point_id     text NOT NULL REFERENCES points (id) ON DELETE CASCADE,
    pollutant    text NOT NULL,
    limit_value  double precision NOT NULL CHECK (limit_value > 0),
    PRIMARY KEY (point_id, pollutant)
);

CREATE TABLE devices (
    mn             text PRIMARY KEY,
    point_id       text NOT NULL REFERENCES points (id),
    interval_s     double precision NOT NULL CHECK (interval_s > 0),
    active         boolean NOT NULL DEFAULT true,
    registered_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_point ON devices (point_id);

-- Last reading per device, upserted in the same transaction as the readings, so the
-- device list and the offline rule never scan the readings table.
CREATE TABLE device_status (
    mn                text PRIMARY KEY REFERENCES devices (mn) ON DELETE CASCADE,
    last_ts           timestamptz NOT NULL,
    last_received_at  timestamptz NOT NULL,
    readings          bigint NOT NULL DEFAULT 0
);

-- Narrow readings. The primary key makes redelivery harmless (INSERT … ON CONFLICT DO
-- NOTHING) and serves the typical query: one device's pollutant over a time range.
-- kind: rtd (real-time), min / hour / day (HJ 212 CN 2051 / 2061 / 2031 averages).
CREATE TABLE readings (
    ts           timestamptz NOT NULL,
    mn           text NOT NULL,
    pollutant    text NOT NULL,
    kind         text NOT NULL DEFAULT 'rtd',
    value        double precision NOT NULL,
    flag         text NOT NULL DEFAULT 'N' CHECK (length(flag) = 1),
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (mn, pollutant, kind, ts)
);

-- Everything that was not stored as readings, with the raw bytes as evidence.
CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL,
    mn           text,
    reason       text NOT NULL,
    detail       text NOT NULL,
    payload      bytea NOT NULL
);
CREATE INDEX dead_letters_received ON dead_letters (received_at DESC);
CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at DESC);

-- Alerts: one active (open or acknowledged) alert per (rule, device, pollutant).
CREATE TABLE alerts (
    id               bigserial PRIMARY KEY,
    rule             text NOT NULL,
    mn               text NOT NULL REFERENCES devices (mn),
    pollutant        text NOT NULL DEFAULT '',
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'major', 'critical')),
    state            text NOT NULL DEFAULT 'open'
                     CHECK (state IN ('open', 'acknowledged', 'resolved', 'cleared')),
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL,
    count            integer NOT NULL DEFAULT 1,
    worst_value      double precision,
    limit_value      double precision,
    message          text NOT NULL,
    detail           jsonb NOT NULL DEFAULT '{}',
    opened_at        timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_by  text,
    acknowledged_at  timestamptz,
    closed_by        text,
    closed_at        timestamptz,
    close_note       text
);
CREATE UNIQUE INDEX alerts_one_active ON alerts (rule, mn, pollutant)
    WHERE state IN ('open', 'acknowledged');
CREATE INDEX alerts_state_seen ON alerts (state, last_seen DESC);
CREATE INDEX alerts_device ON alerts (mn, last_seen DESC);

-- Every change to an alert, in order: the SSE feed replays from here (Last-Event-ID).
CREATE TABLE alert_events (
    id        bigserial PRIMARY KEY,
    alert_id  bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL DEFAULT now(),
    kind      text NOT NULL CHECK (kind IN ('opened', 'updated', 'acknowledged', 'resolved',
                                            'cleared')),
    actor     text,
    note      text
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, id);

-- Visits logged by scanning an enterprise's signed QR code.
CREATE TABLE visits (
    id              bigserial PRIMARY KEY,
    enterprise_id   text NOT NULL REFERENCES enterprises (id),
    inspector_id    text NOT NULL,
    purpose         text NOT NULL,
    alert_id        bigint REFERENCES alerts (id),
    token_kid       text NOT NULL,
    checked_in_at   timestamptz NOT NULL DEFAULT now(),
    checked_out_at  timestamptz,
    findings        text,
    CHECK (checked_out_at IS NULL OR checked_out_at >= checked_in_at)
);
CREATE INDEX visits_enterprise ON visits (enterprise_id, checked_in_at DESC);
CREATE INDEX visits_inspector ON visits (inspector_id, checked_in_at DESC);
