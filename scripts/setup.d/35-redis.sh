#!/usr/bin/env bash
# redis-server (Debian's package) for the Dapr actor state store in the integration tests; the tests start
# their own instance on a free port (a system Redis may own 6379).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
