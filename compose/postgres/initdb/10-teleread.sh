#!/bin/bash
# teleread's own PostgreSQL role and database, for the scale profile's replicas
# (TELEREAD_DATABASE_URL=postgresql://teleread:<TELEREAD_DB_PASSWORD>@postgres:5432/teleread).
#
# The postgres image runs this once, from /docker-entrypoint-initdb.d, when the postgres-data
# volume is first initialised (as POSTGRES_USER, the "orthanc" superuser, on the local socket).
# On a volume initialised before, run it by hand:
#
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/10-teleread.sh
#
# The role owns its database and nothing else (no superuser; Orthanc's index belongs to the
# "orthanc" role). TELEREAD_DB_PASSWORD empty: nothing is created (teleread keeps its SQLite
# file). Run again, it creates nothing twice.
# Written to work when sourced as well as when run (the image sources a file that is not
# executable): no exit, no shell options changed.

if [ -z "${TELEREAD_DB_PASSWORD:-}" ]; then
    echo "10-teleread.sh: TELEREAD_DB_PASSWORD is empty: no database for teleread"
else
    # The password goes in as a psql variable (:'password' quotes it as a literal).
    psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-orthanc}" --dbname "${POSTGRES_DB:-orthanc}" \
        --set=password="$TELEREAD_DB_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE teleread LOGIN PASSWORD ' || quote_literal(:'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'teleread') \gexec
SELECT 'CREATE DATABASE teleread OWNER teleread'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'teleread') \gexec
REVOKE ALL ON DATABASE teleread FROM PUBLIC;
SQL
fi
