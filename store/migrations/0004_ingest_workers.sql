-- A heartbeat per ingest worker, so /healthz (served by another process) can say whether
-- ingest is alive, connected to its broker, and how far behind it is.
CREATE TABLE ingest_workers (
    worker            text PRIMARY KEY,       -- stable: the MQTT client id or gateway name
    host              text NOT NULL,
    pid               integer NOT NULL,
    started_at        timestamptz NOT NULL,
    heartbeat_at      timestamptz NOT NULL,
    broker_connected  boolean,                -- NULL for a gateway-only worker
    gateway_connections integer,
    inbox             integer NOT NULL,       -- messages taken from the broker, not committed
    lag_s             double precision NOT NULL,  -- age of the oldest of them
    messages          bigint NOT NULL,
    readings_stored   bigint NOT NULL,
    dead_letters      bigint NOT NULL,
    db_errors         bigint NOT NULL,
    last_commit_at    timestamptz
);
