#!/usr/bin/env bash
# The demo: installs what it needs, builds, starts the content server and the key server on
# loopback with embedded SQLite, enrolls and registers a demo subscriber, then runs the box:
# with a display, the box's screen opens in a window (log in with the keyboard, which stands
# in for the remote); without one, the box plays channels 1, 2, 4 and 3 headless, prints its
# JSON report and saves the login screen and a decoded picture as PNG. Ctrl-C (or closing the
# window) stops everything.
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

if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  cat <<TXT
The box's screen opens in a window. The keyboard stands in for the remote:
  arrows + Enter    on-screen keyboard / lists (or just type)   Esc   back
  digits            tune a channel        PageUp/PageDown   CH+ / CH-
  + / -  m          volume, mute          F1 info   F2 menu   F3 last channel   F12 power
TXT
  SLINT_BACKEND=${SLINT_BACKEND:-winit} target/release/stb-app --config "$STB_BOX_CONFIG" ui
  exit 0
fi

echo "No display: playing channels 1, 2, 4 and 3 (refused) headless, 4 s each..."
printf '%s\n' "$DEMO_PASSWORD" |
  target/release/stb-app --config "$STB_BOX_CONFIG" headless --identifier "$DEMO_IDENTIFIER" \
    --channels 1,2,4,3 --dwell-secs 4 --snapshot target/demo/snapshot.png |
  tee target/demo/report.json
target/release/stb-app screenshots --out target/demo --only login --sizes 1280x720 >/dev/null
echo
echo "Report saved to target/demo/report.json; picture of channel 1 in target/demo/snapshot.png;"
echo "the box's login screen in target/demo/login-1280x720.png (docs/screenshots has every screen)."
echo "The servers keep running: Ctrl-C to stop."
while true; do sleep 3600; done
