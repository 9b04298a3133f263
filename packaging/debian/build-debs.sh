#!/usr/bin/env bash
# Builds the three Debian packages (amd64, or the host architecture) into target/debian/ and
# runs lintian on them. Uses cargo-deb: the package metadata lives next to each crate
# ([package.metadata.deb]), so there is no second build system to keep in step.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
command -v lintian >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq lintian || sudo apt-get install -y -qq lintian; }
cargo build --release --locked -p keyserver -p content-server -p stb-app
for p in keyserver content-server stb-app; do
  cargo deb --no-build -p "$p" --output target/debian/
done
ls -l target/debian/*.deb
# Errors fail the build; warnings are shown. Suppressed tags: our binaries are Rust (no
# manpages yet) and the changelog is generated.
lintian --fail-on error --suppress-tags no-manual-page,no-changelog,initial-upload-closes-no-bugs \
  target/debian/*.deb
