"""A small JSON-over-HTTP client with retries, on the standard library (urllib).

Used for chat platform APIs (Telegram Bot API, later Slack Web API) from the
worker and from the webhook registration custom resource, so it must not need
any third-party package.

Retry policy of :meth:`HttpClient.request_json`:

* **429** - wait what the server asks for: Telegram puts it in the JSON body
  (``{"ok": false, "error_code": 429, "parameters": {"retry_after": N}}``);
  otherwise a ``Retry-After`` header (seconds or an HTTP date) is honoured;
  with neither, the exponential backoff below is used.
* **5xx and connection errors** (refused, reset, timeout) - capped exponential
  backoff: ``base_delay * 2**(n-1)`` up to ``max_delay``, plus optional jitter.
* Anything else (2xx, 3xx, other 4xx) is returned at once.

Attempts stop at ``max_attempts`` or when the next wait would end after
``max_total_wait`` seconds from the first attempt (measured with ``clock``).
A response that is still 429/5xx then is *returned* (the caller decides what an
error means); a connection error is raised as :class:`HttpRequestError`.

Note that a POST is retried after a connection error too, so a request that
reached the server but whose response was lost may be applied twice (for chat
replies a rare duplicate beats a lost answer).

URLs are never logged as given: Telegram URLs carry the bot token in the path
(``/bot<token>/method``), so every URL in a log line or exception message goes
through :func:`redact_url`.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import random
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "hermes-aws/0.1 (+https://github.com/NousResearch/hermes-agent)"
MAX_RESPONSE_BYTES = 4 * 1024 * 1024

# /bot<token>/ in Telegram Bot API URLs (also /file/bot<token>/). A token looks
# like 123456:AA..., but redact whatever sits there.
_BOT_TOKEN_IN_PATH = re.compile(r"(/bot)[^/?#]+")
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@")
_QUERY = re.compile(r"\?.*$", re.S)

Response = tuple[int, Any, dict[str, str]]


def redact_url(url: str) -> str:
    """``url`` safe to log: bot token, user info and query string removed."""
    url = _USERINFO.sub(r"\1<redacted>@", url)
    url = _BOT_TOKEN_IN_PATH.sub(r"\1<redacted>", url)
    return _QUERY.sub("?<redacted>", url)


class HttpRequestError(Exception):
    """The request never got an HTTP response (after all retries)."""

    def __init__(self, method: str, url: str, reason: str, attempts: int) -> None:
        self.method = method
        self.url = redact_url(url)
        self.reason = reason
        self.attempts = attempts
        super().__init__(f"{method} {self.url} failed after {attempts} attempt(s): {reason}")


class HttpClient:
    """JSON requests with retries on 429 / 5xx / connection errors (see module doc).

    ``sleep``, ``clock`` and ``rng`` are injectable so tests never really wait.
    """

    def __init__(
        self,
        *,
        max_attempts: int = 4,
        max_total_wait: float = 30.0,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        jitter: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        user_agent: str = DEFAULT_USER_AGENT,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.max_total_wait = max_total_wait
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self.user_agent = user_agent
        # Proxies from the environment apply (urllib default); redirects are not followed.
        self._opener = opener or urllib.request.build_opener(_NoRedirect())

    def request_json(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Response:
        """Send ``body`` as JSON; return ``(status, parsed JSON or None, lower-cased headers)``."""
        if not url.lower().startswith(("https://", "http://")):
            raise ValueError(f"only http(s) URLs are supported, got {redact_url(url)!r}")
        data = None
        hdrs = {"Accept": "application/json", "User-Agent": self.user_agent}
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})

        start = self.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                status, parsed, resp_headers = self._once(method, url, data, hdrs, timeout)
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                # (HTTPError, a real response, is handled in _once)
                reason = _describe(exc)
                delay = self._backoff(attempt)
                if not self._may_retry(attempt, start, delay):
                    logger.warning("%s %s: %s; giving up after %d attempt(s)",
                                   method, redact_url(url), reason, attempt)
                    raise HttpRequestError(method, url, reason, attempt) from None
                logger.warning("%s %s: %s; retrying in %.2fs (attempt %d/%d)",
                               method, redact_url(url), reason, delay, attempt, self.max_attempts)
                self.sleep(delay)
                continue

            if status == 429:
                delay = _retry_after(parsed, resp_headers)
                if delay is None:
                    delay = self._backoff(attempt)
            elif status >= 500:
                delay = self._backoff(attempt)
            else:
                return status, parsed, resp_headers
            if not self._may_retry(attempt, start, delay):
                logger.warning("%s %s: HTTP %d; giving up after %d attempt(s)",
                               method, redact_url(url), status, attempt)
                return status, parsed, resp_headers
            logger.warning("%s %s: HTTP %d; retrying in %.2fs (attempt %d/%d)",
                           method, redact_url(url), status, delay, attempt, self.max_attempts)
            self.sleep(delay)

    # -- internals ---------------------------------------------------------
    def _once(self, method: str, url: str, data: bytes | None, headers: dict[str, str],
              timeout: float) -> Response:
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            resp = self._opener.open(req, timeout=timeout)
        except urllib.error.HTTPError as err:  # a real HTTP response with a 4xx/5xx status
            with err:
                raw = err.read(MAX_RESPONSE_BYTES)
                return err.code, _parse(raw), _lower(err.headers)
        with resp:
            raw = resp.read(MAX_RESPONSE_BYTES)
            return resp.status, _parse(raw), _lower(resp.headers)

    def _backoff(self, attempt: int) -> float:
        delay = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return delay * (1.0 + self.jitter * self.rng())

    def _may_retry(self, attempt: int, start: float, delay: float) -> bool:
        if attempt >= self.max_attempts:
            return False
        return (self.clock() - start) + delay <= self.max_total_wait


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Return 3xx responses as they are (an API redirect would resend the token elsewhere)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _retry_after(parsed: Any, headers: Mapping[str, str]) -> float | None:
    """Seconds to wait before retrying a 429, from the JSON body or the Retry-After header."""
    if isinstance(parsed, dict):
        params = parsed.get("parameters")
        if isinstance(params, dict):
            value = params.get("retry_after")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                return float(value)
    header = (headers.get("retry-after") or "").strip()
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _lower(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    return {k.lower(): v for k, v in headers.items()}


def _describe(exc: BaseException) -> str:
    """A short reason without the URL (urllib puts none there, but be sure)."""
    reason = getattr(exc, "reason", None) or exc
    text = f"{type(reason).__name__}: {reason}" if not isinstance(reason, str) else reason
    return _BOT_TOKEN_IN_PATH.sub(r"\1<redacted>", " ".join(str(text).split()))[:300]
