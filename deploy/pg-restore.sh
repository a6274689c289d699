#!/usr/bin/env bash
# Restore a dump made by deploy/pg-backup.sh into the database of PAYAPP_DATABASE_URL, which
# must exist and be empty (createdb -O payapp payapp_restored): it never writes over live data.
# All or nothing (one transaction). Then point DATABASE_URL at it and start payapp (init-db
# brings an older dump's schema up to date).
#   PAYAPP_DATABASE_URL=postgresql://payapp@127.0.0.1/payapp_restored deploy/pg-restore.sh FILE
set -euo pipefail
FILE="${1:?usage: deploy/pg-restore.sh instance/backups/payapp-<time>.db.dump}"
URL="${PAYAPP_DATABASE_URL:?set PAYAPP_DATABASE_URL to the new, empty database}"
URL="${URL/postgresql+psycopg:/postgresql:}"
BIN="${PAYAPP_PG_BIN:+$PAYAPP_PG_BIN/}"
tables="$("${BIN}psql" --no-psqlrc --tuples-only --no-align --dbname="$URL" \
  --command="SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")"
if [ "$tables" != "0" ]; then
  echo "refusing to restore: that database already has $tables table(s); use a new one" >&2
  exit 1
fi
"${BIN}pg_restore" --no-owner --no-privileges --exit-on-error --single-transaction \
  --dbname="$URL" "$FILE"
echo "restored $FILE"
