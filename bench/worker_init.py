"""Lambda worker cold init: Hermes's import next to our own work, as a table.

Run: `.venv/bin/python bench/worker_init.py [--runs 5] [--skills 20]`.
Prints figures, asserts nothing. Loopback only: starts a moto server (Secrets
Manager, S3, DynamoDB) in a subprocess on 127.0.0.1 and stops it at the end.

Every run is a fresh Python process (nothing cached in memory; the OS file
cache is warm after the first run, as it is for Lambda's image cache), and each
row is the median over the runs, with min-max:

* interpreter start-up: ``python -c pass``, for scale;
* Hermes import: ``import run_agent`` plus what the runner imports to build an
  agent (``hermes_cli.runtime_provider``, ``hermes_cli.tools_config``, ...);
* our own cold start, in the order ``hermes_aws.lambda_worker.cold_start`` does
  it: import of boto3 + our modules, secrets into the environment (two
  ``GetSecretValue`` on moto), settings document -> ``HERMES_HOME``, the first
  workspace sync (``--skills`` skills + 2 memory files downloaded from S3), the
  warm-invocation check (two ``ListObjectsV2``, nothing downloaded);
* the first ``AIAgent`` construction after the import (tool registry, prompt
  pieces; no network: the model's context length is configured).

Then the packages with the largest cumulative import time in the Hermes import
(``python -X importtime``; a package's time includes what it imports). The machine is not a Lambda ARM64 sandbox (and
moto is not S3): compare rows, not absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: the shared _timing module
from _timing import moto_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"

HERMES_IMPORT = r"""
import json, sys, time
t0 = time.perf_counter()
import run_agent
import hermes_cli.config, hermes_cli.runtime_provider, hermes_cli.tools_config, hermes_cli.fallback_config
import hermes_constants, model_tools, toolsets
t1 = time.perf_counter()
import openai  # what the first AIAgent loads lazily (lambda_worker.preimport_hermes does this at init)
t2 = time.perf_counter()
sys.stderr.write("RESULT " + json.dumps({"hermes_import": (t1 - t0) * 1000, "sdk_import": (t2 - t1) * 1000}) + "\n")
"""

OWN_INIT = r"""
import json, os, sys, time
sys.path.insert(0, {assets!r})
T = {{}}
def lap(name, t0):
    T[name] = (time.perf_counter() - t0) * 1000
    return time.perf_counter()

t = time.perf_counter()
import boto3
from hermes_aws import lambda_worker
from hermes_aws.home import Settings, prepare_home
from hermes_aws.secrets import SecretCache, load_secret_environment, make_client
from hermes_aws.sessions import SessionStore
from hermes_aws.workspace import Workspace
t = lap("imports", t)
cache = SecretCache(client=make_client())
load_secret_environment(os.environ["HERMES_AWS_SECRET_ARNS"], os.environ, cache=cache)
t = lap("secrets", t)
home = os.environ["HERMES_HOME"]
prepared = prepare_home(__import__("pathlib").Path(home), Settings.from_env(os.environ), os.environ)
os.environ["TERMINAL_CWD"] = str(prepared.context_dir)
t = lap("home", t)
SessionStore.from_env(os.environ, client=boto3.client("dynamodb"))
ws = Workspace.from_env(os.environ, __import__("pathlib").Path(home))
t = lap("clients", t)
first = ws.pull()
t = lap("sync_first", t)
again = ws.pull()
t = lap("sync_warm", t)
assert first.downloaded == {files} and again.downloaded == 0, (first, again)
lambda_worker.preimport_hermes(Settings.from_env(os.environ).config)
t = time.perf_counter()
from hermes_aws.agent_runner import build_agent
agent = build_agent(session_id="bench", user_id="1", chat_id="1", chat_type="private")
t = lap("agent_build", t)
agent.close()
agent = build_agent(session_id="bench-2", user_id="1", chat_id="1", chat_type="private")
t = lap("agent_build_warm", t)
agent.close()
sys.stderr.write("RESULT " + json.dumps(T) + "\n")
"""

ROWS = [
    ("interpreter", "python start-up (python -c pass)", "scale"),
    ("hermes_import", "Hermes import (run_agent, hermes_cli, model_tools, toolsets)", "Hermes"),
    ("sdk_import", "model SDK import (openai), pre-imported at init", "Hermes"),
    ("imports", "import boto3 + hermes_aws modules", "ours"),
    ("secrets", "secrets -> environment (2 x GetSecretValue)", "ours"),
    ("home", "settings document -> HERMES_HOME", "ours"),
    ("clients", "DynamoDB + S3 clients", "ours"),
    ("sync_first", "first workspace sync ({files} objects)", "ours"),
    ("sync_warm", "warm workspace check (2 x ListObjectsV2)", "ours (every turn)"),
    ("agent_build", "first AIAgent construction (after the pre-import)", "Hermes"),
    ("agent_build_warm", "next AIAgent construction (warm sandbox)", "Hermes (every turn)"),
]


def base_env(tmp: Path, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not re.match(r"^(AWS_|HERMES_|OPENAI_|ANTHROPIC_|TERMINAL_)", k)}
    env.update({
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
        "HOME": str(tmp), "HERMES_DISABLE_LAZY_INSTALLS": "1", "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def setup_aws(endpoint: str, env: dict[str, str], skills: int, tmp: Path) -> dict[str, str]:
    import boto3

    kw = {"endpoint_url": endpoint, "region_name": "us-east-1",
          "aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
    sm, s3, ddb = boto3.client("secretsmanager", **kw), boto3.client("s3", **kw), boto3.client("dynamodb", **kw)
    model_arn = sm.create_secret(Name="bench/model", SecretString="sk-bench-0123456789")["ARN"]
    token_arn = sm.create_secret(Name="bench/telegram", SecretString="123:bench")["ARN"]
    s3.create_bucket(Bucket="bench-ws")
    for i in range(skills):
        s3.put_object(Bucket="bench-ws", Key=f"skills/skill-{i}/SKILL.md",
                      Body=(f"---\nname: skill-{i}\ndescription: bench skill {i}\n---\n" + "step\n" * 200).encode())
    s3.put_object(Bucket="bench-ws", Key="memories/MEMORY.md", Body=b"likes tea\n" * 50)
    s3.put_object(Bucket="bench-ws", Key="memories/USER.md", Body=b"name: Bench\n")
    ddb.create_table(TableName="bench-sessions", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                           {"AttributeName": "SK", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                                {"AttributeName": "SK", "KeyType": "RANGE"}])
    settings = {"version": 1, "config": {
        "model": {"provider": "custom", "default": "bench-model", "base_url": "http://127.0.0.1:9/v1",
                  "api_key": "${BENCH_MODEL_KEY}", "context_length": 131072},
        "terminal": {"backend": "local", "cwd": str(tmp / "work")},
        "memory": {"memory_enabled": True},
    }, "soul": "Bench persona.", "projectContext": "Bench project.", "secretEnv": ["BENCH_MODEL_KEY"]}
    return {
        "HERMES_AWS_SETTINGS": json.dumps(settings),
        "HERMES_AWS_SECRET_ARNS": json.dumps({"BENCH_MODEL_KEY": model_arn, "BENCH_TELEGRAM": token_arn}),
        "HERMES_AWS_TABLE": "bench-sessions",
        "HERMES_AWS_BUCKET": "bench-ws",
    }


def run_child(code: str, env: dict[str, str], *, cwd: Path, extra_args: tuple[str, ...] = ()) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, *extra_args, "-c", code], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    result = None
    for line in proc.stderr.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return result, proc.stderr


def interpreter_ms(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return (time.perf_counter() - t0) * 1000


def top_imports(stderr: str, n: int = 12) -> list[tuple[str, float]]:
    """Largest cumulative times of third-party/Hermes packages imported (``-X importtime``).

    One row per top-level package (its largest cumulative entry), so nested
    chains (run_agent -> model_tools -> tools.x) are not counted twice by name.
    """
    best: dict[str, float] = {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)", line)
        if not m:
            continue
        name = m.group(4).split(".")[0]
        best[name] = max(best.get(name, 0.0), int(m.group(2)) / 1000)
    rows = [(k, v) for k, v in best.items() if k not in ("run_agent", "site", "encodings")]
    rows.sort(key=lambda r: -r[1])
    return rows[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skills", type=int, default=20)
    args = parser.parse_args()
    files = args.skills + 2

    samples: dict[str, list[float]] = {key: [] for key, _, _ in ROWS}
    with tempfile.TemporaryDirectory(prefix="worker-init-") as tmpdir, moto_server() as endpoint:
        tmp = Path(tmpdir)
        (tmp / "work").mkdir()
        env = base_env(tmp, endpoint)
        env.update(setup_aws(endpoint, env, args.skills, tmp))
        env["PYTHONPATH"] = str(ASSETS)
        for i in range(args.runs):
            samples["interpreter"].append(interpreter_ms(env))
            run_env = {**env, "HERMES_HOME": str(tmp / f"hermes-{i}")}  # a fresh sandbox's /tmp each run
            result, _ = run_child(HERMES_IMPORT, run_env, cwd=tmp)
            for key, value in result.items():
                samples[key].append(value)
            run_env = {**env, "HERMES_HOME": str(tmp / f"hermes-own-{i}")}
            result, _ = run_child(OWN_INIT.format(assets=str(ASSETS), files=files), run_env, cwd=tmp)
            for key, value in result.items():
                samples[key].append(value)
        _, importtime = run_child(HERMES_IMPORT, {**env, "HERMES_HOME": str(tmp / "hermes-it")}, cwd=tmp,
                                  extra_args=("-X", "importtime"))

    print(f"Lambda worker cold init — {platform.python_implementation()} {platform.python_version()} "
          f"on {platform.machine()}, {args.runs} fresh processes per row (median, min-max), moto on loopback")
    print()
    width = max(len(label.format(files=files)) for _, label, _ in ROWS)
    print(f"{'step':<{width}}  {'whose':<18} {'median ms':>10}  {'min-max ms':>15}")
    print("-" * (width + 48))
    own_total = 0.0
    for key, label, whose in ROWS:
        values = samples[key]
        med = statistics.median(values)
        if whose == "ours":
            own_total += med
        print(f"{label.format(files=files):<{width}}  {whose:<18} {med:>10.1f}  "
              f"{min(values):>7.1f}-{max(values):<7.1f}")
    print("-" * (width + 48))
    print(f"{'our own cold start (sum of the ours rows)':<{width}}  {'ours':<18} {own_total:>10.1f}")
    hermes = sum(statistics.median(samples[k]) for k in ("hermes_import", "sdk_import", "agent_build"))
    print(f"{'Hermes (imports + first agent)':<{width}}  {'Hermes':<18} {hermes:>10.1f}")
    print()
    print("Largest packages by cumulative import time (ms, python -X importtime; nested imports overlap):")
    for name, ms in top_imports(importtime):
        print(f"  {name:<45} {ms:>8.1f}")


if __name__ == "__main__":
    main()
