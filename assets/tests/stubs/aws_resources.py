"""Create the AWS resources the serverless shape uses, in the moto server the tests run."""

from __future__ import annotations

import json
from typing import Any

import boto3


def create_sessions_table(name: str = "hermes-sessions", *, client: Any = None) -> str:
    """The construct's table: PK/SK strings, on-demand, TTL on ``expires_at``."""
    ddb = client or boto3.client("dynamodb")
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    return name


def create_bucket(name: str = "hermes-workspace", *, client: Any = None) -> str:
    (client or boto3.client("s3")).create_bucket(Bucket=name)
    return name


def create_fifo_queue_with_dlq(
    name: str = "hermes-inbound", *, max_receive_count: int = 3, visibility_timeout: int = 30,
    client: Any = None,
) -> tuple[str, str]:
    """A FIFO queue (no content-based dedup) and its FIFO DLQ; returns (queue URL, DLQ URL)."""
    sqs = client or boto3.client("sqs")
    dlq_url = sqs.create_queue(
        QueueName=f"{name}-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=f"{name}.fifo", Attributes={
        "FifoQueue": "true",
        "VisibilityTimeout": str(visibility_timeout),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}),
    })["QueueUrl"]
    return url, dlq_url


def create_secret(name: str, value: str, *, client: Any = None) -> str:
    """A Secrets Manager secret; returns its ARN."""
    return (client or boto3.client("secretsmanager")).create_secret(Name=name, SecretString=value)["ARN"]
