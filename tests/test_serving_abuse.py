"""A server under abuse (issue 29): every hostile request of `serving.abuse` gets its answer,
costs no more than it carries, and the next good request is answered as if nothing happened."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import shutil
import threading
import time

import pytest

from serving import abuse
from serving.local import LocalServer
from serving.metrics import scrape_request_counts

IDLE_SECONDS = 1.5
TIMEOUT_MS = 2500
MAX_CONNECTIONS = 32
MAX_BODY_BYTES = 1024 * 1024
RSS_BOUND_MB = 200


@pytest.fixture(scope="module")
def server(tiny_export, tiny_run, tmp_path_factory):
    """The suite's tiny export, served with small limits so each one is reached in a test."""
    import tensorflow as tf

    from featnet_tf import prepared_data

    base = os.path.join(str(tmp_path_factory.mktemp("abuse")), "featnet")
    shutil.copytree(tiny_export, os.path.join(base, "1"))
    files = prepared_data.split_files(tiny_run.config.data.data_dir, "test")
    examples = [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(64)]
    flags = [
        "--max_batch_size", "64",
        "--rest_api_idle_timeout_seconds", str(IDLE_SECONDS),
        "--rest_api_timeout_in_ms", str(TIMEOUT_MS),
        "--rest_api_max_connections", str(MAX_CONNECTIONS),
        "--rest_api_max_body_bytes", str(MAX_BODY_BYTES),
    ]  # fmt: skip
    with LocalServer(base, "featnet", *flags) as running:
        targets = abuse.Targets(running.target, running.rest_target, "featnet")
        yield {"targets": targets, "pid": running.process.pid, "example": examples[0], "examples": examples}


def good_request_answered(server) -> None:
    body = json.dumps({"instances": [{"b64": base64.b64encode(server["example"]).decode()}]}).encode()
    outcome = abuse.send_raw(server["targets"], abuse.post(server["targets"], "predict", body), timeout=10)
    assert outcome.status == 200, outcome
    assert outcome.headers["Server"] == "featnet-serving", "no software or version named"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


FAST = [name for name, case in abuse.CASES.items() if not case.slow]
SLOW = [name for name, case in abuse.CASES.items() if case.slow]


@pytest.mark.parametrize("name", FAST)
def test_each_abusive_request_gets_its_answer_and_the_next_good_one_is_served(server, name):
    outcome = abuse.CASES[name].send(server["targets"])
    assert abuse.check(name, outcome) is None, abuse.check(name, outcome)
    good_request_answered(server)


def test_slow_and_idle_clients_are_let_go_at_the_servers_timeouts(server):
    """Case 5: a connection holds nothing past the idle timeout, a body nothing past the request timeout."""
    with concurrent.futures.ThreadPoolExecutor(len(SLOW)) as pool:
        outcomes = dict(zip(SLOW, pool.map(lambda name: abuse.CASES[name].send(server["targets"]), SLOW)))
    for name, outcome in outcomes.items():
        assert abuse.check(name, outcome) is None, abuse.check(name, outcome)
    assert outcomes["idle_connection"].seconds < IDLE_SECONDS + 2
    assert outcomes["slow_headers"].seconds < IDLE_SECONDS + 2, "the headers' arrival is bounded too"
    assert TIMEOUT_MS / 1000 - 0.5 < outcomes["slow_body"].seconds < TIMEOUT_MS / 1000 + 2
    good_request_answered(server)


def test_connections_beyond_the_cap_are_answered_503_and_closed(server):
    sockets = [abuse.connect(server["targets"].rest, 10) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        outcome = abuse.unknown_path(server["targets"])
        assert outcome.status == 503 and f"maximum of {MAX_CONNECTIONS} connections" in outcome.message, outcome
    finally:
        for sock in sockets:
            sock.close()
    time.sleep(0.2)
    good_request_answered(server)


def test_no_abusive_request_costs_the_server_memory_beyond_the_bound(server):
    """Cases 1 and 2, four clients at once, three times: the server's RSS stays within +200 MB of
    what it holds after serving good requests (a 43-byte gRPC request once took +916 MB, and a
    50 MB REST body +2 GB)."""
    memory_cases = [name for name, case in abuse.CASES.items() if case.memory]
    good_request_answered(server)
    before, peak, done = rss_mb(server["pid"]), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(server["pid"]))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for name in memory_cases * 3:
                outcomes = list(pool.map(lambda _: abuse.CASES[name].send(server["targets"]), range(4)))
                assert all(abuse.check(name, outcome) is None for outcome in outcomes), outcomes
    finally:
        done.set()
        sampler.join()
    print(f"[abuse] RSS {before:.0f} MB before, peak {peak[0]:.0f} MB")
    assert peak[0] - before < RSS_BOUND_MB, f"RSS {before:.0f} MB before, {peak[0]:.0f} MB at the peak"
    good_request_answered(server)


def test_the_metrics_count_every_answer_refused_before_any_api_by_its_code(server):
    """Case 7: 404, 413, 414, 431 and malformed HTTP are counted, not only the API's answers."""
    rest = server["targets"].rest
    before = {api: scrape_request_counts(rest, api, "rest") for api in ("predict", "status", "(none)")}
    for name in ("unknown_path", "huge_declared_body", "long_url", "long_header", "content_length_abc", "deep_json"):
        abuse.CASES[name].send(server["targets"])
    after = {api: scrape_request_counts(rest, api, "rest") for api in ("predict", "status", "(none)")}

    def added(api: str, code: str) -> int:
        return after[api].get(code, 0) - before[api].get(code, 0)

    assert added("(none)", "NOT_FOUND") == 1, "the unknown path"
    assert added("predict", "RESOURCE_EXHAUSTED") == 1, "the body over the limit"
    assert added("(none)", "RESOURCE_EXHAUSTED") == 2, "the long URL and the long header, before any path is read"
    assert added("(none)", "INVALID_ARGUMENT") == 1, "the Content-Length that is not a number"
    assert added("predict", "INVALID_ARGUMENT") == 1, "the deep JSON"


def test_the_loadtest_abuse_mode_fails_no_good_request_and_every_abusive_one_gets_its_answer(server):
    from serving.loadtest import run_load

    targets = server["targets"]
    summary = run_load(
        targets.grpc,
        "featnet",
        server["examples"],
        clients=2,
        seconds=4,
        batch_size=1,
        abusive_clients=2,
        rest_target=targets.rest,
        metrics_target=targets.rest,
    )
    assert summary["failed_good_requests"] == 0 and summary["requests"] > 0, summary
    assert summary["abusive"]["requests"] >= len(abuse.CASES) // 2 and not summary["abusive"]["unexpected"], summary
    assert summary["server_metrics"]["match"], "the abusive gRPC calls are counted as sent"
