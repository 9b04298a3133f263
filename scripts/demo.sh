#!/usr/bin/env bash
# The demo: installs what it needs, builds, starts the content server and the key server on
# loopback with embedded SQLite, enrolls and registers a demo subscriber, then runs the box:
# with a display, channels 1, 2 and 4 play in a window (and with sound); without one, the box
# plays them headless and prints its JSON report. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked -p content-server -p keyserver -p stb-app

source scripts/stack.sh
trap 'stack_down; echo; echo "demo stopped"' EXIT
stack_up target/demo release

cat <<TXT

The stack is up (work directory target/demo):
  content server  https://127.0.0.1:8443 (mutual TLS), enrollment https://127.0.0.1:8445
  key server      https://127.0.0.1:8444, metrics http://127.0.0.1:9464/metrics
  demo subscriber "Demo Subscriber", package basic (channels 1, 2, 4; channel 3 is premium)
  identifier: $DEMO_IDENTIFIER
  password:   $DEMO_PASSWORD

TXT

snapshot=()
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "Playing channels 1, 2, 4 and 3 (refused) in a window, 10 s each..."
  video=autovideosink audio=autoaudiosink dwell=10
else
  echo "No display: playing channels 1, 2, 4 and 3 (refused) headless, 4 s each..."
  video=fakesink audio=fakesink dwell=4
  snapshot=(--snapshot target/demo/snapshot.png)
fi
printf '%s\n' "$DEMO_PASSWORD" |
  target/release/stb-app --config "$STB_BOX_CONFIG" headless --identifier "$DEMO_IDENTIFIER" \
    --channels 1,2,4,3 --dwell-secs "$dwell" --video-sink "$video" --audio-sink "$audio" \
    "${snapshot[@]}" |
  tee target/demo/report.json
echo
echo "Report saved to target/demo/report.json${snapshot:+, picture of channel 1 in target/demo/snapshot.png}."
echo "The servers keep running: Ctrl-C to stop."
while true; do sleep 3600; done
