"""Secrets Manager reads for the Lambda functions (ingress, worker, webhook registration).

ECS injects secrets as environment variables when a task starts; Lambda has no
such thing, so the functions read them themselves:

* :class:`SecretCache` - ``GetSecretValue`` with a per-secret TTL, one client per
  cache, thread-safe. A failed refresh keeps serving the last good value (and
  logs), so a Secrets Manager blip does not take the webhook down; a failure with
  nothing cached is remembered for a few seconds (no API call per request).
* :func:`load_secret_environment` - the worker's cold start: ``HERMES_AWS_SECRET_ARNS``
  holds ``{"ENV_NAME": "secret-arn", ...}`` and each value is put into the
  environment, where Hermes's config (``${ENV_NAME}``) finds it.
* :func:`is_placeholder` - the value the constructs store in secrets nobody has
  filled in yet (:data:`hermes_aws.placeholders.PLACEHOLDER`).

boto3 is imported only when a client is first needed; it honours
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` itself (tests point it
at a moto server). Secret values are never logged or put in exception messages.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from hermes_aws.placeholders import PLACEHOLDER

logger = logging.getLogger(__name__)

SECRET_ARNS_ENV = "HERMES_AWS_SECRET_ARNS"
DEFAULT_TTL_SECONDS = 300.0
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretError(Exception):
    """A secret could not be read. The message names the secret and the AWS error code only."""

    def __init__(self, secret_id: str, code: str) -> None:
        self.secret_id = secret_id
        self.code = code
        super().__init__(f"cannot read secret {secret_id}: {code}")


def is_placeholder(value: str | None) -> bool:
    """True when ``value`` still holds (or contains) the constructs' placeholder."""
    return value is not None and PLACEHOLDER in value


def make_client(service: str = "secretsmanager") -> Any:
    import boto3  # deferred: keeps importing this module cheap
    from botocore.config import Config

    return boto3.client(service, config=Config(
        connect_timeout=3, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}))


class SecretCache:
    """``get(secret_id)`` -> the secret string, cached for ``ttl_seconds``."""

    def __init__(self, client: Any = None, ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic, *,
                 failure_ttl_seconds: float = 5.0) -> None:
        self._client = client
        self.ttl_seconds = ttl_seconds
        self.failure_ttl_seconds = failure_ttl_seconds
        self.clock = clock
        self._values: dict[str, tuple[str, float]] = {}  # secret id -> (value, fetched at)
        # secret id -> (error code, failed at): with no value to fall back on, a failure is
        # remembered briefly so that a flood of requests cannot turn into a flood of API calls.
        self._failures: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.fetches = 0  # GetSecretValue calls made (for tests and benchmarks)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client()
        return self._client

    def get(self, secret_id: str) -> str:
        """The secret's current string value (``SecretBinary`` is decoded as UTF-8)."""
        if not secret_id:
            raise ValueError("secret id is empty")
        with self._lock:
            cached = self._values.get(secret_id)
            now = self.clock()
            if cached is not None and now - cached[1] < self.ttl_seconds:
                return cached[0]
            failed = self._failures.get(secret_id)
            if cached is None and failed is not None and now - failed[1] < self.failure_ttl_seconds:
                raise SecretError(secret_id, failed[0])
            try:
                value = self._fetch(secret_id)
            except SecretError as exc:
                if cached is None:
                    self._failures[secret_id] = (exc.code, now)
                    raise
                logger.warning("%s; serving the value cached %.0fs ago", exc, now - cached[1])
                # Try again after a short pause rather than on every call.
                self._values[secret_id] = (cached[0], now - self.ttl_seconds + min(30.0, self.ttl_seconds))
                return cached[0]
            self._values[secret_id] = (value, now)
            self._failures.pop(secret_id, None)
            return value

    def invalidate(self, secret_id: str | None = None) -> None:
        with self._lock:
            if secret_id is None:
                self._values.clear()
                self._failures.clear()
            else:
                self._values.pop(secret_id, None)
                self._failures.pop(secret_id, None)

    def _fetch(self, secret_id: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        self.fetches += 1
        try:
            resp = self.client.get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            raise SecretError(secret_id, exc.response.get("Error", {}).get("Code", "ClientError")) from None
        except BotoCoreError as exc:
            raise SecretError(secret_id, type(exc).__name__) from None
        if resp.get("SecretString") is not None:
            return resp["SecretString"]
        binary = resp.get("SecretBinary")
        if binary is not None:
            try:
                return bytes(binary).decode("utf-8")
            except UnicodeDecodeError:
                raise SecretError(secret_id, "SecretBinary is not UTF-8 text") from None
        raise SecretError(secret_id, "secret has no value")


def parse_secret_arns(mapping_json: str | None) -> dict[str, str]:
    """Validate ``{"ENV_NAME": "secret-arn", ...}``; blank means no secrets."""
    if not mapping_json or not mapping_json.strip():
        return {}
    try:
        data = json.loads(mapping_json)
    except ValueError as exc:
        raise ValueError(f"{SECRET_ARNS_ENV} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{SECRET_ARNS_ENV} must be a JSON object of ENV_NAME -> secret ARN")
    bad = sorted(str(k) for k, v in data.items()
                 if not _ENV_NAME.match(str(k)) or not isinstance(v, str) or not v.strip())
    if bad:
        raise ValueError(f"{SECRET_ARNS_ENV}: invalid entry/entries: {', '.join(bad)} "
                         "(names must be env var names, values non-empty secret ARNs)")
    return {k: v.strip() for k, v in data.items()}


def load_secret_environment(mapping_json: str | None,
                            environ: MutableMapping[str, str] | None = None, *,
                            cache: SecretCache | None = None) -> list[str]:
    """Put each secret of ``mapping_json`` into ``environ`` (default ``os.environ``).

    Returns the names set, sorted. Overrides existing values (the mapping is the
    source of truth). Raises :class:`SecretError` naming the first unreadable
    secret (ARN and AWS error code, never a value), or ValueError for a bad mapping.
    Placeholders are set like any value: callers check with :func:`is_placeholder`.
    """
    env = os.environ if environ is None else environ
    mapping = parse_secret_arns(mapping_json)
    cache = cache or SecretCache()
    values = {name: cache.get(arn) for name, arn in mapping.items()}  # all or nothing
    env.update(values)
    return sorted(values)


def placeholder_names(environ: MutableMapping[str, str], names: list[str]) -> list[str]:
    """Those of ``names`` whose value in ``environ`` still holds the placeholder."""
    return sorted(n for n in names if is_placeholder(environ.get(n)))
