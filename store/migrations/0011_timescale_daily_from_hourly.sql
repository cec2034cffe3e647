-- TimescaleDB: the daily rollup becomes a continuous aggregate of the hourly one (a
-- hierarchical continuous aggregate, TimescaleDB ≥ 2.9), as on plain PostgreSQL where it
-- is a view summing the hourly rows (0010). Refreshing a day then reads 24 hourly rows
-- per series instead of 1,440 raw ones, and the two rollups can never disagree.
-- Plain PostgreSQL skips the block.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM remove_continuous_aggregate_policy('readings_daily', if_not_exists => true);
        DROP MATERIALIZED VIEW readings_daily;
        -- WITH NO DATA: materialising cannot run inside the migration's transaction; until
        -- the policy first runs, real-time aggregation answers from the hourly rollup.
        EXECUTE $v$
            CREATE MATERIALIZED VIEW readings_daily WITH (timescaledb.continuous) AS
            SELECT mn, pollutant, kind, time_bucket(INTERVAL '1 day', bucket) AS bucket,
                   sum(n)::bigint AS n, sum(total) AS total, min(min_value) AS min_value,
                   max(max_value) AS max_value, sum(n_valid)::bigint AS n_valid,
                   sum(total_valid) AS total_valid
            FROM readings_hourly
            GROUP BY mn, pollutant, kind, time_bucket(INTERVAL '1 day', bucket)
            WITH NO DATA $v$;
        ALTER MATERIALIZED VIEW readings_daily SET (timescaledb.materialized_only = false);
        -- Same window as the hourly policy (backfills up to OFFSITE_MAX_AGE_DAYS reach it),
        -- scheduled after it so a day sums hours already materialised.
        PERFORM add_continuous_aggregate_policy('readings_daily',
            start_offset => INTERVAL '35 days', end_offset => INTERVAL '1 day',
            schedule_interval => INTERVAL '1 hour', if_not_exists => true);
    END IF;
END
$$;
