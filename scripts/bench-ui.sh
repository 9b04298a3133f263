#!/usr/bin/env bash
# The UI's zap time, as a person sees it: the box's screen under Xvfb (winit, software
# renderer), logged in with the keyboard (xdotool), then 24 CH+ presses from a remote, sent
# as raw `struct input_event` records through a FIFO the box reads like an evdev device.
# Prints one line of JSON: key-to-picture times (from the zap to the first new picture on
# screen) and the picture rate while watching. Needs the release build and a free stack.
# Usage: scripts/bench-ui.sh > target/ui-zap.json
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stack.sh
dir=target/bench-ui
display=:93
trap 'kill ${UI:-} ${XV:-} 2>/dev/null || true; stack_down' EXIT
stack_up "$dir" release >&2
Xvfb "$display" -screen 0 1280x720x24 >/dev/null 2>&1 &
XV=$!
fifo=$dir/remote
mkfifo "$fifo"
export DISPLAY=$display
RUST_LOG=stb_app=debug NO_COLOR=1 SLINT_BACKEND=winit target/release/stb-app \
  --config "$STB_BOX_CONFIG" ui --size 1280x720 --input "$fifo" >"$dir/ui.log" 2>&1 &
UI=$!
for _ in $(seq 1 50); do xdotool search --name STB >/dev/null 2>&1 && break; sleep 0.2; done
xdotool windowfocus --sync "$(xdotool search --name STB | head -1)"
xdotool type --delay 20 "$DEMO_IDENTIFIER"
xdotool key Return
xdotool type --delay 20 "$DEMO_PASSWORD"
xdotool key Return
sleep 5
# KEY_CHANNELUP (402) pressed and released, as an IR receiver reports it.
python3 - "$fifo" <<'PY'
import struct, sys, time
with open(sys.argv[1], "wb", buffering=0) as remote:
    for _ in range(24):
        for value in (1, 0):
            remote.write(struct.pack("llHHi", 0, 0, 1, 402, value))
            remote.write(struct.pack("llHHi", 0, 0, 0, 0, 0))
        time.sleep(1.5)
PY
sleep 12
python3 - "$dir/ui.log" <<'PY'
import json, re, sys
log = open(sys.argv[1]).read()
zaps = [int(m) for m in re.findall(r"first picture on screen ms=(\d+)", log)]
fps = [float(m) for m in re.findall(r"pictures on screen fps=([\d.]+)", log)]
print(json.dumps({"zaps_ms": zaps[1:], "login_zap_ms": zaps[:1], "fps": fps}))
PY
