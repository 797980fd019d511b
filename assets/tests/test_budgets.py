"""hermes_aws.budgets against a real moto server (DynamoDB)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest

from hermes_aws import budgets, events
from hermes_aws.budgets import TokenBudget, TokenPrices, turn_metric_fields
from stubs.aws_resources import create_sessions_table

TABLE = "hermes-sessions"
USER = "telegram:4242"


class Clock:
    def __init__(self, iso: str) -> None:
        self.now = datetime.fromisoformat(iso).timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, iso: str) -> None:
        self.now = datetime.fromisoformat(iso).timestamp()


@pytest.fixture
def ddb(aws_env: str) -> Any:
    client = boto3.client("dynamodb")
    create_sessions_table(TABLE, client=client)
    return client


def item(ddb: Any, user: str, day: str) -> dict[str, Any] | None:
    return ddb.get_item(TableName=TABLE, Key=TokenBudget.key(user, day), ConsistentRead=True).get("Item")


def test_limit_is_enforced_on_input_plus_output(ddb: Any) -> None:
    clock = Clock("2026-05-21T10:00:00+00:00")
    budget = TokenBudget(TABLE, ddb, daily_limit=1000, clock=clock)

    first = budget.check(USER)
    assert (first.allowed, first.used, first.limit, first.day) == (True, 0, 1000, "2026-05-21")

    after = budget.record(USER, 600, 300)
    assert after is not None and (after.used, after.turns, after.remaining) == (900, 1, 100)
    assert budget.check(USER).allowed  # 900 < 1000

    budget.record(USER, 50, 50)
    status = budget.check(USER)
    assert (status.input_tokens, status.output_tokens, status.used) == (650, 350, 1000)
    assert not status.allowed and status.remaining == 0
    assert budget.check("telegram:other").allowed  # per user

    stored = item(ddb, USER, "2026-05-21")
    assert stored is not None
    assert stored["PK"] == {"S": "BUDGET#telegram:4242"} and stored["SK"] == {"S": "DAY#2026-05-21"}
    assert (stored["input_tokens"]["N"], stored["output_tokens"]["N"], stored["turns"]["N"]) == ("650", "350", "2")


def test_exceeded_message_says_when_it_resets(ddb: Any) -> None:
    clock = Clock("2026-05-21T21:30:00+00:00")
    budget = TokenBudget(TABLE, ddb, daily_limit=10_000, clock=clock)
    budget.record(USER, 9_000, 3_345)
    status = budget.check(USER)
    assert not status.allowed
    assert status.resets_at == datetime(2026, 5, 22, tzinfo=timezone.utc)
    text = budget.exceeded_message(status)
    assert "12,345 of 10,000 tokens" in text
    assert "midnight UTC" in text and "2026-05-22 00:00 UTC" in text
    assert "in 2 h 30 min" in text
    clock.set("2026-05-21T23:59:30+00:00")
    assert "in 1 min" in budget.exceeded_message(status)


def test_concurrent_turns_add_up_with_one_atomic_update(ddb: Any) -> None:
    # (moto's server does not apply concurrent UpdateItems atomically, so the race is
    # staged: both turns read the same state, then both charge; a read-modify-write
    # implementation would lose one of them)
    clock = Clock("2026-05-21T10:00:00+00:00")
    clients = [boto3.client("dynamodb"), boto3.client("dynamodb")]  # separate sandboxes
    calls: list[tuple[str, dict[str, Any]]] = []
    for client in clients:
        client.meta.events.register("before-parameter-build.dynamodb.*",
                                    lambda model, params, **_: calls.append((model.name, params)))
    a, b = (TokenBudget(TABLE, c, daily_limit=10**6, clock=clock) for c in clients)
    budget_a, budget_b = a.check(USER), b.check(USER)
    assert budget_a.used == budget_b.used == 0
    calls.clear()

    a.record(USER, 100, 10)
    b.record(USER, 200, 20)

    assert [name for name, _ in calls] == ["UpdateItem", "UpdateItem"]  # no read, one write per turn
    assert all(p["UpdateExpression"].startswith("ADD input_tokens :in, output_tokens :out") for _, p in calls)
    status = a.check(USER)
    assert (status.input_tokens, status.output_tokens, status.turns) == (300, 30, 2)


def test_day_rollover_and_ttl(ddb: Any) -> None:
    clock = Clock("2026-05-21T23:59:59+00:00")
    budget = TokenBudget(TABLE, ddb, daily_limit=100, clock=clock)
    budget.record(USER, 80, 40)
    assert not budget.check(USER).allowed

    clock.set("2026-05-22T00:00:01+00:00")
    fresh = budget.check(USER)
    assert (fresh.allowed, fresh.used, fresh.day) == (True, 0, "2026-05-22")
    budget.record(USER, 5, 5)

    old, new = item(ddb, USER, "2026-05-21"), item(ddb, USER, "2026-05-22")
    assert old is not None and new is not None
    assert old["input_tokens"]["N"] == "80" and new["input_tokens"]["N"] == "5"
    # expires 3 days after the day ends, in the attribute the table's TTL is configured on
    ttl_attr = ddb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]["AttributeName"]
    assert ttl_attr == budgets.TTL_ATTRIBUTE
    assert int(old[ttl_attr]["N"]) == int(datetime(2026, 5, 25, tzinfo=timezone.utc).timestamp())
    assert int(new[ttl_attr]["N"]) == int(datetime(2026, 5, 26, tzinfo=timezone.utc).timestamp())


def test_cost_is_estimated_from_prices_and_accumulated(ddb: Any) -> None:
    prices = TokenPrices.from_json('{"inputPerMillion": 3, "outputPerMillion": 15}')
    budget = TokenBudget(TABLE, ddb, daily_limit=10**6, prices=prices, clock=Clock("2026-05-21T10:00:00+00:00"))
    assert budget.estimate_cost(1_000_000, 0) == pytest.approx(3.0)
    assert budget.estimate_cost(2000, 1000) == pytest.approx(0.021)
    budget.record(USER, 2000, 1000)
    status = budget.record(USER, 1000, 0)
    assert status is not None and status.estimated_cost_usd == pytest.approx(0.024)
    assert TokenBudget(TABLE, ddb).estimate_cost(10**6, 10**6) == 0.0  # no prices


def test_without_a_budget_nothing_is_read_or_written(ddb: Any) -> None:
    budget = TokenBudget.from_env({budgets.TABLE_ENV: TABLE})
    assert not budget.enabled and budget.client is None  # no client was even created
    status = budget.check(USER)
    assert status.allowed and status.limit is None and status.remaining is None
    assert budget.record(USER, 10**9, 10**9) is None
    assert ddb.scan(TableName=TABLE)["Items"] == []


def test_from_env(ddb: Any) -> None:
    budget = TokenBudget.from_env({
        budgets.BUDGET_ENV: " 50000 ", budgets.TABLE_ENV: TABLE,
        budgets.PRICES_ENV: '{"inputPerMillion": 0.8, "outputPerMillion": 4.0}',
    }, ddb)
    assert budget.daily_limit == 50000 and budget.table == TABLE
    assert budget.prices == TokenPrices(0.8, 4.0)
    assert budget.check(USER).allowed


@pytest.mark.parametrize(("env", "message"), [
    ({budgets.BUDGET_ENV: "lots"}, "HERMES_AWS_DAILY_TOKEN_BUDGET must be a whole number"),
    ({budgets.BUDGET_ENV: "1.5"}, "HERMES_AWS_DAILY_TOKEN_BUDGET must be a whole number"),
    ({budgets.BUDGET_ENV: "0"}, "HERMES_AWS_DAILY_TOKEN_BUDGET must be >= 1"),
    ({budgets.BUDGET_ENV: "-5"}, "HERMES_AWS_DAILY_TOKEN_BUDGET must be >= 1"),
    ({budgets.BUDGET_ENV: "100", budgets.TABLE_ENV: ""}, "HERMES_AWS_TABLE is not"),
    ({budgets.PRICES_ENV: "{inputPerMillion: 3}"}, "HERMES_AWS_TOKEN_PRICES is not valid JSON"),
    ({budgets.PRICES_ENV: "[3, 15]"}, "HERMES_AWS_TOKEN_PRICES must be a JSON object"),
    ({budgets.PRICES_ENV: '{"inputPerMillion": 3}'}, "HERMES_AWS_TOKEN_PRICES is missing 'outputPerMillion'"),
    ({budgets.PRICES_ENV: '{"inputPerMillion": -1, "outputPerMillion": 1}'},
     "HERMES_AWS_TOKEN_PRICES.inputPerMillion must be a non-negative number"),
    ({budgets.PRICES_ENV: '{"inputPerMillion": "3", "outputPerMillion": 1}'},
     "HERMES_AWS_TOKEN_PRICES.inputPerMillion must be a non-negative number"),
    ({budgets.PRICES_ENV: '{"inputPerMillion": 1, "outputPerMillion": true}'},
     "HERMES_AWS_TOKEN_PRICES.outputPerMillion must be a non-negative number"),
    ({budgets.PRICES_ENV: '{"inputPerMillion": 1, "outputPerMillion": 2, "currency": "EUR"}'},
     "HERMES_AWS_TOKEN_PRICES has unknown key(s): currency"),
])
def test_malformed_env_values_give_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as err:
        TokenBudget.from_env({budgets.TABLE_ENV: TABLE, **env}, client=object())
    assert message in str(err.value)


def test_turn_metric_fields_publish_tokens_and_cost_per_user() -> None:
    out = io.StringIO()
    fields = turn_metric_fields("bot", "telegram:4242", duration_ms=1234.5, error=False,
                                input_tokens=1200, output_tokens=300, cost_usd=0.0081, budget_exceeded=False)
    events.emit("turn", out=out, chat="4242", **fields)
    line = json.loads(out.getvalue())
    by_agent, usage = line["_aws"]["CloudWatchMetrics"]
    assert by_agent == {"Namespace": "HermesAgent/Serverless", "Dimensions": [["Agent"]], "Metrics": [
        {"Name": "TurnDuration", "Unit": "Milliseconds"}, {"Name": "TurnErrors", "Unit": "Count"},
        {"Name": "BudgetExceeded", "Unit": "Count"}]}
    assert usage["Dimensions"] == [["Agent"], ["Agent", "User"]]
    assert [m["Name"] for m in usage["Metrics"]] == ["InputTokens", "OutputTokens", "EstimatedCost"]
    assert (line["Agent"], line["User"]) == ("bot", "telegram:4242")
    assert (line["InputTokens"], line["OutputTokens"], line["EstimatedCost"]) == (1200, 300, 0.0081)
    assert (line["TurnDuration"], line["TurnErrors"], line["BudgetExceeded"]) == (1234.5, 0, 0)
    assert isinstance(line["_aws"]["Timestamp"], int)


def test_turn_metric_fields_without_user_and_when_refused() -> None:
    fields = turn_metric_fields("bot", None, duration_ms=3, error=False, input_tokens=0, output_tokens=0,
                                cost_usd=0, budget_exceeded=True)
    assert "User" not in fields
    assert [d["Dimensions"] for d in fields["_aws"]["CloudWatchMetrics"]] == [[["Agent"]], [["Agent"]]]
    assert fields["BudgetExceeded"] == 1


def test_emf_fields_is_the_one_dimension_set_case() -> None:
    fields = events.emf_fields("ns", {"Agent": "a"}, {"X": (2, "Count"), "Y": (3.5, "Milliseconds")})
    assert fields["_aws"]["CloudWatchMetrics"] == [{
        "Namespace": "ns", "Dimensions": [["Agent"]],
        "Metrics": [{"Name": "X", "Unit": "Count"}, {"Name": "Y", "Unit": "Milliseconds"}]}]
    assert (fields["Agent"], fields["X"], fields["Y"]) == ("a", 2, 3.5)
    assert turn_metric_fields("a", None, duration_ms=1, error=False, input_tokens=0, output_tokens=0, cost_usd=0,
                              budget_exceeded=False)["_aws"]["CloudWatchMetrics"][0]["Namespace"] \
        == events.METRIC_NAMESPACE == "HermesAgent/Serverless"


def test_emf_fields_multi_rejects_inconsistent_groups() -> None:
    with pytest.raises(ValueError, match="no value"):
        events.emf_fields_multi("ns", {"Agent": "a"}, [([["Agent", "User"]], {"X": (1, "Count")})])
    with pytest.raises(ValueError, match="more than one group"):
        events.emf_fields_multi("ns", {"Agent": "a"}, [([["Agent"]], {"X": (1, "Count")}),
                                                       ([["Agent"]], {"X": (2, "Count")})])
