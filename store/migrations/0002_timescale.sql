-- TimescaleDB, only where the extension can be loaded (docker-compose runs the real
-- image). Plain PostgreSQL skips the block and keeps an ordinary indexed table.
-- One-day chunks: at 1-minute data, 1,000 devices × 8 pollutants is ~11.5M rows a day,
-- a chunk whose indexes stay in memory on a modest server.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND current_setting('shared_preload_libraries', true) LIKE '%timescaledb%' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day',
                                  migrate_data => true, if_not_exists => true);
    END IF;
END
$$;
