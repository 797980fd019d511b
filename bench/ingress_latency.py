"""Ingress Lambda latency: cold start and warm acknowledgement, next to an empty handler.

Run: `.venv/bin/python bench/ingress_latency.py [--cold 15] [--warm 500]`.
Prints figures, asserts nothing. Loopback only: starts a moto server (SQS FIFO +
Secrets Manager) in a subprocess on 127.0.0.1 and stops it at the end.

(a) cold start: spawn N fresh Python processes that each import the handler and
    answer one accepted Telegram update (Secrets Manager read + SQS send on the
    emulator included); time from spawn to the handler's response, next to the
    same for `def handler(e, c): return {"statusCode": 200}`. Includes interpreter
    start-up; the Lambda runtime's own bootstrap is not modelled.
(b) warm acknowledgement: M accepted requests in one process (SQS send on the
    emulator included), p50/p99, next to the empty handler; plus the refused path
    (wrong secret token), which never leaves the process, and the accepted path
    with SendMessage answered in-process (the module's own work); the same two for
    Slack (`POST /slack`: v0 signature check over the raw body, event parsing).
Both also list a "boto3 floor" handler: plain boto3 doing the same AWS calls
(GetSecretValue once + SendMessage, clients at module level) with no checks - what
any boto3-based ingress pays; the difference is this module's own overhead.
Every series has its own fresh FIFO queue and the series are interleaved, because
moto's SendMessage slows down as a FIFO queue fills.

The machine is not a Lambda ARM64 Python 3.13 sandbox: compare rows, not absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: the shared _timing module
from _timing import moto_server, pct  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
SECRET = "BenchWebhookSecret0123456789abcdefABCDEF0123456789abcdefABCDEF01"
SLACK_SECRET = "bench0slack0signing0secret0123456"
USER = 4242

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {path!r})
from {module} import handler
t1 = time.perf_counter()
resp = handler(json.loads({event!r}), None)
t2 = time.perf_counter()
sys.stderr.write("DONE %d %.3f %.3f\n" % (resp["statusCode"], (t1 - t0) * 1000, (t2 - t1) * 1000))
sys.stderr.flush()
"""


def make_event(update_id: int, secret: str = SECRET) -> dict[str, Any]:
    update = {"update_id": update_id, "message": {
        "message_id": 1, "date": 1700000000, "text": "hello",
        "from": {"id": USER, "is_bot": False, "first_name": "Ada"},
        "chat": {"id": USER, "type": "private"}}}
    return {"version": "2.0", "rawPath": "/telegram", "isBase64Encoded": False,
            "headers": {"content-type": "application/json", "x-telegram-bot-api-secret-token": secret},
            "requestContext": {"http": {"method": "POST", "path": "/telegram"}},
            "body": json.dumps(update)}


def make_slack_event(n: int, good: bool = True) -> dict[str, Any]:
    """A signed Events API request (a DM); ``good=False`` signs it with another secret."""
    from hermes_aws.channels.slack import compute_signature

    body = json.dumps({"type": "event_callback", "event_id": f"Ev{n}", "team_id": "T1", "event": {
        "type": "message", "channel_type": "im", "channel": "D1", "user": "U1", "text": "hello",
        "ts": f"1700000000.{n:06d}"}}).encode()
    ts = str(int(time.time()))
    return {"version": "2.0", "rawPath": "/slack", "isBase64Encoded": False,
            "headers": {"content-type": "application/json", "x-slack-request-timestamp": ts,
                        "x-slack-signature": compute_signature(SLACK_SECRET if good else "other", ts, body)},
            "requestContext": {"http": {"method": "POST", "path": "/slack"}},
            "body": body.decode()}


def setup_aws(endpoint: str) -> dict[str, str]:
    env = {
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_SESSION_TOKEN": "bench",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }
    os.environ.update(env)
    import boto3

    arn = boto3.client("secretsmanager").create_secret(Name="bench/webhook", SecretString=SECRET)["ARN"]
    slack_arn = boto3.client("secretsmanager").create_secret(Name="bench/slack", SecretString=SLACK_SECRET)["ARN"]
    env.update({
        "HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN": arn,
        "HERMES_AWS_SLACK_SIGNING_SECRET_ARN": slack_arn,
        "HERMES_AWS_SLACK_ALLOWED_USERS": "U1",
        "HERMES_AWS_TELEGRAM_ALLOWED_USERS": str(USER),
        "HERMES_AWS_AGENT_NAME": "Bench",
    })
    os.environ.update(env)
    return env


def new_queue(name: str) -> str:
    """A fresh FIFO queue (see the module doc for why)."""
    import boto3

    return boto3.client("sqs").create_queue(QueueName=f"{name}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]


def queued(queue_url: str) -> int:
    import boto3

    attrs = boto3.client("sqs").get_queue_attributes(QueueUrl=queue_url,
                                                     AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def cold_start(module: str, path: str, env: dict[str, str], update_id: int) -> tuple[float, float, float]:
    """(spawn->response ms, import ms, first call ms) of one fresh process."""
    child_env = {**{k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}, **env}
    code = CHILD.format(path=path, module=module, event=json.dumps(make_event(update_id)))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=child_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = ""
    for line in proc.stderr:
        if line.startswith("DONE "):
            break
    elapsed = (time.perf_counter() - start) * 1000
    proc.wait()
    parts = line.split()
    if len(parts) != 4 or parts[1] != "200":
        raise RuntimeError(f"{module}: unexpected child output {line!r}")
    return elapsed, float(parts[2]), float(parts[3])


@contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """The handler writes one log line per request to fd 1; keep the terminal readable."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


FLOOR = """import json, os, boto3
_sm, _sqs, _secret = boto3.client("secretsmanager"), boto3.client("sqs"), None


def handler(event, context):
    global _secret
    if _secret is None:
        _secret = _sm.get_secret_value(SecretId=os.environ["HERMES_AWS_TELEGRAM_WEBHOOK_SECRET_ARN"])
    update = json.loads(event["body"])
    _sqs.send_message(QueueUrl=os.environ["HERMES_AWS_QUEUE_URL"], MessageBody=event["body"],
                      MessageGroupId="floor", MessageDeduplicationId="floor:%d" % update["update_id"])
    return {"statusCode": 200}
"""


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def warm(n: int, handlers: dict[str, tuple[Handler, int] | tuple[Handler, int, Callable[[int, bool], dict[str, Any]]]]
         ) -> dict[str, list[float]]:
    """n requests per handler, interleaved (request i of every handler, then i+1, ...).

    A handler's optional third item builds its events (default: Telegram updates).
    """
    out: dict[str, list[float]] = {name: [] for name in handlers}
    with stdout_to_devnull():
        for i in range(n + 1):
            for name, (handler, expect, *maker) in handlers.items():
                if maker:
                    event = maker[0](7_000_000 + i, expect == 200)
                else:
                    event = make_event(7_000_000 + i, secret=SECRET if expect == 200 else "wrong")
                t = time.perf_counter()
                resp = handler(event, None)
                elapsed = (time.perf_counter() - t) * 1000
                if resp["statusCode"] != expect:
                    raise RuntimeError(f"{name}: unexpected status {resp['statusCode']}")
                if i:  # request 0 only warms up: clients created, secret cached
                    out[name].append(elapsed)
    return out


class _StubSqs:
    def send_message(self, **kwargs: Any) -> dict[str, str]:
        return {"MessageId": "stub"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=15, help="fresh processes per handler (default 15)")
    parser.add_argument("--warm", type=int, default=500, help="warm requests per handler (default 500)")
    args = parser.parse_args()

    with moto_server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        env = setup_aws(endpoint)
        Path(tmp, "empty_handler.py").write_text('def handler(e, c):\n    return {"statusCode": 200}\n')
        Path(tmp, "boto3_floor.py").write_text(FLOOR)

        # (a) cold: one discarded round, then rounds of (ingress, floor, empty), each on its own queue.
        cold_queues = {"ingress": new_queue("cold-ingress"), "floor": new_queue("cold-floor")}
        spec = {"hermes_aws.lambda_ingress": ("hermes_aws.lambda_ingress", str(ASSETS), "ingress"),
                "boto3 floor": ("boto3_floor", tmp, "floor"),
                "empty handler": ("empty_handler", tmp, "floor")}
        cold: dict[str, list[tuple[float, float, float]]] = {name: [] for name in spec}
        for i in range(args.cold + 1):
            for name, (module, path, queue) in spec.items():
                result = cold_start(module, path, {**env, "HERMES_AWS_QUEUE_URL": cold_queues[queue]},
                                    1_000_000 + i)
                if i:
                    cold[name].append(result)

        # (b) warm, in this process, interleaved.
        sys.path.insert(0, str(ASSETS))
        sys.path.insert(0, tmp)
        from hermes_aws import lambda_ingress  # noqa: E402

        warm_queues = {"ingress": new_queue("warm-ingress"), "floor": new_queue("warm-floor")}
        os.environ["HERMES_AWS_QUEUE_URL"] = warm_queues["floor"]
        from boto3_floor import handler as floor  # noqa: E402  (reads the queue URL per call)
        from empty_handler import handler as empty  # noqa: E402

        def ingress(event: dict[str, Any], context: Any) -> dict[str, Any]:
            os.environ["HERMES_AWS_QUEUE_URL"] = warm_queues["ingress"]
            try:
                return lambda_ingress.handler(event, context)
            finally:
                os.environ["HERMES_AWS_QUEUE_URL"] = warm_queues["floor"]

        lambda_ingress.reset()
        results = warm(args.warm, {
            "ingress, accepted (SendMessage on moto)": (ingress, 200),
            "boto3 floor (SendMessage on moto)": (floor, 200),
        })
        # The ingress's own work, with nothing else running: SendMessage answered in-process.
        sqs, lambda_ingress._sqs_client = lambda_ingress._sqs_client, _StubSqs()
        results.update(warm(args.warm, {
            "ingress, accepted (SendMessage stubbed)": (ingress, 200),
            "ingress, refused (wrong secret, 403)": (ingress, 403),
            "ingress, Slack accepted (SendMessage stubbed)": (ingress, 200, make_slack_event),
            "ingress, Slack refused (bad signature, 403)": (ingress, 403, make_slack_event),
            "empty handler": (empty, 200),
        }))
        lambda_ingress._sqs_client = sqs
        counts = {f"{kind} {name}": queued(url) for kind, queues in (("cold", cold_queues), ("warm", warm_queues))
                  for name, url in queues.items()}

    print(f"Ingress latency - Python {platform.python_version()} on {platform.machine()} "
          f"({os.cpu_count()} CPUs), moto server on loopback")
    print(f"(a) cold start, {args.cold} fresh processes each (spawn -> handler response)")
    print(f"    {'handler':<28}{'median ms':>11}{'p90 ms':>10}{'import ms':>12}{'1st call ms':>13}")
    for name, rows in cold.items():
        totals = [r[0] for r in rows]
        print(f"    {name:<28}{statistics.median(totals):>11.1f}{pct(totals, 90):>10.1f}"
              f"{statistics.median(r[1] for r in rows):>12.1f}{statistics.median(r[2] for r in rows):>13.1f}")
    print(f"(b) warm acknowledgement, {args.warm} requests each (interleaved)")
    print(f"    {'handler':<48}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, values in results.items():
        print(f"    {name:<48}{pct(values, 50):>9.3f}{pct(values, 99):>9.3f}{max(values):>9.3f}")
    print(f"    messages queued: {counts} (cold: {args.cold + 1} each; warm: {args.warm + 1} each)")


if __name__ == "__main__":
    main()
