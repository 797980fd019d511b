"""Synthesizes every Python example app (or the ones named) into
OUTDIR/<name>, and writes the app's cdk-nag findings next to the templates,
for scripts/bindings/compare-templates.ts.

    python synth_examples.py OUTDIR [NAME ...]
"""
import json
import os
import shutil
import sys
import time

from agentcore_agent import agentcore_agent_example
from aws_cdk import App
from fargate_gateway import fargate_gateway_example
from lambda_agent import lambda_agent_example
from platform_team import nag_findings, platform_team_example

# Same names as examples/typescript/index.ts.
EXAMPLES = {
    "fargate-gateway": fargate_gateway_example,
    "lambda-agent": lambda_agent_example,
    "agentcore-agent": agentcore_agent_example,
    "platform-team": platform_team_example,
}


def main(outroot: str, names: list[str]) -> None:
    for name in names or list(EXAMPLES):
        if name not in EXAMPLES:
            sys.exit(f"unknown example {name!r} (known: {', '.join(EXAMPLES)})")
        outdir = os.path.join(outroot, name)
        shutil.rmtree(outdir, ignore_errors=True)
        started = time.monotonic()
        app = App(outdir=outdir)
        stacks = EXAMPLES[name](app)
        app.synth()
        with open(os.path.join(outdir, "nag-findings.json"), "w", encoding="utf-8") as f:
            json.dump(nag_findings(app), f, indent=1)
        print(f"python {name}: {', '.join(s.stack_name for s in stacks)} ({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
