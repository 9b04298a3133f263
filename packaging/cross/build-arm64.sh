#!/usr/bin/env bash
# Cross-builds the three programs for the box's CPU (aarch64), packages arm64 .debs and
# smoke-runs every binary's --version under qemu-aarch64-static. One command, as root (or
# with sudo), from a Debian bookworm amd64 machine:
#
#   packaging/cross/build-arm64.sh                -> target/debian-arm64/*.deb
#   packaging/cross/build-arm64.sh --only stb-app -> target/debian-arm64/stb-app_*.deb
#
# --only PKG (repeatable) builds just those packages: the Raspberry Pi image needs only
# stb-app, and the servers' release cross-build costs as much time again on two cores.
#
# The Debian mirror is the one apt uses here (scripts/debian-mirror.sh; STB_DEBIAN_MIRROR
# overrides it).
#
# The arm64 system libraries (GStreamer for the player; fontconfig, xkbcommon, libinput and
# udev for Slint's linuxkms backend) come from a bookworm arm64 sysroot in target/arm64-sysroot
# made by `debootstrap --foreign` and dpkg-deb -x (unpacked, never run). Installing the `:arm64` -dev packages
# into the host instead (Debian multiarch) removes the host's own GStreamer -dev packages,
# which are not co-installable, and breaks the native build. Measured time: packaging/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
packages=()
while (($#)); do
  case "$1" in
    --only)
      case "${2:-}" in
        stb-app | keyserver | content-server) packages+=("$2") ;;
        *) echo "--only takes stb-app, keyserver or content-server, not '${2:-}'" >&2; exit 2 ;;
      esac
      shift 2 ;;
    *) echo "usage: $0 [--only stb-app|keyserver|content-server]..." >&2; exit 2 ;;
  esac
done
((${#packages[@]})) || packages=(keyserver content-server stb-app)
TARGET=aarch64-unknown-linux-gnu
SYSROOT=$PWD/target/arm64-sysroot
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
started=$(date +%s)

need=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static debootstrap file)
scripts/install-deps.sh "${need[@]}"
rustup target add "$TARGET" >/dev/null
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb

dev=(libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
     libfontconfig-dev libxkbcommon-dev libinput-dev libudev-dev)
mkdir -p target
if [ ! -f "$SYSROOT/.complete" ]; then
  $SUDO rm -rf "$SYSROOT"
  $SUDO debootstrap --foreign --variant=minbase --arch=arm64 --include="$(IFS=,; echo "${dev[*]}")" \
    bookworm "$SYSROOT" "$(scripts/debian-mirror.sh)" >target/arm64-sysroot.log 2>&1 ||
    { tail -20 target/arm64-sysroot.log >&2; exit 1; }
  # The first stage unpacked only the base system; the -dev packages and their dependencies
  # are downloaded next to it: unpack them too (no maintainer script ever runs).
  for deb in "$SYSROOT"/var/cache/apt/archives/*.deb; do
    $SUDO dpkg-deb -x "$deb" "$SYSROOT"
  done
  # The C library's development files come from the cross toolchain (libc6-dev-arm64-cross,
  # the same glibc); the sysroot's copies (linker scripts naming host paths, static libc.a)
  # would shadow them on the -L path pkg-config adds, so they go.
  for deb in "$SYSROOT"/var/cache/apt/archives/libc6-dev_*.deb; do
    dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -v '/$' | while read -r f; do
      $SUDO rm -f "$SYSROOT/${f#./}"
    done
  done
  # Absolute symlinks (libfoo.so -> /lib/...) must resolve inside the sysroot.
  $SUDO find "$SYSROOT/usr/lib/aarch64-linux-gnu" -maxdepth 1 -type l -lname '/*' | while read -r l; do
    $SUDO ln -sfn "$SYSROOT$(readlink "$l")" "$l"
  done
  $SUDO touch "$SYSROOT/.complete"
fi
sysroot_ready=$(date +%s)

# The cross linker and C compiler (aws-lc-sys, SQLite), with the sysroot's libraries and
# their own dependencies (rpath-link); pkg-config answers for the sysroot only.
libs="$SYSROOT/usr/lib/aarch64-linux-gnu"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-rpath-link,$libs -C link-arg=-Wl,-rpath-link,$SYSROOT/lib/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_SYSROOT_DIR=$SYSROOT
export PKG_CONFIG_LIBDIR=$libs/pkgconfig:$SYSROOT/usr/share/pkgconfig

cargo build --release --locked --target "$TARGET" $(printf -- '-p %s ' "${packages[@]}")
built=$(date +%s)

# cargo-deb's $auto (dpkg-shlibdeps) cannot see into the sysroot: the shared-library
# dependencies are worked out here instead, from each binary's DT_NEEDED entries and the
# sysroot package that ships each library.
index=$SYSROOT/.soname-index
if [ ! -s "$index" ]; then
  for deb in "$SYSROOT"/var/cache/apt/archives/*.deb; do
    pkg=$(dpkg-deb -f "$deb" Package)
    case "$pkg" in *-dev) continue ;; esac
    ver=$(dpkg-deb -f "$deb" Version | sed 's/^[0-9]*://; s/-[^-]*$//')
    dpkg-deb -c "$deb" | sed 's/ -> .*//' | awk '{print $NF}' | { grep -E '/lib[^/]*\.so\.[0-9.]+$' || true; } |
      sed "s|.*/||; s|\$| $pkg $ver|"
  done | sort -u >"$index.tmp"
  mv "$index.tmp" "$index"
fi
shlib_depends() {
  readelf -d "$@" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort -u | while read -r so; do
    hit=$(grep -m1 "^$so " "$index" || true)
    [ -n "$hit" ] || { echo "no package ships $so in the sysroot" >&2; exit 1; }
    set -- $hit
    echo "$2 (>= $3)"
  done | sort -u | paste -sd, | sed 's/,/, /g'
}

out=target/debian-arm64
rm -rf "$out" target/debian-arm64.work
mkdir -p "$out"
for pkg in "${packages[@]}"; do
  cargo deb --no-build --target "$TARGET" -p "$pkg" -o "$out/" 2>/dev/null >/dev/null
  deb=$(ls -1 "$out"/"${pkg}"_*_arm64.deb)
  work=target/debian-arm64.work/$pkg
  mkdir -p "$work"
  dpkg-deb -R "$deb" "$work"
  bins=$(find "$work/usr/bin" -type f)
  libs=$(shlib_depends $bins)
  # The computed libraries first, then cargo-deb's list without the packages named again.
  rest=$(sed -n 's/^Depends: //p' "$work/DEBIAN/control" | tr ',' '\n' | sed 's/^ *//' |
    while read -r d; do
      case ", $libs," in *", ${d%% *} ("*) ;; *) echo "$d" ;; esac
    done | paste -sd, | sed 's/,/, /g')
  sed -i "s|^Depends: .*|Depends: $libs${rest:+, $rest}|" "$work/DEBIAN/control"
  dpkg-deb --root-owner-group -b "$work" "$deb" >/dev/null
  echo "$(basename "$deb"): $(dpkg-deb -f "$deb" Depends)"
done
rm -rf target/debian-arm64.work
lintian --fail-on error --suppress-tags no-manual-page,no-changelog,initial-upload-closes-no-bugs \
  "$out"/*.deb

# Smoke runs: each arm64 binary with the sysroot's loader and libraries, under qemu.
bins=()
for pkg in "${packages[@]}"; do
  case "$pkg" in
    keyserver) bins+=(keyserver keyserver-load) ;;
    content-server) bins+=(content-server content-load) ;;
    stb-app) bins+=(stb-app) ;;
  esac
done
for bin in "${bins[@]}"; do
  file "target/$TARGET/release/$bin" | grep -q 'ARM aarch64' ||
    { echo "$bin is not an aarch64 binary" >&2; exit 1; }
  qemu-aarch64-static -L "$SYSROOT" "target/$TARGET/release/$bin" --version
done
echo "arm64: sysroot $((sysroot_ready - started)) s, build $((built - sysroot_ready)) s, $(($(date +%s) - started)) s in all"
