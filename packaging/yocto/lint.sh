#!/usr/bin/env bash
# Lints the layer with oelint-adv (installed in a venv under target/ on first use) and checks
# that the crate list is the one of Cargo.lock.
# Suppressed: homepageping (no network in CI), bbclassextend (the programs make no sense as
# native or nativesdk tools). oelint-constants.json: variables of OE-core classes
# (license_image, bitbake) and meta-rust-bin's cargo_bin that oelint's database lacks.
# Line-level exceptions are marked `# nooelint:` with their reason in the recipes.
set -euo pipefail
cd "$(dirname "$0")"
python3 gen-crates-inc.py --check
venv=../../target/oelint-venv
[ -x "$venv/bin/oelint-adv" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q oelint-adv; }
"$venv/bin/oelint-adv" --release scarthgap --quiet --constantmods +oelint-constants.json \
  --suppress oelint.vars.homepageping --suppress oelint.var.bbclassextend \
  meta-stb/recipes-stb/stb/*.bb meta-stb/recipes-core/images/*.bb
echo "oelint-adv: clean"
