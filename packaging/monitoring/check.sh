#!/usr/bin/env bash
# Checks the key server's Prometheus alerting rules: `promtool check rules` (syntax, PromQL,
# templates) and `promtool test rules` (the unit tests in keyserver-alerts.test.yml).
# Installs Debian's `prometheus` package (which ships promtool) when promtool is missing; the
# Prometheus daemon itself is neither needed nor, where this script can prevent it, started.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v promtool >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # The package's maintainer scripts start (and enable) prometheus.service. A policy-rc.d that
  # answers 101 ("action forbidden") keeps invoke-rc.d and deb-systemd-invoke from starting it.
  # An existing policy (a container's, an administrator's) is left as it is.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from packaging/monitoring/check.sh\nexit 101\n' |
      $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  ../../scripts/install-deps.sh prometheus
fi
# Debian puts promtool in /usr/bin; nothing below needs the daemon or its configuration.
promtool --version 2>&1 | head -n 1

echo "== promtool check rules"
promtool check rules keyserver-alerts.yml
echo "== promtool test rules"
promtool test rules keyserver-alerts.test.yml
