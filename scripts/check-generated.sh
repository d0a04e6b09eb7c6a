#!/usr/bin/env bash
# Regenerates gen/ into a temporary copy of the tree and compares, so that the check never
# touches the working tree and also catches files that should not be in gen/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/proto" "$root/buf.yaml" "$root/buf.gen.yaml" "$tmp/"
mkdir -p "$tmp/node_modules/.bin"
ln -s "$root/node_modules/.bin/protoc-gen-ts_proto" "$tmp/node_modules/.bin/protoc-gen-ts_proto"
(cd "$tmp" && "$root/node_modules/.bin/buf" generate)
if ! diff -r "$tmp/gen" "$root/gen" >"$tmp/diff.txt"; then
  cat "$tmp/diff.txt" | head -50
  echo "gen/ is stale: run 'make generate' and commit the result" >&2
  exit 1
fi
echo "gen/ is up to date"
