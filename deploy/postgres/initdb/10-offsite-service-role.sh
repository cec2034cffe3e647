#!/bin/sh
# The login role the Offsite services use (docker-compose.yml mounts this folder on the
# db container's /docker-entrypoint-initdb.d: it runs once, when the db-data volume is
# first initialised).
#
# offsite_service is a member of offsite_app, the role migration 0007 grants what the
# services need: reading and writing rows, appending (never rewriting) the audit log, no
# schema changes. The owner `offsite` (POSTGRES_USER) runs `offsite db migrate` and
# `offsite db maintain` (the migrate and maintain jobs). Migration 0007 creates
# offsite_app only if it is missing, so creating it here first is harmless.
#
# A volume initialised before this script existed: create the role by hand once,
#   docker compose --env-file deploy/.env exec db psql -U offsite -d offsite \
#     -c "CREATE ROLE offsite_service LOGIN PASSWORD '<OFFSITE_APP_DB_PASSWORD>' IN ROLE offsite_app"
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v app_password="$APP_DB_PASSWORD" <<'SQL'
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'offsite_app') THEN
        CREATE ROLE offsite_app NOLOGIN;
    END IF;
END $$;
CREATE ROLE offsite_service LOGIN PASSWORD :'app_password' IN ROLE offsite_app;
SQL
