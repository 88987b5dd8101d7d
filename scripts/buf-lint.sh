#!/usr/bin/env bash
# Lint the API with buf, offline: protoc builds the descriptor set, buf lints it with the
# rules in buf.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/protoc.sh --include_imports --include_source_info --descriptor_set_out="$tmp/gateway.binpb"
node_modules/.bin/buf lint "$tmp/gateway.binpb" --config buf.yaml --path gateway/v1/gateway.proto
echo "buf lint: ok"
