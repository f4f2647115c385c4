#!/usr/bin/env bash
# NATS server for the bus tests and the benchmark (Debian package nats-server; tests start their own
# instance with JetStream on a free port, never the system one).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ] && [ -z "${NATS_SERVER_BIN:-}" ]; then
  apt_install nats-server
fi
