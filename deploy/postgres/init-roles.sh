#!/bin/sh
# compose's PostgreSQL runs this once, at its first boot (/docker-entrypoint-initdb.d):
# usersvc's schema owner and runtime role, by deploy/postgres/roles.sql (mounted at
# /usersvc/roles.sql; the tests run this script with USERSVC_ROLES_SQL naming it).
set -eu
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v database="$POSTGRES_DB" \
    -v owner=usersvc_owner -v owner_password="$POSTGRES_OWNER_PASSWORD" \
    -v app=usersvc_app -v app_password="$POSTGRES_APP_PASSWORD" \
    -f "${USERSVC_ROLES_SQL:-/usersvc/roles.sql}"
