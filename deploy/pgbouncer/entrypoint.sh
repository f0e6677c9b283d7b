#!/bin/sh
# PgBouncer of compose's profile `pgbouncer`: its auth file is written at each start from
# the environment (.env's POSTGRES_APP_PASSWORD, the runtime role's) into a tmpfs readable
# by PgBouncer alone, so no password is in the repository or the image; then PgBouncer
# runs with deploy/pgbouncer/pgbouncer.ini.
set -eu
: "${PGBOUNCER_USER:?set PGBOUNCER_USER}" "${PGBOUNCER_PASSWORD:?set PGBOUNCER_PASSWORD}"
case "$PGBOUNCER_PASSWORD" in
*[!A-Za-z0-9._~-]*)
    echo "PGBOUNCER_PASSWORD: letters, digits and . _ ~ - only (it goes into URLs too)" >&2
    exit 2
    ;;
esac
umask 077
printf '"%s" "%s"\n' "$PGBOUNCER_USER" "$PGBOUNCER_PASSWORD" >/run/pgbouncer-auth/userlist.txt
exec pgbouncer /etc/pgbouncer/pgbouncer.ini
