#!/usr/bin/env bash
# Provides pinned Dapr runtime binaries (daprd, placement) for tests and local runs.
#
#   scripts/dapr-runtime.sh          builds (first run) or reuses the cached binaries, prints their folder
#   scripts/dapr-runtime.sh --print  prints the folder if the binaries are cached (exit 1 otherwise)
#
# Binaries live OUTSIDE the clone: $(portal_cache)/dapr-<version>/{daprd,placement,BUILDINFO}, so a
# second run costs milliseconds and CI (fresh clone, same machine) reuses them.
#
# Why a trimmed component set: daprd registers its components in per-component files under
# cmd/daprd/components/, each gated by `allcomponents` (everything, ~130 components: >1000 Go
# packages incl. every cloud SDK) or `stablecomponents` (which has Redis state but not NATS
# JetStream). We copy the downloaded module (the module cache is read-only), keep only the
# registration files Portal needs, strip their build constraints, and build without tags:
#   state.redis (actor state store), pubsub.jetstream (the NATS bus),
#   nameresolution.mdns (self-hosted / tests), nameresolution.kubernetes (k8s),
#   secretstores.kubernetes (k8s default secret store).
# That is the same code `-tags allcomponents` would compile for those components, with none of the rest.
#
# Reminders: Dapr 1.16 still supports placement-backed reminders when the Configuration sets the
# feature `SchedulerReminders: false` (deploy/ and the tests do), so no `scheduler` binary is built.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DAPR_VERSION="${PORTAL_DAPR_VERSION:-1.16.5}"
OUT="$(portal_cache)/dapr-${DAPR_VERSION}"
KEEP_COMPONENTS=(state_redis.go pubsub_jetstream.go nameresolution_mdns.go nameresolution_kubernetes.go secretstores_kubernetes.go)

have() { [ -x "$OUT/daprd" ] && [ -x "$OUT/placement" ] && [ -f "$OUT/BUILDINFO" ]; }

if [ "${1:-}" = "--print" ]; then
  have && { echo "$OUT"; exit 0; }
  exit 1
fi
if have; then echo "$OUT"; exit 0; fi

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[ -x "$GO" ] || { echo "dapr-runtime: Go toolchain not found (set GO=/path/to/go)" >&2; exit 1; }
log() { echo "dapr-runtime: $(date +%H:%M:%S) $*" >&2; }

mkdir -p "$OUT"
LOCK="$OUT/.build.lock"
exec 9>"$LOCK"
if ! flock -n 9; then
  log "another build holds $LOCK; waiting"
  flock 9
  have && { echo "$OUT"; exit 0; }
fi

START=$(date +%s)
log "downloading github.com/dapr/dapr@v${DAPR_VERSION} ($("$GO" version))"
SRC_RO="$("$GO" mod download -json "github.com/dapr/dapr@v${DAPR_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -d "$SRC_RO" ] || { echo "dapr-runtime: module download failed" >&2; exit 1; }

WORK="$OUT/src"
rm -rf "$WORK"
cp -r "$SRC_RO" "$WORK"
chmod -R u+w "$WORK"
COMP="$WORK/cmd/daprd/components"
for f in "$COMP"/*.go; do
  b="$(basename "$f")"
  keep=0
  for k in "${KEEP_COMPONENTS[@]}"; do [ "$b" = "$k" ] && keep=1; done
  if [ $keep -eq 1 ]; then
    sed -i -e '/^\/\/go:build/d' -e '/^\/\/ +build/d' "$f"
  else
    rm -f "$f"
  fi
done
log "kept components: $(cd "$COMP" && ls *.go | tr '\n' ' ')"

LDFLAGS="-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=${DAPR_VERSION} -X github.com/dapr/dapr/pkg/buildinfo.gitversion=v${DAPR_VERSION}"
export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
cd "$WORK"
# -p 2: the machine is shared; -v prints each package as it compiles (progress for the long first build).
for cmd in placement daprd; do
  log "building cmd/$cmd (first build takes several minutes; package names follow)"
  "$GO" build -p "${PORTAL_DAPR_BUILD_JOBS:-2}" -v -trimpath -ldflags "$LDFLAGS" -o "$OUT/$cmd.tmp" "./cmd/$cmd" 2>&1 \
    | tee "$OUT/build-$cmd.log" | awk -v c="$cmd" '{ n++; if (n % 25 == 0) { printf "dapr-runtime: %s: %d packages compiled (%s)\n", c, n, $0; fflush() } }' >&2
  [ "${PIPESTATUS[0]}" -eq 0 ] || { tail -40 "$OUT/build-$cmd.log" >&2; echo "dapr-runtime: go build ./cmd/$cmd failed (log: $OUT/build-$cmd.log)" >&2; exit 1; }
  mv "$OUT/$cmd.tmp" "$OUT/$cmd"
done
cd /
rm -rf "$WORK"
END=$(date +%s)
{
  echo "version=${DAPR_VERSION}"
  echo "go=$("$GO" env GOVERSION)"
  echo "components=${KEEP_COMPONENTS[*]}"
  echo "build_seconds=$((END - START))"
  echo "built_at=$(date -u +%FT%TZ)"
} > "$OUT/BUILDINFO"
log "done in $((END - START))s: $OUT"
echo "$OUT"
