#!/usr/bin/env bash
# Reruns every benchmark of the project and prints a Markdown table of the figures, each next
# to its reference measured in the same sitting (OpenSSL for AES-CTR and P-256 ECDH).
# Usage: scripts/bench.sh [> bench-output.md]
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_apt() {
  local SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >&2
  $SUDO service nginx stop >/dev/null 2>&1 || true
}

# One cargo invocation for every binary the bench runs, the same as scripts/demo.sh's: cargo
# unifies features per invocation, so building the packages one by one recompiled the shared
# dependencies (GStreamer, Slint, sqlx) for each, and did not reuse what the demo had built.
echo "Build: content-server, keyserver and stb-app with their load tools (release)" >&2
cargo build --release --locked -p content-server -p keyserver -p stb-app >&2

echo "Reference: openssl speed (same sitting)" >&2
ossl_ctr=$(openssl speed -evp aes-128-ctr -seconds 3 -bytes 1048576 2>/dev/null \
  | awk '/^AES-128-CTR/ {sub("k","",$2); print $2 * 1000}')
ossl_ecdh=$(openssl speed -seconds 3 ecdhp256 2>/dev/null | awk '/ecdh \(nistp256\)/ {print $NF}')

echo "Criterion: stb-protocol" >&2
cargo bench -p stb-protocol --bench protocol --locked -- --noplot >&2

echo "Load: keyserver recoveries over TLS (SQLite, then PostgreSQL)" >&2
load_sqlite=$(target/release/keyserver-load --json --accounts 200 --recoveries 3000 --concurrency 16)
pg_url=$(scripts/pg-test-cluster.sh start 55433)
trap 'scripts/pg-test-cluster.sh stop 55433' EXIT
psql "$pg_url" -qc "CREATE DATABASE loadtest" >&2
load_pg=$(target/release/keyserver-load --json --accounts 200 --recoveries 3000 --concurrency 16 \
  --database "${pg_url%/*}/loadtest")

echo "Load: live viewers, content-server against nginx (same encrypted segments, mutual TLS)" >&2
command -v nginx >/dev/null || sudo_apt nginx-light
target/release/content-load --json --viewers 400,1600,3200 --seconds 8 > target/content-load.jsonl

echo "Zap: the box against the whole stack on loopback (24 zaps, 1.5 s each)" >&2
source scripts/stack.sh
stack_up target/bench-stack release >&2
zaps=$(python3 -c "print(','.join(['1','2','4'] * 8))")
printf '%s\n' "$DEMO_PASSWORD" | target/release/stb-app --config "$STB_BOX_CONFIG" headless \
  --identifier "$DEMO_IDENTIFIER" --channels "$zaps" --dwell-secs 1.5 > target/zap-report.json
stack_down

echo "Zap in the UI: Xvfb, 24 CH+ from a remote (raw input events), picture on screen" >&2
command -v xdotool >/dev/null || sudo_apt xdotool
scripts/bench-ui.sh > target/ui-zap.json

python3 - "$ossl_ctr" "$ossl_ecdh" "$load_sqlite" "$load_pg" <<'PY'
import json, os, platform, subprocess, sys
ossl_ctr, ossl_ecdh = float(sys.argv[1]), float(sys.argv[2])
loads = [json.loads(sys.argv[3]), json.loads(sys.argv[4])]
root = "target/criterion"
def est(path):
    with open(os.path.join(root, path, "new", "estimates.json")) as f:
        e = json.load(f)
    return e["median"]["point_estimate"]  # ns
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"Machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
      f"{subprocess.run(['openssl','version'],capture_output=True,text=True).stdout.strip()}\n")
print("| benchmark | median | rate | reference (same sitting) | ratio |")
print("|---|---|---|---|---|")
def row(name, path, per_op_bytes=None, ref=None, ref_name="", ratio_of=None):
    ns = est(path)
    if per_op_bytes:
        rate = per_op_bytes / (ns / 1e9)
        r = f"{rate/1e9:.2f} GB/s"
        ratio = f"{rate/ref:.2f}x" if ref else ""
        print(f"| {name} | {ns/1e3:.1f} us | {r} | {ref_name} {ref/1e9:.2f} GB/s | {ratio} |")
    else:
        ops = 1e9 / ns
        ref_s = f"{ref_name} {ref:,.0f} op/s" if ref else ""
        ratio = f"{ops/ref:.3f}x" if ref else ""
        unit = f"{ns/1e6:.1f} ms" if ns > 1e6 else f"{ns/1e3:.0f} us"
        print(f"| {name} | {unit} | {ops:,.0f} op/s per core | {ref_s} | {ratio} |")
MiB = 1 << 20
row("segment AES-128-CTR, 1 MiB, aws-lc-rs (used)", "segment_aes128ctr_1MiB/aws-lc-rs (used)", MiB, ossl_ctr, "openssl aes-128-ctr")
row("segment AES-128-CTR, 1 MiB, RustCrypto aes+ctr", "segment_aes128ctr_1MiB/rustcrypto aes+ctr (reference)", MiB, ossl_ctr, "openssl aes-128-ctr")
row("EKE server answer (known identifier)", "eke/server_answer", ref=ossl_ecdh, ref_name="openssl ecdh p256")
row("EKE server answer (unknown identifier, fake record)", "eke/server_answer_unknown_identifier", ref=ossl_ecdh, ref_name="openssl ecdh p256")
row("EKE client start", "eke/client_start")
row("EKE client finish (open, unseal, confirm)", "eke/client_finish")
row("Argon2id 64 MiB, t=3, p=1 (KP)", "kdf/argon2id_64MiB_t3_p1")
print()
print("| keyserver load (recover + confirm, fresh TLS connection each) | recoveries/s | p50 | p99 | server CPU per recovery | vs openssl ecdh p256 op |")
print("|---|---|---|---|---|---|")
for l in loads:
    cpu = l["server_cpu_ms_per_recovery"]
    print(f"| {l['backend']}, {l['recoveries']} recoveries, concurrency {l['concurrency']} | "
          f"{l['per_second']:,.0f} | {l['p50_ms']:.1f} ms | {l['p99_ms']:.1f} ms | {cpu:.3f} ms | "
          f"{cpu / (1e3 / ossl_ecdh):.0f}x |")
print()
print("| live viewers (1 s segments, late = complete > 1 s after on air) | viewers | segments | late % | p99 lateness | server CPU s per 8 s |")
print("|---|---|---|---|---|---|")
for line in open("target/content-load.jsonl"):
    r = json.loads(line)
    print(f"| {r['server']} | {r['viewers']} | {r['segments']} | {r['late_pct']:.2f} | {r['p99_lateness_ms']} ms | {r['server_cpu_s']:.2f} |")
print()
z = json.load(open("target/zap-report.json"))
ff = sorted(c["first_frame_ms"] for c in z["channels"] if c["first_frame_ms"] is not None)
pct = lambda p: ff[min(len(ff) - 1, int(round(p * (len(ff) - 1))))]
l = z["login"]
print("| box (headless, fakesink, avdec_h264) | figure |")
print("|---|---|")
print(f"| zaps measured | {len(ff)} of {len(z['channels'])} |")
print(f"| key press to first decoded frame, p50 | {pct(0.5)} ms |")
print(f"| key press to first decoded frame, p95 | {pct(0.95)} ms |")
print(f"| key press to first decoded frame, max | {ff[-1]} ms |")
print(f"| login without Argon2id (EKE + content session + first frame) | {l['recover_ms'] + l['content_ms'] + z['login_to_first_frame_ms']} ms |")
print(f"| Argon2id on the box | {l['kdf_ms']} ms |")
print()
u = json.load(open("target/ui-zap.json"))
uz = sorted(u["zaps_ms"])
upct = lambda p: uz[min(len(uz) - 1, int(round(p * (len(uz) - 1))))]
print("| box UI (Xvfb, winit, software renderer, appsink -> slint::Image) | figure |")
print("|---|---|")
print(f"| CH+ zaps measured | {len(uz)} |")
print(f"| zap to first picture on screen, p50 | {upct(0.5)} ms |")
print(f"| zap to first picture on screen, p95 | {upct(0.95)} ms |")
print(f"| pictures on screen while watching (last 5 s) | {u['fps'][-1]:.1f}/s |")
PY
