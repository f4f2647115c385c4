#!/usr/bin/env bash
# The Go client examples (examples/go) that the jest suite builds and runs: their modules (from the Go module
# proxy, into the module cache), and protoc with protoc-gen-go, which test/examples/go-proto.test.ts uses to check
# that examples/go/portalpb is what proto/portal.proto generates. Idempotent: a second run costs a second.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
root="$(cd "$(dirname "$0")/../.." && pwd)"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[ -x "$GO" ] || { echo "portal setup: Go toolchain not found (set GO=/path/to/go)" >&2; exit 1; }
command -v protoc >/dev/null 2>&1 || apt_install protobuf-compiler
bin="$(portal_cache)/go-bin"
PROTOC_GEN_GO_VERSION=v1.36.12
if [ ! -x "$bin/protoc-gen-go" ] || [ "$(cat "$bin/.protoc-gen-go-version" 2>/dev/null)" != "$PROTOC_GEN_GO_VERSION" ]; then
  mkdir -p "$bin"
  GOBIN="$bin" "$GO" install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
  echo "$PROTOC_GEN_GO_VERSION" >"$bin/.protoc-gen-go-version"
fi
(cd "$root/examples/go" && "$GO" mod download)
