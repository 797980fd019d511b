#!/usr/bin/env bash
# The Java consumer: examples/java (Maven) built against the jar jsii-pacmak put
# in dist/java and aws-cdk-lib from Maven Central, then every example app
# synthesized into cdk.out/examples/java/<name>.
#
#   bash scripts/bindings/java-examples.sh [NAME...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/cdk.out/examples/java"
MAVEN_REPO_LOCAL="${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}"
VERSION="$(node -p 'require(process.argv[1]).version' "$ROOT/package.json")"

die() { echo "examples:java: $*" >&2; exit 1; }

command -v mvn >/dev/null 2>&1 || die "Maven (mvn) not found: install Maven 3.8+ and a JDK 17+"

[[ -f "$ROOT/dist/java/io/github/cdkhermesagent/cdk-hermes-agent/$VERSION/cdk-hermes-agent-$VERSION.jar" ]] \
  || die "no cdk-hermes-agent-$VERSION.jar in dist/java: run 'npx projen bindings:java' first"

# Maven caches what it resolved from dist/java and never looks again for the
# same release version: drop the cached copy so this build's jar is used.
rm -rf "$MAVEN_REPO_LOCAL/io/github/cdkhermesagent/cdk-hermes-agent"
rm -rf "$OUT"

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="$(node -p 'process.versions.node.split(".")[0]')"
mvn -B -q -ntp -Dstyle.color=never -f "$ROOT/examples/java/pom.xml" \
  "-Dmaven.repo.local=$MAVEN_REPO_LOCAL" "-Dcdk-hermes-agent.version=$VERSION" \
  compile exec:java "-Dexec.args=$OUT $*"
