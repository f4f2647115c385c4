#!/usr/bin/env bash
# GPU: a Vulkan driver for Dawn (the `webgpu` package). On a machine without a GPU this is Mesa's
# lavapipe (llvmpipe Vulkan), which Dawn accepts only from bookworm-backports (Mesa 25); plain
# bookworm's Mesa 22.3 is rejected. Idempotent: a second run only checks dpkg.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

[ "${PORTAL_SKIP_GPU_SETUP:-0}" = "1" ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

# Already a backports (or newer) Mesa Vulkan driver: nothing to do.
ver="$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)"
if [ -n "$ver" ] && dpkg --compare-versions "$ver" ge 24 && dpkg -s libvulkan1 >/dev/null 2>&1; then
  exit 0
fi

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
  # Use the mirror this machine is already configured with (deb822 or one-line format).
  mirror="$(grep -rhsoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -v security | head -n1 | tr -d ' ' | sed 's:/*$::' || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  echo "portal setup: adding bookworm-backports from $mirror" >&2
  echo "deb $mirror bookworm-backports main" | $sudo tee /etc/apt/sources.list.d/portal-bookworm-backports.list >/dev/null
  rm -f /tmp/.portal-apt-updated
fi

if [ ! -f /tmp/.portal-apt-updated ] || [ -n "$(find /tmp/.portal-apt-updated -mmin +60 2>/dev/null)" ]; then
  $sudo apt-get update -qq >&2 && touch /tmp/.portal-apt-updated
fi
echo "portal setup: installing mesa-vulkan-drivers (bookworm-backports) and libvulkan1" >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers >&2
apt_install libvulkan1
