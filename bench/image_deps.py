"""Image dependency footprint: installed size of the gateway image's Python
dependencies against seed 000's recipe, both resolved as ARM64 wheels for the
image's Python (3.13), side by side.

Run: `npx projen bench` (or `.venv/bin/python bench/image_deps.py`). Needs PyPI.
Installs into .bench/ (cached per recipe); prints figures, asserts nothing.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQ = ROOT / "assets" / "requirements"
CACHE = ROOT / ".bench" / "image-deps"
TOOLS = ROOT / ".bench" / "pip-tools"
# The venv's pip (23.x) gives up resolving hermes-agent[all] with extra
# packages for a foreign platform; a current pip resolves both recipes.
PIP_VERSION = "25.3"
PYTHON_VERSION = "3.13"  # ARG PYTHON_VERSION in assets/Dockerfile
PLATFORMS = ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64"]

RECIPES = {
    # What assets/Dockerfile installs for the gateway target.
    "cdk-hermes-agent gateway": ["-r", str(REQ / "gateway.txt"), "-c", str(REQ / "constraints.txt")],
    # Seed 000's Dockerfile: uv pip install "hermes-agent[all]" slack-bolt slack-sdk "anthropic[bedrock]>=0.39.0"
    # (hermes-agent pinned to the same release so only the recipe differs).
    "seed 000 recipe": ["hermes-agent[all]==0.19.0", "slack-bolt", "slack-sdk", "anthropic[bedrock]>=0.39.0"],
}


def pip() -> list[str]:
    python = TOOLS / "bin" / "python"
    if not (TOOLS / f".pip-{PIP_VERSION}").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(TOOLS)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"pip=={PIP_VERSION}"], check=True)
        (TOOLS / f".pip-{PIP_VERSION}").write_text("ok")
    return [str(python), "-m", "pip"]


def install(name: str, args: list[str]) -> Path:
    digest = hashlib.sha256("\0".join(args + [PYTHON_VERSION, PIP_VERSION] + PLATFORMS).encode()).hexdigest()[:12]
    for path in (Path(a) for a in args if a.endswith(".txt")):
        digest = hashlib.sha256((digest + path.read_text()).encode()).hexdigest()[:12]
    target = CACHE / f"{name.replace(' ', '-')}-{digest}"
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        cmd = pip() + ["install", "--quiet", "--disable-pip-version-check", "--no-compile", "--target", str(target),
               "--python-version", PYTHON_VERSION, "--implementation", "cp", "--only-binary=:all:"]
        for platform in PLATFORMS:
            cmd += ["--platform", platform]
        subprocess.run(cmd + args, check=True)
        (target / ".complete").write_text("ok")
    return target


def size_of(path: Path) -> tuple[int, int]:
    total = files = 0
    for root, _dirs, names in os.walk(path):
        for n in names:
            p = Path(root, n)
            if not p.is_symlink():
                total += p.stat().st_size
                files += 1
    return total, files


def distributions(path: Path) -> int:
    return sum(1 for p in path.iterdir() if p.name.endswith(".dist-info"))


def main() -> None:
    print(f"Installed size of Python dependencies, ARM64 wheels for CPython {PYTHON_VERSION} (pip install --target)\n")
    rows = []
    for name, args in RECIPES.items():
        target = install(name, args)
        total, files = size_of(target)
        rows.append((name, total, files, distributions(target)))
    print("recipe | installed MiB | files | distributions")
    print("--- | --- | --- | ---")
    for name, total, files, dists in rows:
        print(f"{name} | {total / 2**20:.1f} | {files} | {dists}")
    ours, seed = rows[0][1], rows[1][1]
    print(f"\nours / seed = {ours / seed:.2f} ({(seed - ours) / 2**20:.1f} MiB smaller)")
    print("The seed's image also installs AWS CLI v2 (not on PyPI, so not measured here); ours syncs with boto3 and ships no CLI.")


if __name__ == "__main__":
    main()
