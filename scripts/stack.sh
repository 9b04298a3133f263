# Sourced by demo.sh and bench.sh: brings up the whole stack on loopback in a work directory.
#   stack_up DIR PROFILE   -> operator initialised, both servers running, demo subscriber
#                             registered; sets STB_BOX_CONFIG, DEMO_IDENTIFIER, DEMO_PASSWORD
#   stack_down             -> stops the servers
# Ports: content 8443 (mutual TLS), enrollment 8445, key server 8444, key-server metrics 9464.

DEMO_IDENTIFIER=demo
DEMO_PASSWORD='Sofa-Remote#2026!'
STACK_PIDS=()

stack_down() {
  for pid in "${STACK_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STACK_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  STACK_PIDS=()
}

wait_port() {
  for _ in $(seq 1 100); do
    curl -s -o /dev/null --cacert "$2" "https://127.0.0.1:$1/healthz" && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start; see $3" >&2
  return 1
}

stack_up() {
  local dir=$1 profile=${2:-release}
  local bin=target/$profile
  rm -rf "$dir"
  mkdir -p "$dir"
  for port in 8443 8444 8445 9464; do
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
      echo "port $port is in use: stop what listens there first" >&2
      return 1
    fi
  done
  local cs=("$bin/content-server" --data-dir "$dir/content" --channels media-fixtures/channels.toml)
  "${cs[@]}" init >/dev/null
  local code
  code=$("${cs[@]}" subscriber add "Demo Subscriber" --package basic | grep -o '[0-9]\{4\}-[0-9]\{4\}-[0-9]\{4\}')
  "$bin/keyserver" --data-dir "$dir/keyserver" init >/dev/null
  # The content server first: the key server takes the operator's CRL from it at start.
  "${cs[@]}" serve >"$dir/content.log" 2>&1 &
  STACK_PIDS+=($!)
  wait_port 8445 "$dir/content/ca/ca.crt" "$dir/content.log"
  "$bin/keyserver" --data-dir "$dir/keyserver" serve --operator-ca "$dir/content/ca/ca.crt" \
    --operator-crl https://127.0.0.1:8445/v1/crl >"$dir/keyserver.log" 2>&1 &
  STACK_PIDS+=($!)
  wait_port 8444 "$dir/keyserver/tls/server.crt" "$dir/keyserver.log"
  STB_BOX_CONFIG=$dir/box.toml
  cat >"$STB_BOX_CONFIG" <<TOML
keyserver_url = "https://127.0.0.1:8444"
keyserver_ca = "$dir/keyserver/tls/server.crt"
enroll_url = "https://127.0.0.1:8445"
enroll_ca = "$dir/content/ca/ca.crt"
TOML
  printf '%s\n%s\n' "$DEMO_PASSWORD" "$DEMO_PASSWORD" |
    "$bin/stb-app" --config "$STB_BOX_CONFIG" register --code "$code" --identifier "$DEMO_IDENTIFIER"
}
