#!/usr/bin/env bash
# Start the PostgreSQL and Redis servers that the probe and backend tests use.
#
# Installs them from Debian's packages when missing, starts them on 127.0.0.1 only,
# makes a test role and database, and prints on stdout the lines to eval:
#
#     eval "$(bash .ci/services.sh)"
#
# which set PERFLAB_TEST_POSTGRES_DSN and PERFLAB_TEST_REDIS_URL. Everything else goes
# to stderr. Running it again finds the servers up and changes nothing. Needs root.
set -euo pipefail

PG_ROLE=perflab
PG_PASSWORD=perflab
PG_DATABASE=perflab_test
REDIS_PORT=6379

say() { echo "services.sh: $*" >&2; }

# --- install what is missing --------------------------------------------------------
missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql-common)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# --- PostgreSQL: the packaged cluster, loopback only --------------------------------
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
    say "creating PostgreSQL $version cluster main"
    pg_createcluster "$version" main >&2
fi
conf_dir=/etc/postgresql/$version/main/conf.d
mkdir -p "$conf_dir"
echo "listen_addresses = '127.0.0.1'" > "$conf_dir/perflab.conf"
pg_port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' \
    | grep -q online; then
    say "starting PostgreSQL $version on 127.0.0.1:$pg_port"
    pg_ctlcluster "$version" main start >&2
fi
for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$pg_port" && break
    sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$pg_port" >&2

as_postgres() { runuser -u postgres -- psql -p "$pg_port" -v ON_ERROR_STOP=1 -qtAX "$@"; }
# pg_monitor lets the probe see every session's state and query in pg_stat_activity;
# CREATEDB lets a test make a database of its own and drop it.
as_postgres -c "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
        CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
    ELSE
        ALTER ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
    END IF;
END \$\$;" >&2
as_postgres -c "SET client_min_messages = warning" \
    -c "GRANT pg_monitor TO $PG_ROLE" >&2
if [ -z "$(as_postgres -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'")" ]
then
    as_postgres -c "CREATE DATABASE $PG_DATABASE OWNER $PG_ROLE" >&2
fi

# --- Redis: loopback only, no persistence -------------------------------------------
if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    say "starting Redis on 127.0.0.1:$REDIS_PORT"
    mkdir -p /tmp/perflab-redis
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes \
        --save '' --appendonly no --dir /tmp/perflab-redis \
        --logfile /tmp/perflab-redis/redis.log >&2
fi
for _ in $(seq 1 40); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.25
done
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >&2

dsn="postgresql://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$pg_port/$PG_DATABASE"
echo "export PERFLAB_TEST_POSTGRES_DSN='$dsn'"
echo "export PERFLAB_TEST_REDIS_URL='redis://127.0.0.1:$REDIS_PORT/0'"
