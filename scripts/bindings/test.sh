#!/usr/bin/env bash
# test:bindings — build the Python and Java packages with jsii-pacmak, run the
# example apps in TypeScript, Python (venv + wheel) and Java (Maven + jar), and
# check that every Python and Java template equals the TypeScript one apart
# from asset hashes and metadata, and that the apps are cdk-nag clean; every
# ```python snippet of README.md must synthesize with the built package.
# Needs the compiled library (`npx projen compile`, which `build` runs first).
#
# The Java chain (pacmak + Maven, mostly JVM start-up and downloads) runs in
# the background while TypeScript and Python run; its log is printed after.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TS_NODE=(node_modules/.bin/ts-node --transpile-only --project test/tsconfig.json)
mkdir -p cdk.out/examples
JAVA_LOG=cdk.out/examples/java-chain.log

step() { # name command...
  local name="$1" started=$SECONDS
  shift
  "$@" || { echo "test:bindings: $name failed" >&2; return 1; }
  echo "test:bindings: $name took $((SECONDS - started)) s"
}

(
  step 'bindings:java' bash scripts/bindings/build.sh java
  step 'examples:java' bash scripts/bindings/java-examples.sh
) >"$JAVA_LOG" 2>&1 &
java_pid=$!
java_shown=0
show_java() { java_shown=1; sed 's/^/[java] /' "$JAVA_LOG"; }
# Whatever happens below, do not leave the Java chain running, and show its log.
trap 'wait "$java_pid" 2>/dev/null || true; [[ $java_shown == 1 ]] || show_java' EXIT

step 'examples:typescript' "${TS_NODE[@]}" scripts/bindings/synth-typescript.ts
step 'bindings:python' bash scripts/bindings/build.sh python
step 'examples:python' bash scripts/bindings/python-examples.sh
JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="$(node -p 'process.versions.node.split(".")[0]')" \
  step 'readme:python' .venv-examples/bin/python scripts/bindings/readme_snippets.py README.md

java_rc=0
wait "$java_pid" || java_rc=$?
show_java
[[ $java_rc -eq 0 ]] || { echo "test:bindings: the Java chain failed (log above, also in $JAVA_LOG)" >&2; exit 1; }

step 'examples:compare' "${TS_NODE[@]}" scripts/bindings/compare-templates.ts python java
