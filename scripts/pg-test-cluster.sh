#!/usr/bin/env bash
# Starts (or stops) a throwaway PostgreSQL cluster on 127.0.0.1 for the tests and prints the
# URL to use. Usage: scripts/pg-test-cluster.sh start|stop [PORT]
set -euo pipefail
action=${1:-start}
port=${2:-55432}
dir=/tmp/stb-pg-$port
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

run() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$action" in
  start)
    if [ -f "$dir/postmaster.pid" ] && run "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      :
    else
      rm -rf "$dir"
      mkdir -p "$dir"
      [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
      run "$bin/initdb" -D "$dir" -A trust -U test >/dev/null
      run "$bin/pg_ctl" -D "$dir" -l "$dir/log" \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
        -w start >/dev/null
    fi
    echo "postgres://test@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -d "$dir" ] && run "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *) echo "usage: $0 start|stop [PORT]" >&2; exit 2 ;;
esac
