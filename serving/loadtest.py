"""`python -m serving.loadtest`: N concurrent clients for T seconds at batch size b.

Sends Predict requests of `b` serialized examples (read from TFRecord files)
to a TF Serving (or `serving.server`) target from N threads, each with its own
channel, and reports QPS, predictions/s, p50/p95/p99 latency and errors.
Bounded in time (`--seconds`) and count (`--max_requests` per client).

    python -m serving.loadtest --target localhost:8500 --model_name featnet \
        --examples 'data/test/*.tfrecord.gz' --clients 8 --seconds 10 --batch_size 1

Under faults: ``--malformed_clients M`` adds M clients that send requests
which are not Examples at all, and ``--new_version_every S --model_base_path
BASE`` publishes a new version under the served base path every S seconds
(a copy of the newest, renamed into place as an exporter does; the oldest
are deleted, ten kept). The good clients' failures are counted apart: the
run exits 1 if any good request failed or any malformed one was answered.

    python -m serving.loadtest --target localhost:8500 --model_name featnet \
        --examples 'data/test/*.tfrecord.gz' --clients 8 --malformed_clients 1 \
        --new_version_every 1 --model_base_path /models/featnet --seconds 10

Under abuse: ``--abusive_clients A --rest_target HOST:PORT`` adds A clients
that send, in rotation, every case of `serving.abuse` (declared shapes far
beyond the values, bodies over the limit, broken framing, smuggled requests,
slow and idle connections, values a signature refuses), each checked against
the answer it must get: the run exits 1 if any got another.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import shutil
import sys
import threading
import time
import uuid
from typing import Any, Sequence

import grpc
import numpy as np
import tensorflow as tf

from serving import abuse
from serving.client import PredictionClient
from serving.metrics import scrape_request_counts
from tfbase.versions import list_versions


def read_examples(pattern: str, limit: int = 100_000) -> list[bytes]:
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"no TFRecord files match {pattern}")
    compression = "GZIP" if files[0].endswith(".gz") else ""
    return [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type=compression).take(limit)]


MALFORMED = b"not an example"


def publish_copy_of_newest(base_path: str, keep: int = 10) -> int:
    """A new version under `base_path`: the newest copied into a hidden
    directory and renamed into place (as `featnet_tf.saved_model.publish`
    does), numbered past every version seen; older versions beyond `keep` are
    deleted. Returns the new version."""
    versions = list_versions(base_path)
    staging = os.path.join(base_path, f".tmp-loadtest-{uuid.uuid4().hex[:8]}")
    shutil.copytree(os.path.join(base_path, str(versions[-1])), staging)
    new = versions[-1] + 1
    os.rename(staging, os.path.join(base_path, str(new)))
    for old in versions[: max(0, len(versions) + 1 - keep)]:
        shutil.rmtree(os.path.join(base_path, str(old)), ignore_errors=True)
    return new


def run_together(threads: list[threading.Thread], start_barrier: threading.Barrier) -> float:
    """Starts `threads`, lets them past `start_barrier` at once, joins them; the seconds between."""
    for thread in threads:
        thread.start()
    start_barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def load_summary(
    latencies: list[list[float]], errors: list[dict[str, int]], elapsed: float, batch_size: int
) -> dict[str, Any]:
    """What each client measured, summed: requests, errors by code, QPS and latency percentiles (ms)."""
    all_latencies = np.array([value for per_client in latencies for value in per_client])
    error_counts: dict[str, int] = {}
    for per_client in errors:
        for code, count in per_client.items():
            error_counts[code] = error_counts.get(code, 0) + count
    ok = len(all_latencies)
    return {
        "clients": len(latencies),
        "batch_size": batch_size,
        "seconds": elapsed,
        "requests": ok,
        "errors": error_counts,
        "qps": ok / elapsed,
        "predictions_per_second": ok * batch_size / elapsed,
        "p50_ms": float(np.percentile(all_latencies, 50)) if ok else None,
        "p95_ms": float(np.percentile(all_latencies, 95)) if ok else None,
        "p99_ms": float(np.percentile(all_latencies, 99)) if ok else None,
    }


def run_load(
    target: str,
    model_name: str,
    examples: Sequence[bytes],
    clients: int,
    seconds: float,
    batch_size: int,
    max_requests: int = 1_000_000,
    timeout: float = 10.0,
    malformed_clients: int = 0,
    new_version_every: float = 0.0,
    model_base_path: str | None = None,
    metrics_target: str | None = None,
    abusive_clients: int = 0,
    rest_target: str | None = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Runs the load and returns its summary (latencies in milliseconds).
    It lasts `seconds`, or until `stop` is set (a caller's own work, such
    as publishing a stream of days, done).
    With `metrics_target` (the server's REST ``HOST:PORT``), the server's
    Predict counts by status code are read before and after, and the summary
    says whether they match what the clients sent and got back."""
    if new_version_every > 0 and not model_base_path:
        raise ValueError("--new_version_every needs --model_base_path, the directory the server watches")
    if abusive_clients and not rest_target:
        raise ValueError("--abusive_clients needs --rest_target, the server's REST HOST:PORT")
    batches = [list(examples[i : i + batch_size]) for i in range(0, len(examples) - batch_size + 1, batch_size)] or [
        list(examples[:batch_size])
    ]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[dict[str, int]] = [{} for _ in range(clients)]
    answered_versions: set[int] = set()
    malformed: dict[str, Any] = {"requests": 0, "answered": 0, "errors": {}}
    tally_lock = threading.Lock()
    abusive: dict[str, Any] = {"requests": 0, "as_expected": 0, "unexpected": [], "grpc_predict_codes": {}}
    published: list[int] = []
    start_barrier = threading.Barrier(
        clients + malformed_clients + abusive_clients + (1 if new_version_every > 0 else 0) + 1
    )

    def client_loop(index: int) -> None:
        with PredictionClient(target, model_name, timeout=timeout, retries=0) as client:
            requests = [
                client.predict_request({"examples": tf.make_tensor_proto(batch, dtype=tf.string)})
                for batch in batches[:64]
            ]
            start_barrier.wait()
            deadline = time.perf_counter() + seconds
            for count, request in zip(range(max_requests), itertools.cycle(requests)):
                if time.perf_counter() >= deadline or (stop is not None and stop.is_set()):
                    break
                begin = time.perf_counter()
                try:
                    response = client.predictions.Predict(request, timeout=timeout)
                except grpc.RpcError as error:
                    errors[index][error.code().name] = errors[index].get(error.code().name, 0) + 1
                    continue
                latencies[index].append(1000.0 * (time.perf_counter() - begin))
                answered_versions.add(response.model_spec.version.value)

    def malformed_loop() -> None:
        with PredictionClient(target, model_name, timeout=timeout, retries=0) as client:
            request = client.predict_request({"examples": tf.make_tensor_proto([MALFORMED], dtype=tf.string)})
            start_barrier.wait()
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                try:
                    client.predictions.Predict(request, timeout=timeout)
                    outcome = None
                except grpc.RpcError as error:
                    outcome = error.code().name
                with tally_lock:
                    malformed["requests"] += 1
                    if outcome is None:
                        malformed["answered"] += 1
                    else:
                        malformed["errors"][outcome] = malformed["errors"].get(outcome, 0) + 1

    def abusive_loop(index: int) -> None:
        targets = abuse.Targets(target, rest_target, model_name)
        names = list(abuse.CASES)
        names = names[index % len(names) :] + names[: index % len(names)]  # each client starts elsewhere
        start_barrier.wait()
        deadline = time.perf_counter() + seconds
        for name in itertools.cycle(names):
            if time.perf_counter() >= deadline:
                break
            try:
                outcome = abuse.CASES[name].send(targets)
            except Exception as error:  # the server failed to answer in a way the case did not expect
                outcome = abuse.Outcome(f"client error {type(error).__name__}", str(error))
            problem = abuse.check(name, outcome)
            with tally_lock:
                abusive["requests"] += 1
                abusive["as_expected"] += problem is None
                if problem:
                    abusive["unexpected"].append(problem)
                if abuse.CASES[name].grpc_predict:
                    codes = abusive["grpc_predict_codes"]
                    codes[str(outcome.status)] = codes.get(str(outcome.status), 0) + 1

    def publisher_loop() -> None:
        start_barrier.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() + new_version_every < deadline:
            time.sleep(new_version_every)
            published.append(publish_copy_of_newest(model_base_path))

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    threads += [threading.Thread(target=malformed_loop) for _ in range(malformed_clients)]
    threads += [threading.Thread(target=abusive_loop, args=(i,)) for i in range(abusive_clients)]
    if new_version_every > 0:
        threads.append(threading.Thread(target=publisher_loop))
    counted_before = scrape_request_counts(metrics_target, "predict", "grpc") if metrics_target else {}
    summary = load_summary(latencies, errors, run_together(threads, start_barrier), batch_size)
    error_counts, ok = summary["errors"], summary["requests"]
    metrics = {}
    if metrics_target:
        after = scrape_request_counts(metrics_target, "predict", "grpc")
        counted = {code: after[code] - counted_before.get(code, 0) for code in after}
        sent = dict(error_counts)
        for code, count in [*malformed["errors"].items(), *abusive["grpc_predict_codes"].items()]:
            sent[code] = sent.get(code, 0) + count
        sent["OK"] = ok + malformed["answered"]
        sent = {code: count for code, count in sent.items() if count}
        counted = {code: count for code, count in counted.items() if count}
        metrics = {"server_metrics": {"counted": counted, "sent": sent, "match": counted == sent}}
    return {
        **summary,
        "failed_good_requests": sum(error_counts.values()),
        "versions_answered": sorted(answered_versions),
        **({"malformed": malformed} if malformed_clients else {}),
        **({"abusive": {**abusive, "unexpected": abusive["unexpected"][:20]}} if abusive_clients else {}),
        **({"versions_published": published} if new_version_every > 0 else {}),
        **metrics,
    }


def run_rest_load(
    rest_target: str, model_name: str, examples: Sequence[bytes], clients: int, seconds: float, batch_size: int
) -> dict[str, Any]:
    """`clients` threads POSTing ``:predict`` with `batch_size` base64 Examples each over a kept-alive
    HTTP/1.1 connection for `seconds`; the summary of `run_load` (latencies in milliseconds)."""
    import http.client

    host, port = rest_target.rsplit(":", 1)
    path = f"/v1/models/{model_name}:predict"
    bodies = [
        json.dumps(
            {"instances": [{"b64": base64.b64encode(example).decode()} for example in examples[i : i + batch_size]]}
        )
        for i in range(0, max(1, len(examples) - batch_size + 1), batch_size)
    ][:64]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[dict[str, int]] = [{} for _ in range(clients)]
    start_barrier = threading.Barrier(clients + 1)

    def client_loop(index: int) -> None:
        connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=30)
        start_barrier.wait()
        deadline = time.perf_counter() + seconds
        for body in itertools.cycle(bodies):
            if time.perf_counter() >= deadline:
                break
            begin = time.perf_counter()
            try:
                connection.request("POST", path, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                status = type(error).__name__
            if status == 200:
                latencies[index].append(1000.0 * (time.perf_counter() - begin))
            else:
                errors[index][str(status)] = errors[index].get(str(status), 0) + 1
        connection.close()

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    return load_summary(latencies, errors, run_together(threads, start_barrier), batch_size)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--examples", required=True, help="TFRecord file(s) of serialized tf.train.Examples (glob)")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--max_requests", type=int, default=1_000_000, help="per client")
    parser.add_argument("--malformed_clients", type=int, default=0, help="clients sending non-Example requests")
    parser.add_argument(
        "--abusive_clients",
        type=int,
        default=0,
        help="clients sending serving.abuse's cases in rotation (REST and gRPC)",
    )
    parser.add_argument("--rest_target", help="the server's REST HOST:PORT, for --abusive_clients")
    parser.add_argument("--new_version_every", type=float, default=0.0, help="seconds between new versions (0: none)")
    parser.add_argument("--model_base_path", help="the served base path, for --new_version_every")
    parser.add_argument(
        "--metrics_target", help="the server's REST HOST:PORT: check its request counts against what was sent"
    )
    args = parser.parse_args(argv)
    summary = run_load(
        args.target,
        args.model_name,
        read_examples(args.examples),
        args.clients,
        args.seconds,
        args.batch_size,
        args.max_requests,
        malformed_clients=args.malformed_clients,
        new_version_every=args.new_version_every,
        model_base_path=args.model_base_path,
        metrics_target=args.metrics_target,
        abusive_clients=args.abusive_clients,
        rest_target=args.rest_target,
    )
    print(json.dumps(summary, indent=2))
    if args.abusive_clients:
        report = summary["abusive"]
        print(
            f"[loadtest] abusive: {report['as_expected']} of {report['requests']} answered as they must be"
            + "".join(f"\n[loadtest]   {problem}" for problem in report["unexpected"])
        )
    if args.malformed_clients or args.new_version_every:
        print(
            f"[loadtest] {summary['failed_good_requests']} of {summary['requests'] + summary['failed_good_requests']} "
            f"good requests failed; malformed: {summary.get('malformed')}; versions published "
            f"{summary.get('versions_published', [])}, answered by {summary['versions_answered']}"
        )
    if "server_metrics" in summary:
        check = summary["server_metrics"]
        print(f"[loadtest] server counted {check['counted']}, clients sent {check['sent']}: match {check['match']}")
    failed = (
        summary["errors"]
        or summary.get("malformed", {}).get("answered")
        or summary.get("abusive", {}).get("unexpected")
    )
    return 1 if failed or not summary.get("server_metrics", {}).get("match", True) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
