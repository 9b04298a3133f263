#!/usr/bin/env bash
# The VM system test: the box's amd64 disk image booted under QEMU (TCG) as a TV box, driven
# with a remote (a virtio keyboard in the guest, keys sent over QMP) against the real key
# server and content server on the host's loopback. See packaging/vm/system_test.py and
# packaging/README.md ("The box in a VM").
#
#   packaging/image/build-image.sh --arch amd64      # target/image-amd64/stb-amd64.img
#   packaging/vm/install-qemu.sh                     # qemu-system-x86 from bookworm-backports
#   packaging/vm/system-test.sh [--image IMG] [--bin-dir target/release] [--out target/vm-test]
#
# Needs the release binaries (cargo build --release), curl and debugfs (e2fsprogs). Writes
# docs/screenshots/vm-*.png, target/vm-test/{serial.log,qemu.log,report.json}. Bounded: the
# whole test is killed after STB_VM_TEST_TIMEOUT seconds (default 900).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v qemu-system-x86_64 >/dev/null ||
  { echo "qemu-system-x86_64 is missing: run packaging/vm/install-qemu.sh" >&2; exit 1; }
command -v debugfs >/dev/null || { echo "debugfs is missing: apt-get install e2fsprogs" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is missing: apt-get install curl" >&2; exit 1; }
started=$(date +%s)
status=0
timeout --kill-after=20 "${STB_VM_TEST_TIMEOUT:-900}" /usr/bin/python3 packaging/vm/system_test.py "$@" ||
  status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "vm system test: killed after ${STB_VM_TEST_TIMEOUT:-900} s; serial console tail:" >&2
  tail -40 target/vm-test/serial.log >&2 || true
fi
echo "vm system test: $(($(date +%s) - started)) s"
exit "$status"
