#!/usr/bin/env bash
# The VM system test: the box's disk image booted under QEMU (TCG) as a TV box, driven with a
# remote (a virtio keyboard in the guest, keys sent over QMP) against the real key server and
# content server on the host's loopback. See packaging/vm/system_test.py and
# packaging/README.md ("The box in a VM").
#
#   packaging/image/build-image.sh --arch amd64      # target/image-amd64/stb-amd64.img
#   packaging/vm/system-test.sh [--image IMG] [--bin-dir target/release] [--out target/vm-test]
#   packaging/vm/system-test.sh --arch arm64         # the Raspberry Pi image on QEMU's virt board
#
# Installs QEMU (packaging/vm/install-qemu.sh) and its other tools; needs the release binaries
# (cargo build --release). Writes docs/screenshots/vm-*.png (arm64: vm-arm64-*.png) and
# target/vm-test[-arm64]/{serial.log,qemu.log,report.json}. Bounded: the whole test is killed
# after STB_VM_TEST_TIMEOUT seconds (default 900; arm64 1800).
set -euo pipefail
cd "$(dirname "$0")/../.."
# --arch and --out, read here too (system_test.py takes no abbreviations of them).
arch=amd64 out=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --arch) arch=${args[i + 1]:-} ;;
    --arch=*) arch=${args[i]#--arch=} ;;
    --out) out=${args[i + 1]:-} ;;
    --out=*) out=${args[i]#--out=} ;;
  esac
done
case "$arch" in
  amd64) limit=${STB_VM_TEST_TIMEOUT:-900} out=${out:-target/vm-test} ;;
  arm64) limit=${STB_VM_TEST_TIMEOUT:-1800} out=${out:-target/vm-test-arm64} ;;
  *) echo "--arch is amd64 or arm64" >&2; exit 2 ;;
esac
packaging/vm/install-qemu.sh "$arch" >/dev/null
# debugfs writes the test's configuration into the copy; mcopy reads the Pi's boot partition.
scripts/install-deps.sh e2fsprogs curl mtools
started=$(date +%s)
status=0
timeout --kill-after=20 "$limit" /usr/bin/python3 packaging/vm/system_test.py "$@" || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "vm system test: killed after $limit s; serial console tail:" >&2
  tail -40 "$out/serial.log" >&2 || true
fi
echo "vm system test ($arch): $(($(date +%s) - started)) s"
exit "$status"
