#!/usr/bin/env bash
# Boots the Raspberry Pi 4 SD image in QEMU (TCG), twice: its own kernel, initramfs and device
# tree on the raspi4b board to systemd's targets on the serial console (boot_arm64.py), then
# the same image on the virt board as a TV box, driven with the remote against the real
# servers like the amd64 system test (system-test.sh --arch arm64). See packaging/README.md
# ("arm64").
#
#   packaging/cross/build-arm64.sh --only stb-app         # target/debian-arm64/stb-app_*.deb
#   packaging/image/build-image.sh --arch arm64           # target/image-arm64/stb-rpi4-arm64.img
#   cargo build --release                                 # the servers the box talks to
#   packaging/vm/boot-arm64.sh [--image IMG]
#
# Writes target/vm-arm64/{raspi4b-serial.log,report.json}, target/vm-test-arm64/ and
# docs/screenshots/vm-arm64-*.png. The raspi4b boot gives up after STB_ARM64_BOOT_TIMEOUT
# seconds (default 900), the system test after STB_VM_TEST_TIMEOUT (default 1800).
set -euo pipefail
cd "$(dirname "$0")/../.."
image=()
while (($#)); do
  case "$1" in
    --image) [ -n "${2:-}" ] || { echo "--image needs a file" >&2; exit 2; }; image=(--image "$2"); shift 2 ;;
    --image=?*) image=(--image "${1#--image=}"); shift ;;
    *) echo "usage: $0 [--image IMG]" >&2; exit 2 ;;
  esac
done
limit=${STB_ARM64_BOOT_TIMEOUT:-900}
packaging/vm/install-qemu.sh arm64 >/dev/null
# mtools: the boot partition's files; fdtput: the raspi4b copy of the DTB.
scripts/install-deps.sh mtools device-tree-compiler
started=$(date +%s)
status=0
# The boot's own limit comes first, so that it reports what the console showed; the wrapper's
# a minute later bounds the rest (copying the image).
timeout --kill-after=20 $((limit + 60)) /usr/bin/python3 packaging/vm/boot_arm64.py \
  --timeout "$limit" "${image[@]}" || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "raspi4b boot: killed after $((limit + 60)) s; serial console tail:" >&2
  tail -40 target/vm-arm64/raspi4b-serial.log >&2 || true
fi
echo "raspi4b boot: $(($(date +%s) - started)) s"
[ "$status" -eq 0 ] || exit "$status"
packaging/vm/system-test.sh --arch arm64 "${image[@]}"
