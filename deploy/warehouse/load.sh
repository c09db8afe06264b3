#!/bin/sh
# Seeds a PostgreSQL database with the demo datasets: schema.sql (tables, keys,
# comments, the read-only role tag_reader), then the rows of the CSV files under
# DATASETS (the checkout's datasets/ folder). Used by the warehouse tests and by
# compose.yaml's warehouse container.
#   load.sh DATASETS READER_PASSWORD [psql connection options...]
set -eu
datasets=${1:?usage: load.sh DATASETS READER_PASSWORD [psql options]}
password=${2:?usage: load.sh DATASETS READER_PASSWORD [psql options]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
database=$(psql -X -At "$@" -c 'SELECT current_database()')
psql -X -q -v ON_ERROR_STOP=1 -v reader_password="$password" -v database="$database" "$@" -f "$here/schema.sql"
for table in movies/movies movies/reviews support/tickets; do
    psql -X -q -v ON_ERROR_STOP=1 "$@" \
        -c "\\copy ${table#*/} FROM '$datasets/$table.csv' WITH (FORMAT csv, HEADER)"
done
psql -X -q -v ON_ERROR_STOP=1 "$@" -c 'ANALYZE'
