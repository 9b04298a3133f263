#!/usr/bin/env bash
# Makes the arm64 box's initramfs on the build host, without running a single arm64 program:
# Debian's static busybox, the drivers that reach the root (SD/eMMC on the Pi 4, virtio disks
# on QEMU's virt board, ext4) taken from the root's own kernel with their dependencies, and
# packaging/image/initramfs/init.
#
#   packaging/image/arm64-initramfs.sh --root DIR --kernel VERSION --busybox DEB --out FILE
#
# Why not initramfs-tools: build-image.sh runs the arm64 root's programs through proot and
# qemu-aarch64-static when the host has no binfmt_misc, and there mkinitramfs copies nothing
# (proot 5.1 does not translate coreutils' statx calls, and ldd finds no library), so its
# initramfs has no shell and the kernel stops at "Failed to execute /init". On the box itself
# initramfs-tools stays installed and makes the next kernel's initramfs natively.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root="" version="" busybox="" out=""
while (($#)); do
  case "$1" in
    --root) root=$2; shift 2 ;;
    --kernel) version=$2; shift 2 ;;
    --busybox) busybox=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$root" ] && [ -n "$version" ] && [ -n "$busybox" ] && [ -n "$out" ] ||
  { echo "--root, --kernel, --busybox and --out are all needed (see --help)" >&2; exit 2; }
modules=$root/lib/modules/$version
[ -f "$modules/modules.dep" ] || { echo "no modules.dep in $modules" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$work/tree
mkdir -p "$tree"/{bin,dev,proc,sys,root,lib/modules}

dpkg-deb -x "$busybox" "$work/busybox"
install -m 0755 "$work/busybox/bin/busybox" "$tree/bin/busybox"
# The applets /init uses (echo is built into its shell), as links: busybox runs the applet
# named by argv[0].
for applet in sh mount umount insmod findfs sleep cat switch_root; do
  ln -s busybox "$tree/bin/$applet"
done
install -m 0755 "$here/initramfs/init" "$tree/init"

# The drivers between the kernel and the root's files (the MMC and virtio cores are built in),
# with everything they depend on (from modules.dep), in an order that loads each module after
# its dependencies. A module the kernel has built in (modules.builtin) needs nothing; one that
# is neither built in nor a module stops the build (the root could not be reached).
wanted=(
  kernel/drivers/mmc/host/sdhci-iproc.ko       # the Pi 4's SD card slot (emmc2)
  kernel/drivers/mmc/host/bcm2835.ko           # the Pi's other SD controller (sdhost)
  kernel/drivers/regulator/gpio-regulator.ko   # the SD card's I/O voltage on the Pi 4
  kernel/drivers/regulator/fixed.ko            # the SD card's power on the Pi 4
  kernel/drivers/virtio/virtio_pci.ko          # QEMU's virt board: virtio over PCI or MMIO
  kernel/drivers/virtio/virtio_mmio.ko
  kernel/drivers/block/virtio_blk.ko
  kernel/fs/ext4/ext4.ko
  kernel/crypto/crc32c_generic.ko              # ext4's metadata checksums
)
# Each line of the order: the module's file in the root, then its name in the initramfs
# (uncompressed: busybox's insmod reads plain ELF files).
python3 - "$modules" "$work/order" "${wanted[@]}" <<'PY'
import sys

modules, order_file, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
deps = {}
for line in open(f"{modules}/modules.dep"):
    name, _, rest = line.partition(":")
    deps[name] = rest.split()
builtin = {line.strip() for line in open(f"{modules}/modules.builtin")}

def plain(path):
    """The module's path without its compression suffix."""
    for suffix in (".xz", ".zst", ".gz"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path

order, seen = [], set()

def visit(module):
    if module in seen:
        return
    seen.add(module)
    # modprobe loads a module's dependencies from the end of its list.
    for dep in reversed(deps[module]):
        visit(dep)
    order.append(module)

by_name = {plain(m): m for m in deps}
for want in wanted:
    if want in by_name:
        visit(by_name[want])
    elif want not in builtin:
        sys.exit(f"arm64-initramfs: {want} is neither a module nor built into this kernel")
with open(order_file, "w") as f:
    f.writelines(f"{m} {plain(m)}\n" for m in order)
PY
: >"$tree/lib/modules/modules.order"
while read -r module plain; do
  mkdir -p "$tree/lib/modules/$(dirname "$plain")"
  case "$module" in
    *.xz) xz -dc "$modules/$module" ;;
    *.zst) zstd -dcq "$modules/$module" ;;
    *.gz) zcat "$modules/$module" ;;
    *) cat "$modules/$module" ;;
  esac >"$tree/lib/modules/$plain"
  echo "$plain" >>"$tree/lib/modules/modules.order"
done <"$work/order"

mkdir -p "$(dirname "$out")"
(cd "$tree" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$out.new"
mv "$out.new" "$out"
echo "initramfs: $out ($(du -h "$out" | cut -f1), $(wc -l <"$work/order") modules)"
