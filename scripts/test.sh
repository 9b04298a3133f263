#!/usr/bin/env bash
# Runs every test of the project: unit, vector, property and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo test --workspace --locked
