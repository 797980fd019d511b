"""Per-user daily token budgets and per-turn cost metrics (worker Lambda, AgentCore).

Environment (set by the construct)
----------------------------------
``HERMES_AWS_DAILY_TOKEN_BUDGET``  tokens (input + output) per user per UTC day; absent or
                                   empty = no budget (nothing is read or written)
``HERMES_AWS_TOKEN_PRICES``        ``{"inputPerMillion": <USD>, "outputPerMillion": <USD>}``;
                                   absent = estimated cost 0
``HERMES_AWS_TABLE``               the agent's DynamoDB table (shared with :mod:`hermes_aws.sessions`)

Counters, one item per user and UTC day in that table::

    PK = BUDGET#<user key>   SK = DAY#<yyyy-mm-dd>
        input_tokens, output_tokens, turns, estimated_cost_usd   (atomic ADD)
        updated_at (ISO 8601), expires_at (epoch s: 3 days after the day ends)

``<user key>`` is the channel's user, e.g. ``telegram:123`` or ``slack:U012ABC``.
Every charge is one ``UpdateItem`` with ``ADD``, so concurrent turns of one user
(different chats, several sandboxes) never lose each other's tokens. The TTL
attribute is the table's (``expires_at``, the same as the session items: a
table has exactly one TTL attribute), so old days disappear by themselves.

The budget is checked *before* a turn (:meth:`TokenBudget.check`, one strongly
consistent ``GetItem``) and charged *after* it (:meth:`TokenBudget.record`). It
is a soft limit: the turn that crosses it completes, and turns of the same user
that started concurrently are not stopped; the next one is refused with
:meth:`TokenBudget.exceeded_message` until the next UTC midnight.

Metrics: :func:`turn_metric_fields` builds the embedded-metric-format block of
the worker's ``turn`` event with two dimension sets ([Agent] for every metric,
[Agent, User] for tokens and cost) with :func:`hermes_aws.events.emf_fields_multi`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hermes_aws import events

BUDGET_ENV = "HERMES_AWS_DAILY_TOKEN_BUDGET"
PRICES_ENV = "HERMES_AWS_TOKEN_PRICES"
TABLE_ENV = "HERMES_AWS_TABLE"

#: the table's TTL attribute (``timeToLiveAttribute`` of the construct's table)
TTL_ATTRIBUTE = "expires_at"
#: counters are kept this long after their day ends
TTL_DAYS_AFTER = 3


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class TokenPrices:
    """USD per million input and output tokens."""

    input_per_million: float
    output_per_million: float

    @classmethod
    def from_json(cls, text: str, *, source: str = PRICES_ENV) -> TokenPrices:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f'{source} must be a JSON object like {{"inputPerMillion": 3, '
                             f'"outputPerMillion": 15}}, got {type(data).__name__}')
        unknown = sorted(set(data) - {"inputPerMillion", "outputPerMillion"})
        if unknown:
            raise ValueError(f"{source} has unknown key(s): {', '.join(unknown)} "
                             "(expected inputPerMillion, outputPerMillion)")
        return cls(_price(data, "inputPerMillion", source), _price(data, "outputPerMillion", source))

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_million + output_tokens * self.output_per_million) / 1_000_000


def _price(data: Mapping[str, Any], key: str, source: str) -> float:
    if key not in data:
        raise ValueError(f"{source} is missing {key!r} (USD per million tokens)")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{source}.{key} must be a non-negative number (USD per million tokens), got {value!r}")
    return float(value)


def parse_daily_limit(raw: str | None, *, source: str = BUDGET_ENV) -> int | None:
    """``"50000"`` -> 50000; absent or blank -> None (no budget)."""
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{source} must be a whole number of tokens per user per UTC day, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{source} must be >= 1 (leave it unset for no budget), got {value}")
    return value


# --------------------------------------------------------------------------- the budget


@dataclass(frozen=True)
class BudgetStatus:
    """A user's usage of one UTC day."""

    user_key: str
    day: str  # yyyy-mm-dd (UTC)
    input_tokens: int
    output_tokens: int
    limit: int | None  # None: no budget
    resets_at: datetime  # next UTC midnight after ``day``
    estimated_cost_usd: float = 0.0
    turns: int = 0

    @property
    def used(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def allowed(self) -> bool:
        return self.limit is None or self.used < self.limit

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)


class TokenBudget:
    """Daily token counters per user in the agent's table (see the module docstring)."""

    def __init__(self, table: str, client: Any, daily_limit: int | None = None,
                 prices: TokenPrices | None = None, clock: Callable[[], float] = time.time) -> None:
        if daily_limit is not None and daily_limit < 1:
            raise ValueError(f"daily_limit must be >= 1 or None, got {daily_limit}")
        self.table = table
        self.client = client
        self.daily_limit = daily_limit
        self.prices = prices
        self.clock = clock

    @classmethod
    def from_env(cls, environ: Mapping[str, str], client: Any = None, *,
                 clock: Callable[[], float] = time.time) -> TokenBudget:
        """From ``HERMES_AWS_DAILY_TOKEN_BUDGET``/``_TOKEN_PRICES``/``_TABLE``; ValueError names a bad one.

        ``client`` (a DynamoDB client) is created only when a budget is set.
        """
        limit = parse_daily_limit(environ.get(BUDGET_ENV))
        raw_prices = environ.get(PRICES_ENV)
        prices = TokenPrices.from_json(raw_prices) if raw_prices and raw_prices.strip() else None
        table = (environ.get(TABLE_ENV) or "").strip()
        if limit is not None and not table:
            raise ValueError(f"{BUDGET_ENV} is set but {TABLE_ENV} is not")
        if limit is not None and client is None:
            import boto3

            client = boto3.client("dynamodb")
        return cls(table, client, limit, prices, clock)

    @property
    def enabled(self) -> bool:
        return self.daily_limit is not None

    # -- keys and days -------------------------------------------------------
    def _day(self) -> tuple[str, datetime]:
        """Today's ``yyyy-mm-dd`` (UTC) and the next UTC midnight."""
        now = datetime.fromtimestamp(self.clock(), timezone.utc)
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start + timedelta(days=1)

    @staticmethod
    def key(user_key: str, day: str) -> dict[str, Any]:
        return {"PK": {"S": f"BUDGET#{user_key}"}, "SK": {"S": f"DAY#{day}"}}

    def _status(self, user_key: str, day: str, resets_at: datetime, item: Mapping[str, Any] | None) -> BudgetStatus:
        item = item or {}
        return BudgetStatus(
            user_key=user_key, day=day, limit=self.daily_limit, resets_at=resets_at,
            input_tokens=int(item.get("input_tokens", {}).get("N", "0")),
            output_tokens=int(item.get("output_tokens", {}).get("N", "0")),
            estimated_cost_usd=float(item.get("estimated_cost_usd", {}).get("N", "0")),
            turns=int(item.get("turns", {}).get("N", "0")),
        )

    # -- API -----------------------------------------------------------------
    def check(self, user_key: str) -> BudgetStatus:
        """Today's usage of ``user_key``; ``allowed`` is False once it reached the limit.

        Without a budget nothing is read and the status is always allowed.
        """
        day, resets_at = self._day()
        if not self.enabled:
            return self._status(user_key, day, resets_at, None)
        item = self.client.get_item(TableName=self.table, Key=self.key(user_key, day),
                                    ConsistentRead=True).get("Item")
        return self._status(user_key, day, resets_at, item)

    def record(self, user_key: str, input_tokens: int, output_tokens: int) -> BudgetStatus | None:
        """Charge one turn to today's counters (atomic ADD); the new totals, or None without a budget."""
        if not self.enabled:
            return None
        input_tokens, output_tokens = max(0, int(input_tokens)), max(0, int(output_tokens))
        day, resets_at = self._day()
        expires = int(resets_at.timestamp()) + TTL_DAYS_AFTER * 86400
        cost = Decimal(str(round(self.estimate_cost(input_tokens, output_tokens), 8)))
        resp = self.client.update_item(
            TableName=self.table, Key=self.key(user_key, day),
            UpdateExpression="ADD input_tokens :in, output_tokens :out, turns :one, estimated_cost_usd :cost "
                             "SET updated_at = :now, #ttl = :ttl",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":in": {"N": str(input_tokens)}, ":out": {"N": str(output_tokens)}, ":one": {"N": "1"},
                ":cost": {"N": str(cost)}, ":ttl": {"N": str(expires)},
                ":now": {"S": datetime.fromtimestamp(self.clock(), timezone.utc).isoformat(timespec="seconds")},
            },
            ReturnValues="ALL_NEW",
        )
        return self._status(user_key, day, resets_at, resp.get("Attributes"))

    def estimate_cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for a turn at ``HERMES_AWS_TOKEN_PRICES`` (0 without prices)."""
        return 0.0 if self.prices is None else self.prices.cost(int(input_tokens), int(output_tokens))

    def exceeded_message(self, status: BudgetStatus) -> str:
        """What the user is told instead of an answer when ``status`` is not allowed."""
        return exceeded_message(status, now=datetime.fromtimestamp(self.clock(), timezone.utc))


def exceeded_message(status: BudgetStatus, *, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    left = max(0, int((status.resets_at - now).total_seconds()))
    hours, minutes = divmod((left + 59) // 60, 60)
    wait = f"{hours} h {minutes} min" if hours else f"{max(1, minutes)} min"
    limit = f"{status.limit:,}" if status.limit is not None else "unlimited"
    return (f"⏳ You've reached today's usage limit ({status.used:,} of {limit} tokens). "
            f"It resets at midnight UTC ({status.resets_at:%Y-%m-%d %H:%M} UTC, in {wait}) — "
            "please try again then.")


# --------------------------------------------------------------------------- metrics

def turn_metric_fields(agent: str, user: str | None, *, duration_ms: float, error: bool,
                       input_tokens: int, output_tokens: int, cost_usd: float,
                       budget_exceeded: bool, namespace: str = events.METRIC_NAMESPACE) -> dict[str, Any]:
    """The EMF block of a worker ``turn`` event.

    ``TurnDuration`` (ms), ``TurnErrors`` and ``BudgetExceeded`` (count) by
    [Agent]; ``InputTokens``, ``OutputTokens`` (count) and ``EstimatedCost``
    (USD, unit None) by [Agent] and [Agent, User] (only [Agent] when ``user``
    is None, e.g. a scheduled job). Adds ``Agent`` (and ``User``) fields.
    """
    dimensions = {"Agent": agent}
    usage_sets: list[list[str]] = [["Agent"]]
    if user:
        dimensions["User"] = user
        usage_sets.append(["Agent", "User"])
    return events.emf_fields_multi(namespace, dimensions, [
        ([["Agent"]], {
            "TurnDuration": (duration_ms, "Milliseconds"),
            "TurnErrors": (int(error), "Count"),
            "BudgetExceeded": (int(budget_exceeded), "Count"),
        }),
        (usage_sets, {
            "InputTokens": (int(input_tokens), "Count"),
            "OutputTokens": (int(output_tokens), "Count"),
            "EstimatedCost": (round(float(cost_usd), 8), "None"),
        }),
    ])
