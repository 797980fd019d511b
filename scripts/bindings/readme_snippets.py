"""Run every ```python snippet of a Markdown file against the built Python package.

    .venv-examples/bin/python scripts/bindings/readme_snippets.py README.md

Each snippet is a whole CDK app: it runs in its own process in a temporary
directory (CDK_OUTDIR points there) and must exit 0 and synthesize at least one
template. Failures are reported with the README line the snippet starts on.
Run by `test:bindings` after the venv with the wheel exists.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

FENCE = re.compile(r"^```\s*(\w*)")


def python_snippets(markdown: str) -> list[tuple[int, str]]:
    """(line the code starts on, code) of every fenced block tagged python."""
    snippets: list[tuple[int, str]] = []
    inside: str | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(markdown.splitlines(), start=1):
        fence = FENCE.match(line)
        if not fence:
            if inside == "python":
                body.append(line)
        elif inside is None:
            inside = "python" if fence.group(1) in ("python", "py") else "other"
            start, body = number + 1, []
        else:
            if inside == "python":
                snippets.append((start, "\n".join(body)))
            inside = None
    return snippets


def run(line: int, code: str) -> str | None:
    """None when the snippet synthesized, else what went wrong."""
    with tempfile.TemporaryDirectory(prefix="readme-python-") as tmp:
        out = Path(tmp, "cdk.out")
        script = Path(tmp, f"readme_line_{line}.py")
        script.write_text(code + "\n")
        env = dict(os.environ, CDK_OUTDIR=str(out))
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp, env=env,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            return f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
        templates = sorted(out.glob("*.template.json"))
        if not templates:
            return "ran but synthesized no template (missing app.synth()?)"
        for template in templates:
            json.loads(template.read_text())
    return None


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "README.md")
    snippets = python_snippets(path.read_text())
    if not snippets:
        print(f"readme:python: no python snippets in {path}", file=sys.stderr)
        return 1
    failed = 0
    for line, code in snippets:
        problem = run(line, code)
        if problem:
            failed += 1
            print(f"{path}:{line}: python snippet failed: {problem}", file=sys.stderr)
    print(f"readme:python: {len(snippets) - failed}/{len(snippets)} snippets of {path} synthesized")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
