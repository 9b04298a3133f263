#!/usr/bin/env bash
# Checks meta-stb with bitbake as kas/stb-rpi4.yml configures it, without building anything:
# bitbake -p (parse everything), bitbake -e of every recipe of the layer, bitbake -g of the
# image; 0 warnings and 0 errors expected. Then it verifies what the checks should show:
# SRCREV = the commit checked out here, Rust 1.95.0 from meta-rust-bin in stb-app's
# dependencies, the image keeps core-image's packages, licences.
#
#   packaging/yocto/check-bitbake.sh LAYERS_DIR [BUILD_DIR]
#
# LAYERS_DIR holds checkouts named as the kas file's repos (poky, meta-openembedded,
# meta-raspberrypi, meta-rust-bin), each at the commit the kas file pins (`kas checkout
# packaging/yocto/kas/stb-rpi4.yml` makes them; any git clones at those commits do).
# BUILD_DIR (default LAYERS_DIR/build-stb-check) gets conf/ and logs/. meta-stb is the one
# next to this script, and it builds the HEAD of this checkout.
# Needs: a non-root user (bitbake refuses root), the Yocto host tools (python3 with yaml,
# gawk, chrpath, cpio, diffstat, lz4, zstd, rpcgen, file, an en_US.UTF-8 locale). No
# network: BB_NO_NETWORK. One thread by default (BB_NUMBER_THREADS and
# BB_NUMBER_PARSE_THREADS from the environment change that). Not in CI: the parse alone
# takes minutes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kasfile=$here/kas/stb-rpi4.yml
(($# >= 1)) || { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
if [ "$(id -u)" -eq 0 ]; then
  echo "bitbake refuses to run as root: run this as a normal user (e.g. runuser -u USER -- $0 $*)" >&2
  exit 2
fi
layers=$(cd "$1" && pwd)
build=${2:-$layers/build-stb-check}
mkdir -p "$build/conf" "$build/logs"
build=$(cd "$build" && pwd)
srcdir=$(git -C "$here" rev-parse --show-toplevel)
head=$(git -C "$srcdir" rev-parse HEAD)

# conf/bblayers.conf and conf/local.conf from the kas file; the layers must be at its commits.
python3 - "$kasfile" "$layers" "$here/meta-stb" "$build" <<'EOF'
import os, subprocess, sys
try:
    import yaml
except ImportError:
    sys.exit("python3 needs the yaml module (Debian: python3-yaml)")
kas, layers, stb, build = sys.argv[1:]
cfg = yaml.safe_load(open(kas))
bblayers, bad = [], []
for name, repo in cfg["repos"].items():
    if "url" not in repo:  # meta-stb: the repository the kas file is in
        bblayers.append(stb)
        continue
    path = os.path.join(layers, name)
    head = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    if head != repo["commit"]:
        bad.append(f"{path}: at {head or 'no git checkout'}, the kas file pins {repo['commit']}")
    for layer in repo.get("layers") or {".": None}:
        bblayers.append(os.path.normpath(os.path.join(path, layer)))
if bad:
    sys.exit("\n".join(bad))
with open(os.path.join(build, "conf/bblayers.conf"), "w") as f:
    f.write('# Written by check-bitbake.sh from kas/stb-rpi4.yml\nPOKY_BBLAYERS_CONF_VERSION = "2"\n'
            'BBPATH = "${TOPDIR}"\nBBFILES ?= ""\nBBLAYERS = " \\\n')
    f.writelines(f"    {p} \\\n" for p in bblayers)
    f.write('"\n')
with open(os.path.join(build, "conf/local.conf"), "w") as f:
    f.write("# Written by check-bitbake.sh from kas/stb-rpi4.yml\n"
            f'MACHINE = "{cfg["machine"]}"\nDISTRO = "{cfg["distro"]}"\n')
    for text in cfg.get("local_conf_header", {}).values():
        f.write(text)
    f.write('# The check: no network, one thread unless the environment says otherwise.\n'
            'BB_NO_NETWORK = "1"\nBB_NUMBER_THREADS ?= "1"\nBB_NUMBER_PARSE_THREADS ?= "1"\n'
            'CONF_VERSION = "2"\n')
EOF

export BB_NUMBER_THREADS=${BB_NUMBER_THREADS:-1} BB_NUMBER_PARSE_THREADS=${BB_NUMBER_PARSE_THREADS:-1}
set +u
# shellcheck disable=SC1091
. "$layers/poky/oe-init-build-env" "$build" >/dev/null
set -u
export BB_ENV_PASSTHROUGH_ADDITIONS="$BB_ENV_PASSTHROUGH_ADDITIONS BB_NUMBER_PARSE_THREADS"

fail=0
summary=()
# run NAME COMMAND...: output in logs/NAME.out and logs/NAME.err; counts bitbake's
# WARNING/ERROR messages (knotty prints them on stdout and stderr).
run() {
  local name=$1
  shift
  local start=$SECONDS rc=0
  "$@" >"$build/logs/$name.out" 2>"$build/logs/$name.err" || rc=$?
  local warnings errors
  warnings=$(cat "$build/logs/$name.out" "$build/logs/$name.err" | grep -c '^WARNING: ' || true)
  errors=$(cat "$build/logs/$name.out" "$build/logs/$name.err" | grep -c '^ERROR: ' || true)
  summary+=("$(printf '%-28s exit %d, %d warnings, %d errors, %4d s' "$*" "$rc" "$warnings" "$errors" $((SECONDS - start)))")
  if ((rc || warnings || errors)); then
    fail=1
    grep -h -E '^(WARNING|ERROR): ' "$build/logs/$name.out" "$build/logs/$name.err" | head -20 >&2 || true
  fi
  echo "${summary[-1]}"
}
# check DESCRIPTION COMMAND...: a verification of the results.
check() {
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
  else
    echo "FAILED: $what" >&2
    fail=1
  fi
}
envvar() { # FILE VAR: the value of VAR in a bitbake -e dump
  sed -n "s/^$2=\"\\(.*\\)\"\$/\\1/p" "$1"
}
has_words() { # VALUE WORD...: every WORD is a word of VALUE
  local value=" $1 "
  shift
  for w in "$@"; do [[ "$value" == *" $w "* ]] || { echo "  missing: $w" >&2; return 1; }; done
}

run parse bitbake -p
grep -h '^Parsing of ' "$build/logs/parse.out" || true

recipes=$(cd "$here/meta-stb" && ls recipes-*/*/*.bb | sed 's#.*/##; s#_[^_]*\.bb$##; s#\.bb$##' | sort -u)
for r in $recipes; do
  run "env-$r" bitbake -e "$r"
done
pushd "$build/logs" >/dev/null # bitbake -g writes task-depends.dot and pn-buildlist here
run graph bitbake -g stb-image
popd >/dev/null

e=$build/logs
for r in stb-app keyserver content-server; do
  check "$r builds this checkout's HEAD ($head)" test "$(envvar "$e/env-$r.out" SRCREV)" = "$head"
  check "$r: crate list parsed (crate:// in SRC_URI)" \
    test "$(envvar "$e/env-$r.out" SRC_URI | tr ' ' '\n' | grep -c '^crate://')" -gt 700
  check "$r: cargo from meta-rust-bin" has_words "$(envvar "$e/env-$r.out" DEPENDS)" "cargo-bin-cross-aarch64"
done
check "stb-app LICENSE is GPL-3.0-only" test "$(envvar "$e/env-stb-app.out" LICENSE)" = "GPL-3.0-only"
check "servers LICENSE is Apache-2.0 | MIT" test "$(envvar "$e/env-keyserver.out" LICENSE)$(envvar "$e/env-content-server.out" LICENSE)" = "Apache-2.0 | MITApache-2.0 | MIT"
check "stb-app run-time dependencies" has_words "$(envvar "$e/env-stb-app.out" 'RDEPENDS:stb-app')" \
  gstreamer1.0-plugins-base-volume gstreamer1.0-plugins-good-autodetect xkeyboard-config gstreamer1.0-libav
check "stb-image LICENSE is GPL-3.0-only" test "$(envvar "$e/env-stb-image.out" LICENSE)" = "GPL-3.0-only"
check "stb-image keeps core-image's packages and adds stb-app" \
  has_words "$(envvar "$e/env-stb-image.out" IMAGE_INSTALL)" packagegroup-core-boot packagegroup-base-extended stb-app
check "stb-app is in the image's build list" grep -q -x stb-app "$e/pn-buildlist"
check "Rust 1.95.0 (meta-rust-bin) in the image's task graph" \
  grep -q -F -e '"rust-bin-cross-aarch64.do_install" [label="rust-bin-cross-aarch64 do_install\n:1.95.0-r0' \
  "$e/task-depends.dot"
check "cargo 1.95.0 in the graph" grep -q -F '[label="cargo-bin-cross-aarch64 do_install\n:1.95.0-r0' "$e/task-depends.dot"
check "stb-app's sysroot gets meta-rust-bin's cargo (and with it rustc)" \
  grep -q -F '"stb-app.do_prepare_recipe_sysroot" -> "cargo-bin-cross-aarch64.do_populate_sysroot"' "$e/task-depends.dot"
check "no second Rust toolchain compiled from source (scarthgap's rust-native)" \
  bash -c "! grep -q -x -e rust-native -e libstd-rs '$e/pn-buildlist'"

echo
echo "meta-stb at $srcdir ($head), layers in $layers, logs in $e:"
printf '  %s\n' "${summary[@]}"
exit $fail
