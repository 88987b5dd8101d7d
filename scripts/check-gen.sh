#!/usr/bin/env bash
# Fail when the committed generated code differs from what the proto generates now.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/gen.sh "$tmp"
stale=0
for f in "$tmp"/gateway/v1/*; do
  name=$(basename "$f")
  if ! cmp -s "$f" "gateway/v1/$name"; then
    echo "stale generated file: gateway/v1/$name (run 'make gen' and commit)" >&2
    stale=1
  fi
done
exit $stale
