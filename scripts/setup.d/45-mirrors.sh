#!/usr/bin/env bash
# Real third-party servers and clients the source tests (issue 14) run against: nginx as an HTTP/HTTPS
# mirror, tinyproxy as an HTTP proxy, and aria2c as an independent Metalink client. Tests start their own
# instances on free ports with temporary configs (nothing here is enabled as a system service).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || need+=(tinyproxy)
command -v aria2c >/dev/null 2>&1 || need+=(aria2)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
