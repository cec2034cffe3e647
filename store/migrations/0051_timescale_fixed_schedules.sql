-- TimescaleDB: the policies run on fixed schedules (slots counted from an initial start)
-- instead of drifting ones. After a failed run, a drifting job waits retry_period ×
-- consecutive failures (up to 5 × its interval) before trying again; a fixed one is never
-- later than its next slot. That matters where the scheduler reports every run failed
-- although its work committed (TimescaleDB 2.28.3 on PostgreSQL 15.20, see docs/deploy.md
-- "TimescaleDB background jobs"): the hourly rollup was refreshed every 75 minutes instead
-- of 15, the daily one every 5 hours. The slots are staggered in UTC: hourly refresh at
-- :02, :17, :32, :47; daily refresh at :07 of every hour (after the hourly one); compression
-- at 00:35 and 12:35; retention at 01:05 (store/partitions.py adds it the same way).
-- Plain PostgreSQL skips the block.
DO $$
DECLARE
    j record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        FOR j IN
            SELECT job_id,
                   CASE
                       WHEN proc_name = 'policy_retention' THEN '2000-01-01 01:05:00+00'
                       WHEN proc_name = 'policy_compression' THEN '2000-01-01 00:35:00+00'
                       WHEN hypertable_name = 'readings_daily' THEN '2000-01-01 00:07:00+00'
                       ELSE '2000-01-01 00:02:00+00'
                   END::timestamptz AS slot
            FROM timescaledb_information.jobs
            WHERE proc_schema = '_timescaledb_functions'
              AND (proc_name IN ('policy_retention', 'policy_compression')
                       AND hypertable_name = 'readings'
                   OR proc_name = 'policy_refresh_continuous_aggregate'
                       AND hypertable_name IN ('readings_hourly', 'readings_daily'))
        LOOP
            PERFORM alter_job(j.job_id, fixed_schedule => true, initial_start => j.slot);
        END LOOP;
    END IF;
END
$$;
