#!/usr/bin/env bash
# Builds (first run, several minutes) or reuses the pinned Dapr runtime binaries (daprd, placement) under
# $(portal_cache)/dapr-<version>/ for the Dapr integration tests. See scripts/dapr-runtime.sh.
set -euo pipefail
bash "$(dirname "$0")/../dapr-runtime.sh" >/dev/null
