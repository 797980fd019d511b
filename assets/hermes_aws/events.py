"""One-line JSON events on stdout, for CloudWatch Logs metric filters.

The constructs count lines such as ``{"event": "health", "healthy": false, ...}``
and ``{"event": "knowledge_sync", "ok": false, ...}`` in the container's log
stream. Such a line must be exactly one JSON object on one line, so every
event is serialised without newlines (``json.dumps`` escapes them) and written
with a single ``write(2)`` on file descriptor 1: lines of the gateway process
and of the monitor process share that pipe, and pipe writes of up to
``PIPE_BUF`` (4096) bytes are never interleaved. Free text is capped to keep
every line well under that size.

Every line carries ``"gateway": $HERMES_AWS_GATEWAY_ID`` when that is set: the
construct's metric filters publish it as the ``Gateway`` dimension, and a line
without the field is not counted.

Standard library only: the container health check imports this on every probe.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

MAX_TEXT = 400  # characters kept of any free-text field
GATEWAY_ID_ENV = "HERMES_AWS_GATEWAY_ID"
AGENT_NAME_ENV = "HERMES_AWS_AGENT_NAME"  # the ``Agent`` dimension of the serverless shapes' metrics
#: the CloudWatch namespace of the serverless shapes' embedded metrics
METRIC_NAMESPACE = "HermesAgent/Serverless"


def agent_name(environ: Mapping[str, str] | None = None) -> str:
    """``$HERMES_AWS_AGENT_NAME`` (the ``Agent`` metric dimension), ``default`` when unset or blank."""
    env = os.environ if environ is None else environ
    return (env.get(AGENT_NAME_ENV) or "").strip() or "default"


def short(text: object, limit: int = MAX_TEXT) -> str:
    """``text`` as one line of at most ``limit`` characters."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def format_event(event: str, fields: dict[str, Any]) -> str:
    record: dict[str, Any] = {"event": event}
    gateway_id = os.environ.get(GATEWAY_ID_ENV)
    if gateway_id:
        record["gateway"] = gateway_id
    record.update(fields)
    record["time"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=str) + "\n"


def emit(event: str, /, out: TextIO | None = None, **fields: Any) -> dict[str, Any]:
    """Write ``{"event": event, "gateway": ..., **fields, "time": ...}`` as one line; return the record.

    ``out`` is for tests and callers that print elsewhere; by default the line
    goes to file descriptor 1 in a single write.
    """
    line = format_event(event, fields)
    if out is not None:
        out.write(line)
        out.flush()
    else:
        data = line.encode("ascii")
        while data:
            written = os.write(1, data)
            data = data[written:]
    return json.loads(line)


Metric = tuple[float, str]  # (value, unit)


def emf_fields(namespace: str, dimensions: Mapping[str, str], metrics: Mapping[str, Metric]) -> dict[str, Any]:
    """Fields that make an event line a CloudWatch embedded-metric-format (EMF) record.

    ``metrics`` maps metric name -> ``(value, unit)``; every metric is published
    in ``namespace`` with the one dimension set ``dimensions`` (name -> value).
    Returns ``{"_aws": {...}, **dimensions, **metric values}`` to merge into an
    :func:`emit` call.
    """
    return emf_fields_multi(namespace, dimensions, [([list(dimensions)], metrics)])


def emf_fields_multi(namespace: str, dimensions: Mapping[str, str],
                     groups: Sequence[tuple[Sequence[Sequence[str]], Mapping[str, Metric]]],
                     *, timestamp_ms: int | None = None) -> dict[str, Any]:
    """EMF fields with one ``CloudWatchMetrics`` directive per ``(dimension sets, metrics)`` group.

    ``dimensions`` holds every dimension's value (name -> value); each group
    publishes its metrics under each of its dimension sets (lists of names from
    ``dimensions``). A metric must appear in one group only; a group without
    metrics is left out. Returns ``{"_aws": {...}, **dimensions, **metric
    values}`` to merge into an :func:`emit` call.
    """
    directives: list[dict[str, Any]] = []
    values: dict[str, float] = {}
    for dimension_sets, metrics in groups:
        if not metrics:
            continue
        for dims in dimension_sets:
            missing = [d for d in dims if d not in dimensions]
            if missing:
                raise ValueError(f"dimension(s) {missing} have no value")
        for name, (value, _) in metrics.items():
            if name in values:
                raise ValueError(f"metric {name} appears in more than one group")
            values[name] = value
        directives.append({
            "Namespace": namespace,
            "Dimensions": [list(d) for d in dimension_sets],
            "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
        })
    return {
        "_aws": {"Timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
                 "CloudWatchMetrics": directives},
        **dimensions,
        **values,
    }
