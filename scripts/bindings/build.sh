#!/usr/bin/env bash
# Build the Python or Java package with jsii-pacmak into dist/<target>, from
# the compiled library (run `npx projen compile` first). Idempotent: skipped
# when a stamp holding the sha256 of everything packed (the files `npm pack`
# would ship: .jsii, lib/, assets/, package.json...) and of the pacmak version
# matches, so a local `npx projen build` packages each binding once.
#
#   bash scripts/bindings/build.sh python|java
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TARGET="${1:?usage: build.sh python|java}"
OUT="dist/$TARGET"
STAMP="$OUT/.inputs.sha256"
PACMAK="$ROOT/node_modules/.bin/jsii-pacmak"
# Maven's usual cache, shared with the Java example app: pacmak otherwise
# downloads aws-cdk-lib and friends into a fresh temporary repository each run.
MAVEN_REPO_LOCAL="${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}"

die() { echo "bindings:$TARGET: $*" >&2; exit 1; }
case "$TARGET" in python | java) ;; *) die "unknown target (python or java)" ;; esac
[[ -f .jsii ]] || die "no .jsii: run 'npx projen compile' first"
newer="$(find src -name '*.ts' -newer .jsii -print -quit)"
[[ -z "$newer" ]] || echo "bindings:$TARGET: warning: $newer is newer than .jsii; the bindings are built from the last 'npx projen compile'" >&2

inputs_hash() {
  {
    echo "target=$TARGET"
    "$PACMAK" --version 2>/dev/null
    npm pack --dry-run --json --ignore-scripts 2>/dev/null \
      | node -e 'for (const f of JSON.parse(require("fs").readFileSync(0, "utf-8"))[0].files.map((f) => f.path).sort()) console.log(f)' \
      | tr '\n' '\0' | xargs -0 sha256sum
  } | sha256sum | cut -d' ' -f1
}

want="$(inputs_hash)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "bindings:$TARGET: $OUT is up to date"
  exit 0
fi

rm -rf "$OUT"
started=$SECONDS
args=(--target "$TARGET")
[[ "$TARGET" == java ]] && args+=(--maven-local-repository "$MAVEN_REPO_LOCAL")
"$PACMAK" "${args[@]}" || die "jsii-pacmak failed"
echo "$want" >"$STAMP"
echo "bindings:$TARGET: built $OUT in $((SECONDS - started)) s"
