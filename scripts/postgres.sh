#!/usr/bin/env bash
# Prints a PostgreSQL URL for the memory tests. FERRITE_TEST_POSTGRES_URL
# wins; otherwise a local cluster `ferrite-test` (Debian's postgresql
# packages, installed when missing) is created once and started.
set -euo pipefail
if [[ -n "${FERRITE_TEST_POSTGRES_URL:-}" ]]; then
    echo "$FERRITE_TEST_POSTGRES_URL"
    exit 0
fi
PORT=${FERRITE_TEST_POSTGRES_PORT:-54329}
CLUSTER=ferrite-test
fail() {
    echo "scripts/postgres.sh: $*" >&2
    echo "Set FERRITE_TEST_POSTGRES_URL=postgres://user:password@host:port/db (a role that may CREATE DATABASE) to use another server." >&2
    exit 1
}
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo -n "$@"; fi; }
if ! command -v pg_createcluster >/dev/null; then
    command -v apt-get >/dev/null || fail "PostgreSQL is not installed and apt-get is missing"
    echo "installing PostgreSQL (Debian packages)..." >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 ||
        fail "could not install PostgreSQL"
fi
VERSION=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $2}' | grep -qx "$CLUSTER"; then
    as_root pg_createcluster "$VERSION" "$CLUSTER" -p "$PORT" >&2 || fail "pg_createcluster failed"
fi
if ! pg_lsclusters -h | awk -v c="$CLUSTER" '$2 == c && $4 == "online"' | grep -q .; then
    as_root pg_ctlcluster "$VERSION" "$CLUSTER" start >&2 || fail "the cluster did not start"
fi
psql_admin() { as_root su postgres -c "psql -p $PORT -v ON_ERROR_STOP=1 -qtAc \"$1\""; }
if [[ $(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'ferrite'") != 1 ]]; then
    psql_admin "CREATE ROLE ferrite LOGIN CREATEDB PASSWORD 'ferrite'" >/dev/null
fi
# Databases earlier test runs created on this cluster.
for db in $(psql_admin "SELECT datname FROM pg_database WHERE datname LIKE 'ferrite\_%'"); do
    psql_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
done
echo "postgres://ferrite:ferrite@127.0.0.1:$PORT/postgres"
