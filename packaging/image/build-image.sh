#!/usr/bin/env bash
# Builds the box's Debian bookworm system: a root filesystem with the stb-app package and its
# dependencies, the box unit enabled, DHCP networking, no login prompt; and a bootable disk:
# for amd64 a PC disk image (BIOS -> syslinux -> Debian's kernel -> systemd -> stb-app on the
# console), for arm64 a Raspberry Pi 4 (64-bit) SD-card image.
#
#   packaging/image/build-image.sh --arch amd64
#       -> target/image-amd64/stb-amd64.img   (raw disk: dd it onto a disk, or boot it in QEMU:
#                                               packaging/vm/system-test.sh)
#   packaging/image/build-image.sh --arch arm64 [--deb target/debian-arm64/stb-app_*.deb]
#       -> target/image-arm64/stb-rpi4-arm64.img   (write it with: dd if=... of=/dev/sdX bs=4M)
#   packaging/image/build-image.sh --arch amd64 --rootfs-only
#       -> target/image-amd64/root/ and rootfs.ext4  (no kernel, no boot loader)
#
# Options: --config FILE installs that box configuration as /etc/stb-app/config.toml (the
# operator's key server URL and CA); --mirror URL; --out DIR; --size-mb N (image size).
# --base-only stops after debootstrap and the kernel (no .deb needed); a later run with
# --reuse-base starts from that root and installs the .deb: the slow arm64 base can be made
# while the cross build of stb-app is still running.
# Root is needed (debootstrap, chroot). Disk images are assembled without loop devices or
# mounts: `mkfs.ext4 -d` fills the root partition from the directory, mtools fills the FAT boot
# partition (and syslinux installs its boot sector through mtools), sfdisk writes the table,
# `dd` puts the partitions at their offsets. Building arm64 on an amd64 host runs the arm64
# programs (maintainer scripts, update-initramfs, the checks) with qemu-user-static: through
# binfmt_misc and chroot when the host has a qemu-aarch64 entry, otherwise through proot
# (`debootstrap --foreign`, then the second stage and apt inside `proot -q
# qemu-aarch64-static`), which needs no kernel support at all.
set -euo pipefail
cd "$(dirname "$0")/../.."

arch=amd64
deb=""
config=""
out=""
mirror=""   # default: the mirror this machine's apt uses (scripts/debian-mirror.sh)
rootfs_only=0
base_only=0
reuse_base=0
size_mb=3072
while (($#)); do
  case "$1" in
    --arch) arch=$2; shift 2 ;;
    --deb) deb=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --size-mb) size_mb=$2; shift 2 ;;
    --rootfs-only) rootfs_only=1; shift ;;
    --base-only) base_only=1; shift ;;
    --reuse-base) reuse_base=1; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$arch" in amd64|arm64) ;; *) echo "--arch is amd64 or arm64" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "run as root (debootstrap and chroot need it)" >&2; exit 1; }
out=${out:-target/image-$arch}
if [ -z "$deb" ] && [ "$base_only" = 0 ]; then
  dir=target/debian
  [ "$arch" = arm64 ] && dir=target/debian-arm64
  deb=$(ls -1 "$dir"/stb-app_*_"$arch".deb 2>/dev/null | tail -1 || true)
  [ -n "$deb" ] || { echo "no stb-app .deb for $arch in $dir: build it first (packaging/debian/build-debs.sh or packaging/cross/build-arm64.sh)" >&2; exit 1; }
fi
started=$(date +%s)

tools=(debootstrap e2fsprogs)
[ "$rootfs_only" = 1 ] || tools+=(mtools dosfstools fdisk cpio zstd)
[ "$rootfs_only" = 0 ] && [ "$arch" = amd64 ] && tools+=(syslinux syslinux-common)
# How arm64 programs run in the root on another host: chroot when binfmt_misc hands them to
# qemu-aarch64 by itself, proot with qemu-aarch64-static when it cannot (no binfmt_misc, as
# on the build machine; registering an entry needs privileges a container lacks).
use_proot=0
if [ "$arch" = arm64 ] && [ "$(dpkg --print-architecture)" != arm64 ]; then
  tools+=(qemu-user-static xz-utils)
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { use_proot=1; tools+=(proot); }
fi
scripts/install-deps.sh "${tools[@]}"

root=$out/root
base_mark=$root/.stb-base   # the base stage finished and nothing else touched the root yet
# proot runs every arm64 program of the root through the host's qemu-aarch64-static and fakes
# root's privileges where the real ones are not enough (PROOT_NO_SECCOMP: proot's seccomp
# acceleration misses system calls made by the emulated programs). The host's /dev and /sys
# are bound in, so nothing is mounted (binding /proc too made proot abort with "compare_paths2:
# Assertion `length2 > 0' failed" in the second stage). The root is given as an absolute path.
# The emulator is copied in for the second stage (debootstrap looks for it there) and removed
# before the image is made.
in_proot() {
  PROOT_NO_SECCOMP=1 proot -0 -q qemu-aarch64-static -r "$(realpath "$root")" -b /dev -b /sys -w / \
    /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"
}
if [ "$reuse_base" = 1 ]; then
  [ -f "$base_mark" ] || { echo "no base root in $root: run with --base-only first (or without --reuse-base)" >&2; exit 1; }
else
  # A run killed midway may have left /proc mounted in the old root: never delete through it.
  umount -l "$root/proc" 2>/dev/null || true
  rm -rf --one-file-system "$root"
  mkdir -p "$out"
  : >"$out/apt.log"
  components=main
  [ "$arch" = arm64 ] && components=main,non-free-firmware
  foreign=()
  include=systemd,systemd-sysv,udev,dbus,systemd-resolved,iproute2,ca-certificates,kmod
  # Under proot, systemd's postinst would run systemd-tmpfiles, on which proot aborts
  # ("compare_paths2: Assertion `length2 > 0' failed"): systemd comes later, with apt, once
  # a stand-in for systemd-tmpfiles is in place (below).
  [ "$use_proot" = 1 ] && { foreign=(--foreign); include=iproute2,ca-certificates,kmod; }
  debootstrap "${foreign[@]}" --variant=minbase --arch="$arch" --components="$components" \
    --include="$include" \
    bookworm "$root" "${mirror:-$(scripts/debian-mirror.sh)}" >"$out/debootstrap.log" 2>&1 ||
    { tail -20 "$out/debootstrap.log" >&2; exit 1; }

  if [ "$use_proot" = 1 ]; then
    cp /usr/bin/qemu-aarch64-static "$root/usr/bin/"
    stage2=$(date +%s)
    in_proot DEBOOTSTRAP_DIR=/debootstrap /bin/sh /debootstrap/debootstrap --second-stage \
      >>"$out/debootstrap.log" 2>&1 || { tail -20 "$out/debootstrap.log" >&2; exit 1; }
    echo "debootstrap second stage under proot: $(($(date +%s) - stage2)) s"
    # The stand-in: systemd-tmpfiles diverted away while the packages are installed, put
    # back before the image is made (the real one runs at every boot anyway:
    # systemd-tmpfiles-setup.service creates what the postinsts would have created).
    in_proot dpkg-divert --local --rename --add /bin/systemd-tmpfiles >/dev/null
    printf '#!/bin/sh\n# build-time stand-in, see build-image.sh\nexit 0\n' >"$root/bin/systemd-tmpfiles"
    chmod 755 "$root/bin/systemd-tmpfiles"
    # apt-key cannot turn the .asc keys of trusted.gpg.d into a keyring under proot (gpgv:
    # "add_keyblock_resource" error, then NO_PUBKEY for every signature): the archive is
    # checked against the binary keyring of debian-archive-keyring instead (signed-by).
    sed -i 's|^deb |deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] |' \
      "$root/etc/apt/sources.list"
  fi

fi

apt_opts=()
if [ "$use_proot" = 1 ]; then
  in_root() { in_proot "$@"; }
  # apt drops to the _apt user to download; proot's faked root cannot switch users.
  apt_opts=(-o APT::Sandbox::User=root)
  cleanup() { :; }
else
  in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
  mount -t proc proc "$root/proc"
  cleanup() { umount -l "$root/proc" 2>/dev/null || true; }
fi
trap cleanup EXIT
# Nothing starts inside the build root.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

packages=()
# Under proot the systemd packages were left out of debootstrap (see above).
[ "$use_proot" = 1 ] && packages+=(systemd systemd-sysv udev dbus systemd-resolved)
if [ "$arch" = arm64 ]; then
  # Kernel and the Pi's boot firmware from Debian (raspi-firmware copies the kernel, the
  # initramfs and the device trees into /boot/firmware on every kernel update).
  packages+=(linux-image-arm64 raspi-firmware firmware-brcm80211 initramfs-tools)
elif [ "$rootfs_only" = 0 ]; then
  # A PC: Debian's kernel (virtio, DRM drivers such as virtio-gpu, i915, amdgpu's KMS) and an
  # initramfs that finds the root by its label.
  packages+=(linux-image-amd64 initramfs-tools)
fi
# The base (the kernel and the boot files) and the box's .deb go in with one apt run, or in
# two runs with --base-only and --reuse-base.
[ "$reuse_base" = 1 ] && packages=()
if [ "$base_only" = 0 ]; then
  cp "$deb" "$root/tmp/"
  packages+=("/tmp/$(basename "$deb")")
fi
apt_started=$(date +%s)
rm -f "$base_mark"
# systemd-resolved makes resolv.conf a link into /run (a base made earlier has it already);
# apt in the build root needs the host's resolver.
rm -f "$root/etc/resolv.conf"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
in_root apt-get "${apt_opts[@]}" update -qq
# The initramfs's busybox (see below), fetched while the root still uses the host's resolver.
if [ "$use_proot" = 1 ] && [ "$rootfs_only" = 0 ]; then
  rm -f "$root"/tmp/busybox-static_*.deb
  in_root sh -c 'cd /tmp && exec "$@"' sh apt-get "${apt_opts[@]}" download -qq busybox-static \
    >>"$out/apt.log" 2>&1 ||
    { tail -30 "$out/apt.log" >&2; exit 1; }
fi
if ((${#packages[@]})); then
  in_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq \
    --no-install-recommends "${packages[@]}" >>"$out/apt.log" 2>&1 ||
    { tail -30 "$out/apt.log" >&2; exit 1; }
fi
in_root apt-get clean
echo "packages installed: $(($(date +%s) - apt_started)) s"
# The newest kernel in the root, by version.
newest_kernel() {
  local kernels=("$root"/boot/vmlinuz-*)
  [ -e "${kernels[0]}" ] || { echo "no kernel in $root/boot" >&2; exit 1; }
  printf '%s\n' "${kernels[@]##*/vmlinuz-}" | sort -V | tail -1
}
# The kernel and initramfs-tools installed in one apt run leave the initramfs to a deferred
# trigger that, under proot, made none (and raspi-firmware, which copies the kernel and the
# initramfs to the boot partition when the initramfs is made, then had nothing to copy).
# Under proot mkinitramfs cannot work at all (coreutils' statx calls escape proot's path
# translation, so every copy_exec fails quietly and the initramfs has no program): the
# initramfs is then made on the host from busybox-static and the root's own modules
# (arm64-initramfs.sh). With chroot, initramfs-tools makes it as on any Debian system.
if [ "$rootfs_only" = 0 ]; then
  for kernel in "$root"/boot/vmlinuz-*; do
    [ -e "$kernel" ] || { echo "no kernel in $root/boot" >&2; exit 1; }
    version=${kernel##*/vmlinuz-}
    initramfs_started=$(date +%s)
    if [ "$use_proot" = 1 ]; then
      packaging/image/arm64-initramfs.sh --root "$root" --kernel "$version" \
        --busybox "$(ls "$root"/tmp/busybox-static_*.deb)" --out "$root/boot/initrd.img-$version"
    else
      [ -s "$root/boot/initrd.img-$version" ] && continue
      rm -f "$root/boot/initrd.img-$version.new"
      in_root update-initramfs -c -k "$version" >>"$out/apt.log" 2>&1 ||
        { tail -30 "$out/apt.log" >&2; exit 1; }
    fi
    echo "initramfs for $version: $(($(date +%s) - initramfs_started)) s"
  done
  rm -f "$root"/tmp/busybox-static_*.deb
  # An initramfs without a shell cannot run its /init ("Failed to execute /init" at boot).
  for initrd in "$root"/boot/initrd.img-*; do
    [ -e "$initrd" ] || { echo "no initramfs in $root/boot" >&2; exit 1; }
    case "$(head -c 4 "$initrd" | od -An -tx1 | tr -d ' \n')" in
      1f8b*) unpack=(zcat) ;;
      28b52ffd) unpack=(zstd -dcq) ;;
      *) unpack=(cat) ;;
    esac
    # Listed first, then searched: grep -q stopping early would fail the pipe (pipefail).
    listing=$("${unpack[@]}" "$initrd" | cpio -t 2>/dev/null) ||
      { echo "cannot list $initrd" >&2; exit 1; }
    grep -qE '^(usr/)?bin/(sh|busybox|dash)$' <<<"$listing" || {
      echo "$initrd has no shell: it would not boot (see packaging/README.md, arm64)." >&2
      exit 1
    }
  done
fi
if [ "$base_only" = 1 ]; then
  touch "$base_mark"
  echo "base root: $root ($(du -sh "$root" | cut -f1)), $(($(date +%s) - started)) s; next: --reuse-base"
  exit 0   # the trap unmounts /proc
fi
rm -f "$root/tmp/"*.deb

# The box: its own name, DHCP on every wired port, the UI on the console instead of a login prompt,
# no root password (locked), journald in memory only (nothing about the subscriber on disk).
echo stb >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tstb\n' >"$root/etc/hosts"
cat >"$root/etc/systemd/network/20-wired.network" <<'NET'
[Match]
Type=ether

[Network]
DHCP=yes
NET
in_root systemctl enable systemd-networkd systemd-resolved >/dev/null 2>&1
in_root systemctl mask getty@tty1.service >/dev/null 2>&1
in_root systemctl enable stb-app.service >/dev/null 2>&1
in_root passwd -l root >/dev/null
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$root/etc/systemd/journald.conf.d/volatile.conf"
[ -n "$config" ] && install -m 0644 "$config" "$root/etc/stb-app/config.toml"
rm -f "$root/usr/sbin/policy-rc.d"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

if [ "$use_proot" = 1 ]; then
  rm -f "$root/bin/systemd-tmpfiles"
  in_root dpkg-divert --local --rename --remove /bin/systemd-tmpfiles >/dev/null
fi

# What the image must hold, checked inside it.
check() { in_root "$@" || { echo "image check failed: $*" >&2; exit 1; }; }
check test -L /etc/systemd/system/multi-user.target.wants/stb-app.service
check test -L /etc/systemd/system/getty@tty1.service
check test -f /etc/stb-app/keymap.toml
check stb-app --version

cleanup
trap - EXIT
[ "$use_proot" = 0 ] || rm -f "$root/usr/bin/qemu-aarch64-static"
rootfs_mb=$(( $(du -sm "$root" | cut -f1) * 13 / 10 + 256 ))
if [ "$rootfs_only" = 1 ]; then
  mkfs.ext4 -q -F -L stb-root -d "$root" "$out/rootfs.ext4" "${rootfs_mb}M"
  echo "root filesystem: $root and $out/rootfs.ext4 ($(du -sh "$root" | cut -f1)), $(($(date +%s) - started)) s"
  exit 0
fi

boot_mb=256
root_mb=$((size_mb - boot_mb - 4))
((root_mb >= rootfs_mb)) || { echo "--size-mb too small: the root needs ${rootfs_mb} MB" >&2; exit 1; }

# Writes the partition table (boot: FAT32, active; root: Linux) and both partitions into $1.
assemble() {
  local img=$1 bootimg=$2 rootimg=$3
  truncate -s "${size_mb}M" "$img"
  sfdisk -q "$img" <<SFDISK
label: dos
start=8192, size=$((boot_mb * 2048)), type=c, bootable
start=$((8192 + boot_mb * 2048)), size=$((root_mb * 2048)), type=83
SFDISK
  dd if="$bootimg" of="$img" bs=1M seek=4 conv=notrunc status=none
  dd if="$rootimg" of="$img" bs=1M seek=$((4 + boot_mb)) conv=notrunc status=none
}

if [ "$arch" = amd64 ]; then
  # --- PC disk image: MBR (syslinux's), FAT boot partition (syslinux, kernel, initramfs),
  # ext4 root. The BIOS runs the MBR, which runs the active partition's boot sector.
  kernel=$root/boot/vmlinuz-$(newest_kernel)
  initrd=$root/boot/initrd.img-${kernel##*/vmlinuz-}
  [ -f "$initrd" ] || { echo "no initramfs for $kernel" >&2; exit 1; }
  echo "LABEL=stb-root  /  ext4  defaults,noatime  0 1" >"$root/etc/fstab"
  img=$out/stb-amd64.img
  bootimg=$out/boot.vfat
  rootimg=$out/root.ext4
  rm -f "$img" "$bootimg" "$rootimg"
  mkfs.vfat -C -F 32 -n STB-BOOT "$bootimg" $((boot_mb * 1024)) >/dev/null
  # The serial console comes last so systemd's own messages go there (a headless box's
  # service port); tty1 stays free for the UI, the kernel writes to tty3.
  cat >"$out/syslinux.cfg" <<'CFG'
DEFAULT stb
PROMPT 0
TIMEOUT 0
LABEL stb
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL=stb-root rootfstype=ext4 ro quiet console=tty3 console=ttyS0,115200
CFG
  export MTOOLS_SKIP_CHECK=1
  mcopy -i "$bootimg" "$kernel" ::/vmlinuz
  mcopy -i "$bootimg" "$initrd" ::/initrd.img
  mcopy -i "$bootimg" "$out/syslinux.cfg" ::/syslinux.cfg
  syslinux --install "$bootimg"
  mkfs.ext4 -q -F -L stb-root -d "$root" "$rootimg" "${root_mb}M"
  assemble "$img" "$bootimg" "$rootimg"
  # syslinux's MBR code (440 bytes: the partition table after it stays).
  dd if=/usr/lib/syslinux/mbr/mbr.bin of="$img" bs=440 count=1 conv=notrunc status=none
  rm -f "$bootimg" "$rootimg" "$out/syslinux.cfg"
  echo "PC disk image: $img (${size_mb} MB, sparse), kernel ${kernel##*/}, $(($(date +%s) - started)) s"
  exit 0
fi

# --- Raspberry Pi 4 SD image: FAT boot partition (firmware, kernel, DTBs), ext4 root. ---
cat >"$root/etc/fstab" <<'FSTAB'
LABEL=stb-root  /               ext4  defaults,noatime  0 1
LABEL=STB-BOOT  /boot/firmware  vfat  defaults          0 2
FSTAB
# The Pi's boot partition, filled here rather than by raspi-firmware's kernel hook: under proot
# the hook finds no kernel (coreutils' statx calls do not go through proot's path
# translation, so its `ls /boot/vmlinuz-*` fails) and leaves the partition without one.
# The firmware's blobs, the newest kernel and its initramfs under the names config.txt
# gives, and the board's device trees.
version=$(newest_kernel)
[ -s "$root/boot/initrd.img-$version" ] || { echo "no initramfs for $version in $root/boot" >&2; exit 1; }
mkdir -p "$root/boot/firmware"
cp "$root"/usr/lib/raspi-firmware/* "$root/boot/firmware/"
cp "$root/boot/vmlinuz-$version" "$root/boot/firmware/vmlinuz"
cp "$root/boot/initrd.img-$version" "$root/boot/firmware/initrd.img"
cp "$root/usr/lib/linux-image-$version"/broadcom/bcm27*.dtb "$root/boot/firmware/"
cat >"$root/boot/firmware/config.txt" <<'CFG'
# Raspberry Pi 4, 64-bit kernel from Debian; KMS display driver for Slint's linuxkms backend.
arm_64bit=1
enable_uart=1
upstream_kernel=1
kernel=vmlinuz
initramfs initrd.img
dtoverlay=vc4-kms-v3d
disable_overscan=1
CFG
echo "console=tty3 root=LABEL=stb-root rootfstype=ext4 rootwait quiet fsck.repair=yes" \
  >"$root/boot/firmware/cmdline.txt"

img=$out/stb-rpi4-arm64.img
bootimg=$out/boot.vfat
rootimg=$out/root.ext4
rm -f "$img" "$bootimg" "$rootimg"
mkfs.vfat -C -F 32 -n STB-BOOT "$bootimg" $((boot_mb * 1024)) >/dev/null
MTOOLS_SKIP_CHECK=1 mcopy -s -i "$bootimg" "$root/boot/firmware/"* ::/
# The boot files live on the FAT partition only.
find "$root/boot/firmware" -mindepth 1 -delete
mkfs.ext4 -q -F -L stb-root -d "$root" "$rootimg" "${root_mb}M"
assemble "$img" "$bootimg" "$rootimg"
rm -f "$bootimg" "$rootimg"
echo "SD image: $img (${size_mb} MB), $(($(date +%s) - started)) s"
