-- Storage for years of minute data, on either backend, with the same tables for readers:
--   readings          raw values; plain PostgreSQL: range-partitioned by month on ts, with a
--                     DEFAULT partition so a reading whose month has no partition yet is
--                     stored anyway (store/partitions.py creates months ahead and moves such
--                     rows out); TimescaleDB: the hypertable of 0002 (1-day chunks).
--   readings_hourly   per (mn, pollutant, kind, hour):  n, total, min_value, max_value,
--   readings_daily    per (mn, pollutant, kind, UTC day) n_valid, total_valid (flag N only)
--                     plain PostgreSQL: tables kept in step with every insert, in the same
--                     transaction, from the rows new to the store (store/rollups.py);
--                     TimescaleDB: continuous aggregates with the same columns.
-- Retention is applied by `offsite db maintain` (OFFSITE_RETENTION_DAYS): dropping whole
-- monthly partitions here, add_retention_policy on TimescaleDB.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        -- The existing table becomes the DEFAULT partition as it is (no copy, its primary
        -- key index is reused); `offsite db maintain` later moves its rows into months.
        ALTER TABLE readings RENAME TO readings_default;
        ALTER INDEX readings_pkey RENAME TO readings_default_pkey;
        CREATE TABLE readings (LIKE readings_default INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
            PARTITION BY RANGE (ts);
        ALTER TABLE readings ADD PRIMARY KEY (mn, pollutant, kind, ts);
        ALTER TABLE readings ATTACH PARTITION readings_default DEFAULT;

        CREATE TABLE readings_hourly (
            mn           text NOT NULL,
            pollutant    text NOT NULL,
            kind         text NOT NULL,
            bucket       timestamptz NOT NULL,
            n            bigint NOT NULL,
            total        double precision NOT NULL,
            min_value    double precision NOT NULL,
            max_value    double precision NOT NULL,
            n_valid      bigint NOT NULL,
            total_valid  double precision NOT NULL,
            PRIMARY KEY (mn, pollutant, kind, bucket)
        ) WITH (fillfactor = 70);  -- room on the page: each batch updates rows in place (HOT)
        CREATE TABLE readings_daily (LIKE readings_hourly INCLUDING ALL)
            WITH (fillfactor = 70);

        INSERT INTO readings_hourly
        SELECT mn, pollutant, kind, date_bin('1 hour', ts, timestamptz '1970-01-01'),
               count(*), sum(value), min(value), max(value),
               count(*) FILTER (WHERE flag = 'N'),
               coalesce(sum(value) FILTER (WHERE flag = 'N'), 0)
        FROM readings GROUP BY 1, 2, 3, 4;
        INSERT INTO readings_daily
        SELECT mn, pollutant, kind, date_bin('1 day', bucket, timestamptz '1970-01-01'),
               sum(n), sum(total), min(min_value), max(max_value), sum(n_valid),
               sum(total_valid)
        FROM readings_hourly GROUP BY 1, 2, 3, 4;
    END IF;
END
$$;

-- TimescaleDB: never run on the machines this was written on (the extension cannot be
-- installed there); written against the TimescaleDB 2.x documentation, see README
-- "Storage". Guarded like 0002, so plain PostgreSQL skips it.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        -- Compression: one segment per series keeps "one device's pollutant over a range"
        -- cheap on compressed chunks; ordering by kind, ts covers the primary key, so
        -- ON CONFLICT DO NOTHING still finds redeliveries (TimescaleDB ≥ 2.11). Chunks are
        -- compressed after 7 days: backfills older than that still work, only slower.
        ALTER TABLE readings SET (timescaledb.compress,
                                  timescaledb.compress_segmentby = 'mn, pollutant',
                                  timescaledb.compress_orderby = 'kind, ts DESC');
        PERFORM add_compression_policy('readings', compress_after => INTERVAL '7 days',
                                       if_not_exists => true);

        EXECUTE $v$
            CREATE MATERIALIZED VIEW readings_hourly WITH (timescaledb.continuous) AS
            SELECT mn, pollutant, kind, time_bucket(INTERVAL '1 hour', ts) AS bucket,
                   count(*) AS n, sum(value) AS total, min(value) AS min_value,
                   max(value) AS max_value, count(*) FILTER (WHERE flag = 'N') AS n_valid,
                   coalesce(sum(value) FILTER (WHERE flag = 'N'), 0) AS total_valid
            FROM readings GROUP BY mn, pollutant, kind, bucket WITH NO DATA $v$;
        EXECUTE $v$
            CREATE MATERIALIZED VIEW readings_daily WITH (timescaledb.continuous) AS
            SELECT mn, pollutant, kind, time_bucket(INTERVAL '1 day', ts) AS bucket,
                   count(*) AS n, sum(value) AS total, min(value) AS min_value,
                   max(value) AS max_value, count(*) FILTER (WHERE flag = 'N') AS n_valid,
                   coalesce(sum(value) FILTER (WHERE flag = 'N'), 0) AS total_valid
            FROM readings GROUP BY mn, pollutant, kind, bucket WITH NO DATA $v$;
        -- Real-time aggregation (off by default since 2.13): recent, not yet materialised
        -- buckets are computed from raw rows, so readers get the same answers as here.
        ALTER MATERIALIZED VIEW readings_hourly SET (timescaledb.materialized_only = false);
        ALTER MATERIALIZED VIEW readings_daily SET (timescaledb.materialized_only = false);
        -- Refresh windows reach back further than ingest accepts backfills
        -- (OFFSITE_MAX_AGE_DAYS, 30 by default) and stop well short of retention (years),
        -- so dropping raw chunks never erases their aggregates.
        PERFORM add_continuous_aggregate_policy('readings_hourly',
            start_offset => INTERVAL '35 days', end_offset => INTERVAL '1 hour',
            schedule_interval => INTERVAL '15 minutes', if_not_exists => true);
        PERFORM add_continuous_aggregate_policy('readings_daily',
            start_offset => INTERVAL '35 days', end_offset => INTERVAL '1 day',
            schedule_interval => INTERVAL '1 hour', if_not_exists => true);
    END IF;
END
$$;
