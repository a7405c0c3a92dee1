#!/usr/bin/env bash
# Make the test suite's services ready, installing from Debian what is missing:
# PostgreSQL (started, with a role and database for the tests), Chromium, the
# Fashion-MNIST files and redis-server (the Redis broker tests start their own). Prints the DATABASE_URL to use on stdout; progress on stderr.
set -euo pipefail
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian" >&2
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

if [ -z "$(pg_lsclusters --no-header 2>/dev/null)" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  as_root pg_createcluster "$version" main >&2
fi
read -r version cluster port status _ < <(pg_lsclusters --no-header | head -1)
if [ "$status" != "online" ]; then
  echo "starting PostgreSQL $version/$cluster on port $port" >&2
  as_root pg_ctlcluster "$version" "$cluster" start >&2
fi

role=labelloop
as_postgres psql -p "$port" -qtAc "SELECT 1 FROM pg_roles WHERE rolname='$role'" | grep -q 1 ||
  as_postgres psql -p "$port" -qc "CREATE ROLE $role LOGIN CREATEDB PASSWORD '$role'" >&2
as_postgres psql -p "$port" -qtAc "SELECT 1 FROM pg_database WHERE datname='$role'" | grep -q 1 ||
  as_postgres createdb -p "$port" -O "$role" "$role" >&2
echo "postgres://$role:$role@127.0.0.1:$port/$role"
