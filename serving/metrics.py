"""Prometheus metrics of the server, on the REST port as TF Serving has them.

``GET /monitoring/prometheus/metrics`` (the path of `docker/monitoring.config`)
answers Prometheus' text format, written by the standard `prometheus_client`:

* ``serving_requests_total{model, version, api, entrypoint, code}``: requests
  answered, by model, the version that answered (empty when none did), API
  (predict, classify, regress, metadata, status), entrypoint (grpc, rest)
  and status code (OK, INVALID_ARGUMENT, NOT_FOUND, ...). REST answers given
  before any API ran are counted too, under the API of their path (or
  ``(none)`` when no path was read) and the code of their HTTP status
  (`serving.rest.CODE_OF_STATUS`: 413, 414 and 431 are RESOURCE_EXHAUSTED,
  408 DEADLINE_EXCEEDED, 503 UNAVAILABLE). A gRPC message over the size
  limit is refused by gRPC's core before Python sees it and is not counted;
* ``serving_request_latency_seconds{model, api, entrypoint}``: a histogram of
  the time from request to answer, in the server;
* ``serving_batch_size{model, version}``: a histogram of the rows of each
  model call (merged requests count once).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from serving.errors import RequestError

PATH = "/monitoring/prometheus/metrics"
CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class ServingMetrics:
    """The server's counters and histograms, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "serving_requests",
            "Requests answered, by model, version, API, entrypoint and status code.",
            ["model", "version", "api", "entrypoint", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "serving_request_latency_seconds",
            "Time from request to answer in the server.",
            ["model", "api", "entrypoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "serving_batch_size",
            "Rows of each model call (merged requests count once).",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple, object] = {}  # each labelled series, looked up once

    def _child(self, metric, *labels: str):
        """`metric.labels(*labels)`, kept: `labels` validates and locks on every call."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(self, model: str, version: int | None, api: str, entrypoint: str, code: str, seconds: float) -> None:
        self._child(self.requests, model, "" if version is None else str(version), api, entrypoint, code).inc()
        self._child(self.latency, model, api, entrypoint).observe(seconds)

    def model_call(self, servable, rows: int) -> None:
        self._child(self.batch_size, servable.name, str(servable.version)).observe(rows)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def answered(metrics: ServingMetrics | None, served: str, requested: str, api: str, entrypoint: str, call):
    """Returns `call()`, the answer to one request, and records it in
    `metrics`: OK and the version that answered, or the code of the
    `RequestError` it raised (anything else is recorded as INTERNAL and
    raised again). The model label is the served model's name, or
    ``(unknown)`` for any other name a client sent."""
    start = time.perf_counter()
    model = served if requested == served else "(unknown)"
    try:
        response = call()
    except RequestError as error:
        if metrics is not None:
            metrics.request(model, None, api, entrypoint, error.code.name, time.perf_counter() - start)
        raise
    except Exception:
        if metrics is not None:
            metrics.request(model, None, api, entrypoint, "INTERNAL", time.perf_counter() - start)
        raise
    if metrics is not None:
        version = response.model_spec.version.value if hasattr(response, "model_spec") else None
        metrics.request(model, version, api, entrypoint, "OK", time.perf_counter() - start)
    return response


def scrape_request_counts(rest_target: str, api: str, entrypoint: str, timeout: float = 10.0) -> dict[str, int]:
    """Requests the server at `rest_target` (``HOST:PORT``) has counted for one
    API and entrypoint, by status code, read from its metrics endpoint."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{rest_target}{PATH}", timeout=timeout) as response:
        text = response.read().decode("utf-8")
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "serving_requests_total" and labels["api"] == api and labels["entrypoint"] == entrypoint:
                counts[labels["code"]] = counts.get(labels["code"], 0) + int(sample.value)
    return counts
