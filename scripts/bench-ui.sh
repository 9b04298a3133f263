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
trap 'kill ${UI:-} ${XV:-} 2>/dev/null || true; stack_down' EXIT

fail() {
  echo "bench-ui: $*" >&2
  exit 1
}

# A dead child stays a zombie until bash reaps it: that is not alive either.
box_alive() {
  [ -r "/proc/$UI/stat" ] && [ "$(sed 's/.*) //' "/proc/$UI/stat" | cut -d' ' -f1)" != Z ]
}

box_died() {
  echo "bench-ui: the box exited $1; the end of $dir/ui.log:" >&2
  tail -n 20 "$dir/ui.log" >&2
  exit 1
}

for tool in Xvfb xdotool; do
  command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install xvfb xdotool)"
done
stack_up "$dir" release >&2
# Xvfb picks a free display and writes its number once it accepts connections: the box must
# not start before (it exits with "Failed to open connection to X server" under load). The
# last run's file goes first: the background shell truncates it only when it gets to run.
rm -f "$dir/xvfb-display"
Xvfb -displayfd 3 -screen 0 1280x720x24 3>"$dir/xvfb-display" >"$dir/xvfb.log" 2>&1 &
XV=$!
for i in $(seq 1 100); do
  [ -s "$dir/xvfb-display" ] && break
  kill -0 "$XV" 2>/dev/null || fail "Xvfb exited: $(tail -n 5 "$dir/xvfb.log")"
  [ "$i" -lt 100 ] || fail "Xvfb did not accept connections within 10 s"
  sleep 0.1
done
export DISPLAY=":$(head -n 1 "$dir/xvfb-display")"
fifo=$dir/remote
mkfifo "$fifo"
RUST_LOG=stb_app=debug NO_COLOR=1 SLINT_BACKEND=winit target/release/stb-app \
  --config "$STB_BOX_CONFIG" ui --size 1280x720 --input "$fifo" >"$dir/ui.log" 2>&1 &
UI=$!
window=
for _ in $(seq 1 50); do
  window=$(xdotool search --name STB 2>/dev/null | head -n 1) && [ -n "$window" ] && break
  box_alive || box_died "before its window opened"
  sleep 0.2
done
[ -n "$window" ] || fail "the box's window did not appear within 10 s (see $dir/ui.log)"
timeout 10 xdotool windowfocus --sync "$window" || fail "could not focus the box's window"
xdotool type --delay 20 "$DEMO_IDENTIFIER"
xdotool key Return
xdotool type --delay 20 "$DEMO_PASSWORD"
xdotool key Return
sleep 5
box_alive || box_died "during the login"
# KEY_CHANNELUP (402) pressed and released, as an IR receiver reports it. The FIFO is opened
# and written without blocking, the box checked before each press: a dead box fails the
# bench instead of leaving it waiting forever for a reader.
python3 - "$fifo" "$UI" <<'PY' || box_died "or stopped reading its remote"
import errno, os, struct, sys, time
fifo, pid = sys.argv[1], sys.argv[2]

def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

deadline = time.monotonic() + 30
while True:
    if not alive():
        sys.exit(1)
    try:
        remote = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        break
    except OSError as e:
        if e.errno != errno.ENXIO or time.monotonic() > deadline:
            sys.exit(f"bench-ui: the remote's FIFO: {e}")
        time.sleep(0.1)
for _ in range(24):
    for value in (1, 0):
        if not alive():
            sys.exit(1)
        try:
            # 48 bytes: far below the pipe's buffer, so a full pipe means the box stopped
            # reading; a closed one that it exited.
            os.write(remote, struct.pack("llHHi", 0, 0, 1, 402, value)
                     + struct.pack("llHHi", 0, 0, 0, 0, 0))
        except (BlockingIOError, BrokenPipeError):
            sys.exit(1)
    time.sleep(1.5)
PY
sleep 12
box_alive || box_died "while zapping"
python3 - "$dir/ui.log" <<'PY'
import json, re, sys
log = open(sys.argv[1]).read()
zaps = [int(m) for m in re.findall(r"first picture on screen ms=(\d+)", log)]
fps = [float(m) for m in re.findall(r"pictures on screen fps=([\d.]+)", log)]
print(json.dumps({"zaps_ms": zaps[1:], "login_zap_ms": zaps[:1], "fps": fps}))
PY
