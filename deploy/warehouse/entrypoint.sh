#!/bin/sh
# The warehouse container's start: on an empty data folder, initdb (password
# authentication for everyone but local postgres), then schema.sql and the rows
# through load.sh on a server bound to the socket only; then PostgreSQL itself in
# the foreground, listening on every address.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD (the postgres superuser's password)}"
: "${READER_PASSWORD:?set READER_PASSWORD (the password of tag_reader, the server's read-only role)}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /var/run/postgresql" -w start >/dev/null
    psql -X -q -h /var/run/postgresql -U postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
    /opt/warehouse/load.sh /opt/warehouse/datasets "$READER_PASSWORD" -h /var/run/postgresql -U postgres -d "$POSTGRES_DB"
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "warehouse: seeded $POSTGRES_DB with the demo datasets"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -k /var/run/postgresql
