#!/usr/bin/env bash
# Chromium for the dashboard's browser test (test/dashboard/browser.test.ts drives Debian's
# /usr/bin/chromium through playwright-core; no browser download from the network).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi
