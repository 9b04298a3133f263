#!/usr/bin/env bash
# Installs the system packages the workspace, its tests and its demo need (Debian/Ubuntu).
# Idempotent and quick when everything is already there. With arguments, installs those
# packages instead (the packaging scripts' tools).
set -euo pipefail

PACKAGES=(
  # build
  build-essential pkg-config cmake
  # GStreamer (player, packager, tests)
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-x
  gstreamer1.0-plugins-base-apps
  # Slint (software renderer, linuxkms, winit under Xvfb)
  libfontconfig-dev libxkbcommon-dev libinput-dev libudev-dev fonts-dejavu-core xvfb
  # servers and tools the tests drive
  postgresql openssl curl sqlite3
  # the HTTP cache in front of the content server (edge tests and content-load)
  nginx libnginx-mod-http-js
  # packaging
  lintian debootstrap
)

(($#)) && PACKAGES=("$@")
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
(($#)) || rustup component add rustfmt clippy >/dev/null 2>&1 || true
