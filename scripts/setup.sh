#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine (Debian packages, the Dapr runtime, …).
# Each concern is one idempotent script in scripts/setup.d/, run in name order; a second run costs
# seconds. Set PORTAL_SKIP_SETUP=1 to skip (e.g. when everything is installed by other means).
set -euo pipefail
[ "${PORTAL_SKIP_SETUP:-0}" = "1" ] && exit 0
here="$(cd "$(dirname "$0")" && pwd)"
for s in "$here"/setup.d/*.sh; do
  [ -e "$s" ] || continue
  bash "$s"
done
