#!/usr/bin/env bash
# Regenerates gen/ into a temporary copy of the tree and compares, so that the check never
# touches the working tree and also catches files that should not be in gen/.
#
# Usage: scripts/check-generated.sh [TREE]
#   TREE  a directory holding proto/, buf.yaml, buf.gen.yaml and gen/ (default: this repository).
#         buf and the ts-proto plugin always come from this repository's node_modules; the
#         contract tests use TREE to prove the check fails on a deliberately stale copy.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tree="$(cd "${1:-$root}" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp -r "$tree/proto" "$tree/buf.yaml" "$tree/buf.gen.yaml" "$tmp/"
mkdir -p "$tmp/node_modules/.bin"
ln -s "$root/node_modules/.bin/protoc-gen-ts_proto" "$tmp/node_modules/.bin/protoc-gen-ts_proto"
(cd "$tmp" && "$root/node_modules/.bin/buf" generate)
if ! diff -r "$tmp/gen" "$tree/gen" >"$tmp/diff.txt"; then
  head -50 "$tmp/diff.txt"
  echo "gen/ is stale: run 'make generate' and commit the result" >&2
  exit 1
fi
echo "gen/ is up to date"
