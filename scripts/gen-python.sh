#!/usr/bin/env bash
# Generates Python message and gRPC stubs for every .proto under proto/, plus grpc.health.v1,
# with protoc and grpc_python_plugin (Debian: protobuf-compiler, protobuf-compiler-grpc;
# the stubs need python3-grpcio and python3-protobuf at run time).
#
# Usage: scripts/gen-python.sh OUTDIR
#   Then put OUTDIR on PYTHONPATH: `import uims.client.v1.client_pb2_grpc`, `import health.v1.health_pb2_grpc`.
#
# The health stubs are generated from grpc-health-check's copy of health.proto with its proto/
# directory as the include root, so the module is health.v1.health_pb2. Generating it as
# grpc/health/v1/... would create a grpc/ directory on sys.path that shadows the real grpc package.
#
# Environment: PROTOC (default /usr/bin/protoc), GRPC_PYTHON_PLUGIN (default /usr/bin/grpc_python_plugin).
set -euo pipefail

if (($# != 1)); then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
protoc="${PROTOC:-/usr/bin/protoc}"
plugin="${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}"
health_root="$root/node_modules/grpc-health-check/proto"

[[ -x "$protoc" ]] || { echo "$protoc not found: apt-get install protobuf-compiler (or set PROTOC)" >&2; exit 1; }
[[ -x "$plugin" ]] || { echo "$plugin not found: apt-get install protobuf-compiler-grpc (or set GRPC_PYTHON_PLUGIN)" >&2; exit 1; }
[[ -f "$health_root/health/v1/health.proto" ]] || { echo "$health_root/health/v1/health.proto not found: run 'make install'" >&2; exit 1; }

mkdir -p "$1"
out="$(cd "$1" && pwd)"
# Only what this script generates is replaced, so stale modules of deleted protos do not linger.
rm -rf "$out/uims" "$out/health"

# protoc finds the well-known types (google/protobuf/*.proto) next to itself; name the
# include directory explicitly when the Debian location exists.
wkt=()
if [[ -f /usr/include/google/protobuf/field_mask.proto ]]; then
  wkt=(-I /usr/include)
elif [[ "$protoc" == /usr/bin/protoc ]]; then
  echo "google/protobuf/field_mask.proto not found: apt-get install libprotobuf-dev (Debian's protoc keeps the well-known types there)" >&2
  exit 1
fi

cd "$root/proto"
mapfile -t protos < <(find uims -name '*.proto' | LC_ALL=C sort)
"$protoc" -I . "${wkt[@]}" \
  --python_out="$out" --grpc_python_out="$out" --plugin=protoc-gen-grpc_python="$plugin" \
  "${protos[@]}"

cd "$health_root"
"$protoc" -I . \
  --python_out="$out" --grpc_python_out="$out" --plugin=protoc-gen-grpc_python="$plugin" \
  health/v1/health.proto

echo "Python stubs for ${#protos[@]} uims files and grpc.health.v1 written to $1"
