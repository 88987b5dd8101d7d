#!/usr/bin/env bash
# Regenerate the Python code for the gateway API into OUT (default: the repository root).
# Usage: scripts/gen.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
mkdir -p "$out/gateway/v1"
scripts/protoc.sh --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out"
