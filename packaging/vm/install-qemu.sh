#!/usr/bin/env bash
# Installs QEMU for the VM tests from bookworm-backports, which matches the machine's
# qemu-utils 10.x; bookworm's own qemu-system (7.2) would remove it. The backports suite is
# added with the URI of this machine's own Debian entry (scripts/debian-mirror.sh), never a
# host name of ours. Refuses to go on if apt would remove any package.
#
#   packaging/vm/install-qemu.sh          # qemu-system-x86 (the amd64 system test)
#   packaging/vm/install-qemu.sh arm64    # qemu-system-arm (qemu-system-aarch64: raspi4b, virt)
set -euo pipefail
cd "$(dirname "$0")/../.."

case "${1:-amd64}" in
  amd64) pkg=qemu-system-x86 bin=qemu-system-x86_64 ;;
  arm64) pkg=qemu-system-arm bin=qemu-system-aarch64 ;;
  *) echo "usage: $0 [amd64|arm64]" >&2; exit 2 ;;
esac
if command -v "$bin" >/dev/null; then
  "$bin" --version | head -1
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "run as root (apt-get install)" >&2; exit 1; }
list=/etc/apt/sources.list.d/stb-bookworm-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  mirror=$(scripts/debian-mirror.sh)
  cat >"$list" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq
sim=$(apt-get -s install -t bookworm-backports --no-install-recommends -y "$pkg")
if grep -q '^Remv ' <<<"$sim"; then
  echo "installing $pkg from bookworm-backports would remove packages:" >&2
  grep '^Remv ' <<<"$sim" >&2
  exit 1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
  --no-install-recommends "$pkg" >/dev/null
"$bin" --version | head -1
