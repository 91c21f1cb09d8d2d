#!/bin/sh
# One-shot (temporalio/admin-tools): create Temporal's own databases in temporal-postgres and bring
# their schemas up to the image's version. Idempotent: `create` fails harmlessly when the database
# exists, `update-schema` only applies what is missing. Run again after upgrading TEMPORAL_VERSION.
set -eu
: "${POSTGRES_SEEDS:?POSTGRES_SEEDS is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"
PORT="${DB_PORT:-5432}"
SCHEMA=/etc/temporal/schema/postgresql/v12

until nc -z -w 5 "$POSTGRES_SEEDS" "$PORT"; do
  echo "waiting for $POSTGRES_SEEDS:$PORT"
  sleep 2
done

for db in temporal temporal_visibility; do
  case "$db" in
    temporal) dir="$SCHEMA/temporal/versioned" ;;
    *) dir="$SCHEMA/visibility/versioned" ;;
  esac
  tool="temporal-sql-tool --plugin postgres12 --ep $POSTGRES_SEEDS -u $POSTGRES_USER -p $PORT --db $db"
  $tool create || echo "database $db exists"
  $tool setup-schema -v 0.0  # on a stamped database this changes nothing
  $tool update-schema -d "$dir"
done
echo "temporal schema ready"
