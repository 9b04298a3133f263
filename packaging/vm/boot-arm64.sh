#!/usr/bin/env bash
# Boots the Raspberry Pi 4 SD image in QEMU (TCG): its own kernel, initramfs and device tree
# on the raspi4b board to systemd's targets on the serial console, then its root filesystem
# on the virt board with virtio-gpu to the box's login screen (QMP screendump, pixels
# checked). See packaging/vm/boot_arm64.py and packaging/README.md ("arm64").
#
#   packaging/cross/build-arm64.sh --only stb-app         # target/debian-arm64/stb-app_*.deb
#   packaging/image/build-image.sh --arch arm64           # target/image-arm64/stb-rpi4-arm64.img
#   packaging/vm/boot-arm64.sh [--image IMG] [--only raspi4b|virt] [--timeout S]
#
# Writes target/vm-arm64/{raspi4b-serial.log,virt-serial.log,report.json} and
# docs/screenshots/vm-arm64-login.png. Bounded: killed after STB_ARM64_BOOT_TIMEOUT seconds
# (default 1800; each boot has its own --timeout, default 900).
set -euo pipefail
cd "$(dirname "$0")/../.."
# QEMU, mtools (the boot partition's files) and fdtput (the raspi4b DTB copy).
packaging/vm/install-qemu.sh arm64 >/dev/null
scripts/install-deps.sh mtools device-tree-compiler
started=$(date +%s)
status=0
timeout --kill-after=20 "${STB_ARM64_BOOT_TIMEOUT:-1800}" /usr/bin/python3 packaging/vm/boot_arm64.py "$@" ||
  status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "arm64 boot: killed after ${STB_ARM64_BOOT_TIMEOUT:-1800} s" >&2
fi
echo "arm64 boot: $(($(date +%s) - started)) s"
exit "$status"
