#!/usr/bin/env bash
# Runs every test of the project: unit, vector, property, integration (real TLS on loopback,
# SQLite and a throwaway PostgreSQL cluster) and fault tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

STB_TEST_POSTGRES_URL=$(scripts/pg-test-cluster.sh start)
export STB_TEST_POSTGRES_URL
trap 'scripts/pg-test-cluster.sh stop' EXIT

cargo test --workspace --locked
