#!/usr/bin/env bash
# Install test: a minimal Debian bookworm root (debootstrap), the three .debs installed with
# their dependencies by apt, each binary's --version and --help run inside it, and both servers
# initialised and started there once (health checked with curl inside the root).
# Needs root (chroot) and a Debian mirror: the one apt uses here (scripts/debian-mirror.sh;
# STB_DEBIAN_MIRROR overrides it). Usage: packaging/debian/install-test.sh [ROOT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${1:-target/install-test-root}
debs=(target/debian/keyserver_*.deb target/debian/content-server_*.deb target/debian/stb-app_*.deb)
for d in "${debs[@]}"; do [ -f "$d" ] || { echo "missing $d: run packaging/debian/build-debs.sh" >&2; exit 1; }; done
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap

cleanup() {
  for m in proc sys dev; do umount -l "$root/$m" 2>/dev/null || true; done
}
trap cleanup EXIT

if [ ! -x "$root/usr/bin/apt-get" ]; then
  rm -rf "$root"
  debootstrap --variant=minbase bookworm "$root" "$(scripts/debian-mirror.sh)" >/dev/null
fi
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mkdir -p "$root/tmp/debs"
cp "${debs[@]}" "$root/tmp/debs/"
# No service may start inside the chroot during installation.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
in_root apt-get update -qq
# A reused root gets a fresh install, not an upgrade (an upgrade keeps the old enable state).
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq stb-app keyserver content-server \
  >/dev/null 2>&1 || true
inside_debs=()
for d in "${debs[@]}"; do inside_debs+=("/tmp/debs/$(basename "$d")"); done
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  curl ca-certificates procps "${inside_debs[@]}" >/dev/null

for bin in keyserver keyserver-load content-server content-load stb-app; do
  in_root "$bin" --version
  in_root "$bin" --help >/dev/null
done
in_root id keyserver && in_root id content-server && in_root id stb
# The packaged box draws its login screen (Slint software renderer, packaged fonts, keymap).
in_root runuser -u stb -- stb-app screenshots --out /tmp/shots --only login --sizes 1280x720
in_root test -s /tmp/shots/login-1280x720.png
in_root test -f /etc/stb-app/keymap.toml
in_root test -L /etc/systemd/system/multi-user.target.wants/stb-app.service

# Start both servers once, as their system users, with their packaged configuration.
in_root runuser -u content-server -- sh -c '
  content-server -c /etc/content-server/config.toml --data-dir /tmp/cs init >/dev/null &&
  (content-server -c /etc/content-server/config.toml --data-dir /tmp/cs serve >/tmp/cs.log 2>&1 &) '
in_root runuser -u keyserver -- sh -c '
  keyserver -c /etc/keyserver/config.toml --data-dir /tmp/ks init >/dev/null &&
  (keyserver -c /etc/keyserver/config.toml --data-dir /tmp/ks serve >/tmp/ks.log 2>&1 &) '
ok=0
for _ in $(seq 1 50); do
  if in_root curl -sf --cacert /tmp/cs/ca/ca.crt https://127.0.0.1:8445/healthz >/dev/null &&
     in_root curl -sf --cacert /tmp/ks/tls/server.crt https://127.0.0.1:8444/healthz >/dev/null; then
    ok=1; break
  fi
  sleep 0.2
done
in_root pkill -f 'content-server -c' || true
in_root pkill -f 'keyserver -c' || true
[ "$ok" = 1 ] || { echo "servers did not answer in the install root" >&2; cat "$root/tmp/cs.log" "$root/tmp/ks.log" >&2; exit 1; }
echo "install test passed: packages install on bookworm, binaries run, the box draws its screen, servers answer"
