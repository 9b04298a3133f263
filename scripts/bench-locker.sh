#!/usr/bin/env bash
# The locker, measured (issue 15), release binaries on loopback:
#  - `stb-app locker put` / `get` of a SIZE_MB file of random bytes (sealed chunk by chunk,
#    uploaded in 4 MiB pieces each on disk before the answer; read back with every chunk
#    checked), next to `openssl speed` of the same primitives (AES-256-CTR, HMAC-SHA256);
#  - a channel watched for DWELL seconds, then again while it is recorded into the locker:
#    pictures decoded in each run (headless box, fakesink), the recording's bytes, segments
#    left out, the time to save it, to its first picture and to the first picture after a seek.
# Usage: scripts/bench-locker.sh [SIZE_MB] [DWELL]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-200}
DWELL=${2:-20}
cargo build -q --release --bins
. scripts/stack.sh
DIR=target/bench-locker
trap stack_down EXIT
stack_up "$DIR" release >/dev/null
app() { printf '%s\n' "$DEMO_PASSWORD" | target/release/stb-app --config "$STB_BOX_CONFIG" "$@"; }
# The key server wants 10 s between two logins of one identifier.
next_login() { sleep 10.5; }

echo "== openssl speed (the primitives a chunk costs)"
openssl speed -elapsed -seconds 2 -evp aes-256-ctr 2>/dev/null | tail -1
openssl speed -elapsed -seconds 2 -hmac sha256 2>/dev/null | tail -1

echo "== locker put/get of ${SIZE_MB} MB"
head -c "$((SIZE_MB << 20))" /dev/urandom >"$DIR/random.bin"
app locker --identifier "$DEMO_IDENTIFIER" put "$DIR/random.bin"
next_login
app locker --identifier "$DEMO_IDENTIFIER" get random.bin "$DIR/back.bin"
cmp "$DIR/random.bin" "$DIR/back.bin" && echo "read back identical"
du -b "$DIR/content/locker" | tail -1
next_login
app locker --identifier "$DEMO_IDENTIFIER" rm random.bin

echo "== watching channel 1 for ${DWELL} s, without and with recording"
next_login
app headless --identifier "$DEMO_IDENTIFIER" --channels 1 --dwell-secs "$DWELL" >"$DIR/plain.json"
next_login
app headless --identifier "$DEMO_IDENTIFIER" --channels 1 --dwell-secs "$DWELL" --record >"$DIR/record.json"
python3 - "$DIR/plain.json" "$DIR/record.json" <<'PY'
import json, sys
plain, rec = (json.load(open(p)) for p in sys.argv[1:])
r = rec["recording"]
print(f"pictures decoded: {plain['channels'][0]['video_frames']} watching, "
      f"{rec['channels'][0]['video_frames']} watching and recording")
print(f"recording: {r['bytes']} bytes in {r['duration_ms']} ms "
      f"({r['bytes'] * 8 / max(r['duration_ms'], 1) / 1000:.2f} Mbit/s), "
      f"segments left out {r['dropped_segments']}, saved {r['save_ms']} ms after STOP")
print(f"first picture of the recording {r['open_ms']} ms after play; "
      f"first picture after a 3 s seek {r['seek_ms']} ms; error {r['error']}")
PY
