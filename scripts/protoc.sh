#!/usr/bin/env bash
# grpc_tools.protoc with the include paths the gateway API needs: proto/ and the
# google/api/*.proto files that googleapis-common-protos ships. Extra arguments pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
export PATH="$(dirname "$py"):$PATH"  # protoc-gen-mypy lives beside the interpreter
gapi=$("$py" -c 'import google.api, os; print(os.path.dirname(os.path.dirname(google.api.__path__[0])))')
exec "$py" -m grpc_tools.protoc -I proto -I "$gapi" "$@" proto/gateway/v1/gateway.proto
