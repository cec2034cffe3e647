-- The rule runner each worker supervises, beside that worker's heartbeat: /healthz
-- shows a runner that died (and how: exit status or signal) and how often it was
-- restarted. NULL for a worker without a runner of its own (OFFSITE_RULES_RUNNER=external).
ALTER TABLE ingest_workers
    ADD COLUMN rules_runner text,            -- 'running', 'restarting' or 'stopped'
    ADD COLUMN rules_restarts integer,
    ADD COLUMN rules_last_exit text;
