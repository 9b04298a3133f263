#!/usr/bin/env bash
# Lints the layer with oelint-adv (installed in a venv under target/ on first use).
# Suppressed: homepageping (no network in CI), bbclassextend (the programs make no sense as
# native or nativesdk tools).
set -euo pipefail
cd "$(dirname "$0")"
venv=../../target/oelint-venv
[ -x "$venv/bin/oelint-adv" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q oelint-adv; }
"$venv/bin/oelint-adv" --release scarthgap --quiet \
  --suppress oelint.vars.homepageping --suppress oelint.var.bbclassextend \
  meta-stb/recipes-stb/stb/*.bb meta-stb/recipes-core/images/*.bb
echo "oelint-adv: clean"
