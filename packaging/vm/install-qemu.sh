#!/usr/bin/env bash
# Installs QEMU for the VM system test: qemu-system-x86 from
# bookworm-backports, which matches the machine's qemu-utils 10.x; bookworm's own qemu-system
# (7.2) would remove it. The backports suite is added with the URI of this machine's own
# Debian entry (scripts/debian-mirror.sh), never a host name of ours. Refuses to go on if apt
# would remove any package.
set -euo pipefail
cd "$(dirname "$0")/../.."

if command -v qemu-system-x86_64 >/dev/null; then
  qemu-system-x86_64 --version | head -1
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
sim=$(apt-get -s install -t bookworm-backports --no-install-recommends -y qemu-system-x86)
if grep -q '^Remv ' <<<"$sim"; then
  echo "installing qemu-system-x86 from bookworm-backports would remove packages:" >&2
  grep '^Remv ' <<<"$sim" >&2
  exit 1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
  --no-install-recommends qemu-system-x86 >/dev/null
qemu-system-x86_64 --version | head -1
