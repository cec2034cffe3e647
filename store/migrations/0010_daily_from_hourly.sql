-- Plain PostgreSQL: the daily rollup becomes a view over the hourly one.
--
-- Keeping both tables in step cost ingest a second upsert per batch, one row per series
-- and day: measured on 20,000-reading batches of 1,000 devices, storing with both
-- rollups ran at 42-46k rows/s and with the hourly alone at 50-62k. A day is 24 hourly
-- rows, so summing them when read costs the reader little (a month of one series is
-- 720 rows) and the daily figures can never disagree with the hourly ones.
-- TimescaleDB keeps its continuous aggregate (0005): nothing changes there.
DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('readings_daily')) = 'r' THEN
        DROP TABLE readings_daily;
        CREATE VIEW readings_daily AS
        SELECT mn, pollutant, kind,
               date_bin('1 day', bucket, timestamptz '1970-01-01') AS bucket,
               sum(n)::bigint AS n, sum(total) AS total, min(min_value) AS min_value,
               max(max_value) AS max_value, sum(n_valid)::bigint AS n_valid,
               sum(total_valid) AS total_valid
        FROM readings_hourly
        GROUP BY mn, pollutant, kind, date_bin('1 day', bucket, timestamptz '1970-01-01');
    END IF;
END
$$;
