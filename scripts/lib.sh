#!/usr/bin/env bash
# Functions shared by scripts/setup.d/*.sh.

# apt_install PKG…: installs the Debian packages that are not installed yet (needs root or sudo).
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "portal setup: installing ${missing[*]}" >&2
  if [ ! -f /tmp/.portal-apt-updated ] || [ -n "$(find /tmp/.portal-apt-updated -mmin +60 2>/dev/null)" ]; then
    $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 && touch /tmp/.portal-apt-updated
  fi
  # another apt run (a second setup, unattended-upgrades) may hold dpkg's lock: wait for it instead of failing
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
}

# portal_cache: the project's cache folder for built binaries (outside the clone, so CI reuses it).
portal_cache() {
  local d="${PORTAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portal}"
  mkdir -p "$d"
  echo "$d"
}
