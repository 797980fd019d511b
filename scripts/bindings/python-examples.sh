#!/usr/bin/env bash
# The Python consumer: a venv (.venv-examples) with aws-cdk-lib, constructs and
# cdk-nag pinned from PyPI plus the wheel jsii-pacmak built (dist/python), then
# every app in examples/python synthesized into cdk.out/examples/python/<name>.
# Idempotent: pinned requirements are installed only when they (or the
# interpreter) change, the wheel only when its hash changes.
#
#   bash scripts/bindings/python-examples.sh [NAME...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv-examples"
EXAMPLES="$ROOT/examples/python"
PY="${PYTHON:-python3.11}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1

die() { echo "examples:python: $*" >&2; exit 1; }

shopt -s nullglob
wheels=("$ROOT"/dist/python/cdk_hermes_agent-*.whl)
[[ ${#wheels[@]} -eq 1 ]] || die "expected one wheel in dist/python, found ${#wheels[@]}: run 'npx projen bindings:python' first"

if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  command -v "$PY" >/dev/null 2>&1 || die "'$PY' not found (set PYTHON=... to a Python 3.10+)"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi

want="$({ "$VENV/bin/python" -V 2>&1; cat "$EXAMPLES/requirements.txt" "$EXAMPLES/constraints.txt"; } | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]]; then
  rm -f "$VENV/.requirements.sha256" "$VENV/.wheel.sha256"
  "$VENV/bin/python" -m pip install -q -r "$EXAMPLES/requirements.txt" -c "$EXAMPLES/constraints.txt"
  echo "$want" >"$VENV/.requirements.sha256"
fi

wheel_sha="$(sha256sum "${wheels[0]}" | cut -d' ' -f1)"
if [[ "$(cat "$VENV/.wheel.sha256" 2>/dev/null)" != "$wheel_sha" ]]; then
  rm -f "$VENV/.wheel.sha256"
  "$VENV/bin/python" -m pip install -q --no-deps --force-reinstall "${wheels[0]}"
  "$VENV/bin/python" -m pip check >/dev/null || { "$VENV/bin/python" -m pip check >&2; die "pip check failed"; }
  echo "$wheel_sha" >"$VENV/.wheel.sha256"
fi

# The jsii kernel warns about the machine's Node.js release on every start.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="$(node -p 'process.versions.node.split(".")[0]')"
cd "$EXAMPLES"
exec "$VENV/bin/python" synth_examples.py "$ROOT/cdk.out/examples/python" "$@"
