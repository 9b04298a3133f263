#!/usr/bin/env bash
# The key server's CPU per recovery (issue 16): keyserver-load at concurrency 16 and 64, first
# logins (full TLS handshake) and returning boxes (TLS resumed), SQLite and PostgreSQL, each
# next to `openssl speed ecdhp256` measured in the same run. With `--baseline BIN`, another
# keyserver binary (e.g. a release build of an older commit) runs alternately with this one,
# so that both see the same machine.
# Usage: scripts/bench-keyserver.sh [--baseline BIN] [--rounds N] [--backends sqlite,postgres]
# (Markdown on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
baseline="" rounds=2 backends=sqlite,postgres
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) baseline=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --backends) backends=$2; shift 2 ;;
    *) echo "usage: $0 [--baseline BIN] [--rounds N] [--backends sqlite,postgres]" >&2; exit 2 ;;
  esac
done
cargo build --release --locked -p keyserver --bins >&2
pg_url=$(scripts/pg-test-cluster.sh start 55434)
trap 'scripts/pg-test-cluster.sh stop 55434 >/dev/null' EXIT
ecdh() { openssl speed -seconds 3 ecdhp256 2>/dev/null | awk '/ecdh \(nistp256\)/ {print $NF}'; }

echo "| build | backend | boxes | concurrency | recoveries/s | p50 | p99 | server CPU per recovery | openssl ecdh p256 (same run) | CPU in ECDH ops |"
echo "|---|---|---|---|---|---|---|---|---|---|"
builds=(target/release/keyserver)
[ -n "$baseline" ] && builds=("$baseline" target/release/keyserver)
for round in $(seq "$rounds"); do
  for backend in ${backends//,/ }; do
    for mode in first returning; do
      for conc in 16 64; do
        for build in "${builds[@]}"; do
          args=(--json --keyserver "$build" --accounts 200 --recoveries 3000 --concurrency "$conc")
          [ "$mode" = returning ] && args+=(--returning)
          if [ "$backend" = postgres ]; then
            db="load$RANDOM$round"
            psql "$pg_url" -qc "CREATE DATABASE $db" >&2
            args+=(--database "${pg_url%/*}/$db")
          fi
          ops=$(ecdh)
          json=$(target/release/keyserver-load "${args[@]}")
          python3 - "$build" "$json" "$ops" <<'PY'
import json, sys
build, r, ops = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
cpu = r["server_cpu_ms_per_recovery"]
boxes = "returning" if r["returning"] else "first login"
print(f"| {build} | {r['backend']} | {boxes} | {r['concurrency']} | {r['per_second']:,.0f} | "
      f"{r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {cpu:.3f} ms | {ops:,.0f} op/s | "
      f"{cpu / 1e3 * ops:.1f} |")
PY
        done
      done
    done
  done
done
