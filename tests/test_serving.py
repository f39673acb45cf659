"""serving.server speaks TF Serving's gRPC API: answers, hot reload, errors, concurrency."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, regression_pb2

from featnet_tf import prepared_data, saved_model
from serving.client import PredictionClient
from serving.local import LocalServer

MAX_BATCH = 64


@contextlib.contextmanager
def running_server(base_path: str, model_name: str = "featnet", *extra: str):
    flags = ["--file_system_poll_wait_seconds", "0.2", "--max_batch_size", str(MAX_BATCH), *extra]
    with LocalServer(base_path, model_name, *flags) as server:
        yield server
    assert server.returncode == 0, "the server did not stop gracefully on SIGTERM:\n" + "".join(server.output[-20:])


@pytest.fixture(scope="module")
def deployment(tiny_run, tiny_export, tmp_path_factory):
    """The suite's tiny FeatNet export served from a base path of this module's own."""
    base = os.path.join(str(tmp_path_factory.mktemp("serving")), "models", "featnet")
    shutil.copytree(tiny_export, os.path.join(base, "1"))
    run = tiny_run
    files = prepared_data.split_files(run.config.data.data_dir, "test")
    examples = [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(200)]
    own = tf.saved_model.load(os.path.join(base, "1")).signatures["serving_default"]
    expected = own(examples=tf.constant(examples))["probability"].numpy()
    with running_server(base) as server:
        yield {
            "run": run,
            "base": base,
            "target": server.target,
            "rest": server.rest_target,
            "examples": examples,
            "expected": expected,
        }


def as_raw_row(serialized: bytes) -> dict:
    example = tf.train.Example.FromString(serialized)
    row = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value)
        if name != "label":
            row[name] = values[0].decode() if kind == "bytes_list" else values[0]
    return row


def test_grpc_predictions_equal_the_saved_models_own(deployment):
    examples, expected = deployment["examples"][:50], deployment["expected"][:50]
    with PredictionClient(deployment["target"], "featnet") as client:
        from_examples = client.predict([tf.train.Example.FromString(e) for e in examples])
        from_raw_rows = client.predict([as_raw_row(e) for e in examples])
        inputs = client.signature_inputs("predict_raw")
        raw = saved_model.raw_inputs_from_examples(deployment["run"].spec, examples)
        outputs, version = client.predict_tensors({name: raw[name] for name in inputs}, "predict_raw")
    np.testing.assert_allclose(from_examples, expected, atol=1e-6)
    np.testing.assert_allclose(from_raw_rows, expected, atol=1e-6)
    np.testing.assert_allclose(outputs["probability"], expected, atol=1e-6)
    assert version == 1 and inputs["C1"] == ("string", [-1]) and inputs["I1"] == ("float32", [-1])


def test_the_client_command_prints_each_rows_probability(deployment, tmp_path, capsys):
    """README's ``python -m serving.client --target … --model_name featnet --rows rows.jsonl``."""
    from serving import client

    rows = [as_raw_row(e) for e in deployment["examples"][:20]]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert client.main(["--target", deployment["target"], "--model_name", "featnet", "--rows", str(path)]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["row"] for line in printed] == rows
    probabilities = [line["probability"] for line in printed]  # printed to 6 decimals
    np.testing.assert_allclose(probabilities, deployment["expected"][:20], atol=2e-6)


def test_the_client_sends_more_rows_than_the_servers_batch_in_chunks(deployment):
    examples = [tf.train.Example.FromString(e) for e in deployment["examples"]]
    assert len(examples) > 3 * MAX_BATCH
    with PredictionClient(deployment["target"], "featnet", max_batch_size=MAX_BATCH) as client:
        np.testing.assert_allclose(client.predict(examples), deployment["expected"], atol=1e-6)


def test_classify_and_regress_apis(deployment):
    channel = grpc.insecure_channel(deployment["target"])
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    examples = [tf.train.Example.FromString(e) for e in deployment["examples"][:5]]
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name, classify.model_spec.signature_name = "featnet", "classification"
    classify.input.example_list.examples.extend(examples)
    result = stub.Classify(classify, timeout=10).result.classifications
    assert [c.label for c in result[0].classes] == ["0", "1"]
    np.testing.assert_allclose([c.classes[1].score for c in result], deployment["expected"][:5], atol=1e-6)
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name, regress.model_spec.signature_name = "featnet", "regression"
    regress.input.example_list.examples.extend(examples)
    values = [r.value for r in stub.Regress(regress, timeout=10).result.regressions]
    np.testing.assert_allclose(values, deployment["expected"][:5], atol=1e-6)
    channel.close()


def test_eight_concurrent_clients_get_every_answer_right(deployment):
    examples, expected = deployment["examples"], deployment["expected"]
    failures: list[str] = []

    def loop(index: int) -> None:
        with PredictionClient(deployment["target"], "featnet") as client:
            for request in range(200):
                start = (index * 200 + request) % (len(examples) - 4)
                size = 1 + request % 4
                got = client.predict([tf.train.Example.FromString(e) for e in examples[start : start + size]])
                if not np.allclose(got, expected[start : start + size], atol=1e-6):
                    failures.append(f"client {index} request {request}: {got} != {expected[start : start + size]}")

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value


def test_every_error_returns_its_status_and_names_the_fault(deployment):
    target, examples = deployment["target"], deployment["examples"]
    raw = saved_model.raw_inputs_from_examples(deployment["run"].spec, examples[:3])
    with PredictionClient(target, "no_such_model", retries=0) as client:
        error = rpc_error(lambda: client.predict([tf.train.Example()]))
        assert error.code() == grpc.StatusCode.NOT_FOUND and "no_such_model" in error.details()
    with PredictionClient(target, "featnet", version=99, retries=0) as client:
        error = rpc_error(lambda: client.predict([tf.train.Example()]))
        assert error.code() == grpc.StatusCode.NOT_FOUND and "99" in error.details()
    with PredictionClient(target, "featnet", retries=0) as client:
        missing = {k: v for k, v in raw.items() if k != "C7"}
        error = rpc_error(lambda: client.predict_tensors(missing, "predict_raw"))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "C7" in error.details()
        mistyped = dict(raw, C1=np.array([1.0, 2.0, 3.0], np.float32))
        error = rpc_error(lambda: client.predict_tensors(mistyped, "predict_raw"))
        assert (
            error.code() == grpc.StatusCode.INVALID_ARGUMENT
            and "'C1'" in error.details()
            and "DT_STRING" in error.details()
        )
        misshaped = dict(raw, I1=np.zeros((3, 2), np.float32))
        error = rpc_error(lambda: client.predict_tensors(misshaped, "predict_raw"))
        assert (
            error.code() == grpc.StatusCode.INVALID_ARGUMENT
            and "'I1'" in error.details()
            and "shape" in error.details()
        )
        too_many = np.array([tf.train.Example().SerializeToString()] * (MAX_BATCH + 1), dtype=object)
        error = rpc_error(lambda: client.predict_tensors({"examples": too_many}))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "max_batch_size" in error.details()

        # errors raised inside the model name the row and the feature, not "Graph execution error"
        def details_of(example: bytes) -> str:
            error = rpc_error(lambda: client.predict_tensors({"examples": np.array([examples[0], example], object)}))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "Graph execution" not in error.details()
            return error.details()

        assert "row 1 of input 'examples' is not a serialized tf.train.Example" in details_of(b"not a proto")
        mistyped = tf.train.Example.FromString(examples[0])
        mistyped.features.feature["I1"].Clear()
        mistyped.features.feature["I1"].bytes_list.value.append(b"three")
        assert "row 1: feature 'I1' holds strings (bytes_list), the model expects floats (float_list)" in details_of(
            mistyped.SerializeToString()
        )
        mistyped.features.feature["I1"].Clear()
        mistyped.features.feature["I1"].float_list.value.extend([1.0, 2.0])
        assert "row 1: feature 'I1' holds 2 values, the model expects exactly one" in details_of(
            mistyped.SerializeToString()
        )
        error = rpc_error(
            lambda: client.predict_tensors({"examples": np.array([examples[0]], dtype=object)}, "no_signature")
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "no_signature" in error.details()


def test_hot_reload_fails_no_request_and_a_broken_version_keeps_the_old_one(deployment):
    base, target = deployment["base"], deployment["target"]
    examples = [tf.train.Example.FromString(e) for e in deployment["examples"][:3]]
    failures, versions, stop = [], set(), threading.Event()

    def loop() -> None:
        with PredictionClient(target, "featnet", retries=0) as client:
            while not stop.is_set():
                try:
                    request = client.predict_request(
                        {"examples": tf.make_tensor_proto([e.SerializeToString() for e in examples])}
                    )
                    versions.add(client.predictions.Predict(request, timeout=10).model_spec.version.value)
                except grpc.RpcError as error:
                    failures.append(error.code())

    thread = threading.Thread(target=loop)
    thread.start()
    time.sleep(0.5)
    saved_model.export_saved_model(deployment["run"].serving_model(), deployment["run"].spec, base)
    deadline = time.time() + 60
    while 2 not in versions and time.time() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join()
    assert failures == [] and versions == {1, 2}

    staged = os.path.join(base, ".tmp-broken")
    shutil.copytree(os.path.join(base, "2"), staged)
    with open(os.path.join(staged, "saved_model.pb"), "wb") as stream:
        stream.write(b"this is not a SavedModel")
    os.rename(staged, os.path.join(base, "3"))
    with PredictionClient(target, "featnet") as client:
        deadline = time.time() + 30
        while not any(version == 3 for version, _, _ in client.status()) and time.time() < deadline:
            time.sleep(0.1)
        statuses = {version: (state, message) for version, state, message in client.status()}
        assert statuses[3][0] == "END" and statuses[3][1], statuses
        assert statuses[2][0] == "AVAILABLE"
        _, version = client.predict_tensors({"examples": tf.make_tensor_proto([examples[0].SerializeToString()])})
        assert version == 2


def test_loadtest_good_clients_fail_never_beside_a_malformed_one_and_a_new_version_every_second(deployment):
    """`serving.loadtest --malformed_clients 1 --new_version_every 1`, against the hot-reloaded base path."""
    from serving import loadtest

    shutil.rmtree(os.path.join(deployment["base"], "3"))  # the broken version of the test above
    summary = loadtest.run_load(
        deployment["target"],
        "featnet",
        deployment["examples"],
        clients=4,
        seconds=6.0,
        batch_size=1,
        malformed_clients=1,
        new_version_every=1.0,
        model_base_path=deployment["base"],
        metrics_target=deployment["rest"],
    )
    assert summary["requests"] > 0 and summary["failed_good_requests"] == 0, summary
    counts = summary["server_metrics"]
    assert counts["match"], f"the server's metrics counted {counts['counted']}, the clients sent {counts['sent']}"
    assert counts["sent"]["OK"] == summary["requests"] and counts["sent"]["INVALID_ARGUMENT"] > 0
    malformed = summary["malformed"]
    assert malformed["requests"] > 0 and malformed["errors"] == {"INVALID_ARGUMENT": malformed["requests"]}
    assert len(summary["versions_published"]) >= 4, summary


# === REST, as TF Serving has it, and the metrics endpoint ===


def rest(deployment, method: str, path: str, body=None) -> tuple[int, dict | str]:
    import urllib.error
    import urllib.request

    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(f"http://{deployment['rest']}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    return status, (json.loads(text) if text.startswith("{") else text)


def test_rest_and_grpc_give_the_same_probabilities(deployment):
    import base64

    examples, expected = deployment["examples"][:6], deployment["expected"][:6]
    encoded = [{"b64": base64.b64encode(example).decode()} for example in examples]
    status, rows = rest(deployment, "POST", "/v1/models/featnet:predict", {"instances": encoded})
    assert status == 200, rows
    np.testing.assert_allclose([row["probability"] for row in rows["predictions"]], expected, atol=1e-6)
    served = next(
        entry["version"]
        for entry in rest(deployment, "GET", "/v1/models/featnet")[1]["model_version_status"]
        if entry["state"] == "AVAILABLE"
    )
    status, columns = rest(
        deployment, "POST", f"/v1/models/featnet/versions/{served}:predict", {"inputs": {"examples": encoded}}
    )
    assert status == 200, columns
    np.testing.assert_allclose(columns["outputs"]["probability"], expected, atol=1e-6)

    raw = saved_model.raw_inputs_from_examples(deployment["run"].spec, examples)
    inputs = {
        name: [value.decode() if isinstance(value, bytes) else value for value in np.asarray(column).tolist()]
        for name, column in raw.items()
    }
    status, raw_answer = rest(
        deployment, "POST", "/v1/models/featnet:predict", {"signature_name": "predict_raw", "inputs": inputs}
    )
    assert status == 200, raw_answer
    np.testing.assert_allclose(raw_answer["outputs"]["probability"], expected, atol=1e-6)

    features = [as_raw_row(example) for example in examples]
    status, classified = rest(
        deployment, "POST", "/v1/models/featnet:classify", {"signature_name": "classification", "examples": features}
    )
    assert status == 200, classified
    assert [label for label, _ in classified["result"][0]] == ["0", "1"]
    np.testing.assert_allclose([row[1][1] for row in classified["result"]], expected, atol=1e-6)
    status, regressed = rest(
        deployment, "POST", "/v1/models/featnet:regress", {"signature_name": "regression", "examples": features}
    )
    assert status == 200, regressed
    np.testing.assert_allclose(regressed["result"], expected, atol=1e-6)


def test_rest_status_metadata_and_errors_are_tf_servings(deployment):
    status, body = rest(deployment, "GET", "/v1/models/featnet")
    assert status == 200
    available = [entry for entry in body["model_version_status"] if entry["state"] == "AVAILABLE"]
    assert len(available) == 1 and available[0]["status"] == {"error_code": "OK", "error_message": ""}, body
    status, body = rest(deployment, "GET", f"/v1/models/featnet/versions/{available[0]['version']}")
    assert status == 200 and body["model_version_status"] == available
    status, body = rest(deployment, "GET", "/v1/models/featnet/metadata")
    assert status == 200 and "predict_raw" in body["metadata"]["signature_def"]["signature_def"]

    cases = [
        ("POST", "/v1/models/nope:predict", {"instances": [1]}, 404, "model 'nope' is not served"),
        ("POST", "/v1/models/featnet/versions/99:predict", {"instances": [1]}, 404, "Specific(featnet, 99)"),
        ("POST", "/v1/models/featnet:predict", b"{not json", 400, "the request body is not JSON"),
        ("POST", "/v1/models/featnet:predict", {"rows": []}, 400, "exactly one of 'instances'"),
        ("POST", "/v1/models/featnet:predict", {"instances": [{"b64": "%%"}]}, 400, "invalid base64"),
        ("POST", "/v1/models/featnet:predict", {"instances": ["x"], "signature_name": "nope"}, 400, "not found"),
        ("POST", "/v1/models/featnet:classify", {"examples": [{"I1": 1.0}]}, 400, "expected tensorflow/serving/class"),
        (
            "POST",
            "/v1/models/featnet:classify",
            {"signature_name": "classification", "examples": [{"I1": 3}]},
            400,
            "row 0: feature 'I1' holds integers (int64_list), the model expects floats",
        ),
        ("GET", "/v1/models/featnet:predict", None, 404, "Malformed request"),
        ("GET", "/v2/anything", None, 404, "Malformed request"),
    ]
    for method, path, body, want_status, message in cases:
        status, answer = rest(deployment, method, path, body)
        assert status == want_status and message in answer["error"], (path, body, status, answer)


def test_rest_refuses_what_tf_serving_refuses_and_coerces_nothing(deployment):
    """Issue 29, cases 3 and 6: every request answered as TF Serving's {"error": ...}, naming row and input."""
    raw = saved_model.raw_inputs_from_examples(deployment["run"].spec, deployment["examples"][:2])
    inputs = {
        name: [value.decode() if isinstance(value, bytes) else value for value in np.asarray(column).tolist()]
        for name, column in raw.items()
    }

    def predict_raw_with_i1(literal: str) -> tuple[int, dict]:
        body = json.dumps({"signature_name": "predict_raw", "inputs": {**inputs, "I1": [1.0, "__X__"]}})
        return rest(deployment, "POST", "/v1/models/featnet:predict", body.replace('"__X__"', literal).encode())

    for literal, message in (
        ("null", "row 1 of input 'I1': DT_FLOAT takes a number, got null"),
        ('"3.5"', "row 1 of input 'I1': DT_FLOAT takes a number, got \"3.5\""),
        ("true", "row 1 of input 'I1': DT_FLOAT takes a number, got true"),
        ("1e400", "row 1 of input 'I1': DT_FLOAT takes a finite number (or NaN), got inf"),
        ("1e39", "input 'I1' at [1]: the value is out of the range of float32"),
        ("-Infinity", "-Infinity is not a JSON number"),
    ):
        status, answer = predict_raw_with_i1(literal)
        assert status == 400 and message in answer["error"], (literal, status, answer)
    assert predict_raw_with_i1("3.5")[0] == 200, "a number is a number"
    assert predict_raw_with_i1("NaN")[0] == 200, "NaN: the raw signature's missing number, as TF Serving reads it"
    cases = [
        (":predict", b"[" * 2000 + b"]" * 2000, 400, "nests JSON deeper than the server parses"),
        (":predict", {"instances": ["x"], "signature_name": 7}, 400, "'signature_name' must be a string, got 7"),
        (":classify", {"signature_name": "classification", "examples": [{"I1": 2**70}]}, 400, "range of int64"),
    ]
    for verb, body, want_status, message in cases:
        status, answer = rest(deployment, "POST", f"/v1/models/featnet{verb}", body)
        assert status == want_status and message in answer["error"], (body, status, answer)
    status, answer = rest(deployment, "GET", "/v1/models/featnet/versions/99999999999999999999")
    assert status == 404 and "has no version 99999999999999999999" in answer["error"], answer


def test_the_metrics_endpoint_counts_requests_by_api_code_and_version_and_batch_sizes(deployment):
    import base64

    from prometheus_client.parser import text_string_to_metric_families

    from serving.metrics import scrape_request_counts

    def batch_calls() -> float:
        _, text = rest(deployment, "GET", "/monitoring/prometheus/metrics")
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "serving_batch_size_count"
        )

    before, calls_before = scrape_request_counts(deployment["rest"], "predict", "rest"), batch_calls()
    encoded = [{"b64": base64.b64encode(deployment["examples"][0]).decode()}]
    for _ in range(3):
        assert rest(deployment, "POST", "/v1/models/featnet:predict", {"instances": encoded})[0] == 200
    assert rest(deployment, "POST", "/v1/models/featnet:predict", {"instances": [{"b64": "%%"}]})[0] == 400
    after = scrape_request_counts(deployment["rest"], "predict", "rest")
    assert after.get("OK", 0) - before.get("OK", 0) == 3
    assert after.get("INVALID_ARGUMENT", 0) - before.get("INVALID_ARGUMENT", 0) == 1
    assert batch_calls() - calls_before == 3, "one model call per well-formed request (they came one at a time)"
    _, text = rest(deployment, "GET", "/monitoring/prometheus/metrics")
    assert 'serving_requests_total{api="predict",code="OK",entrypoint="rest",model="featnet",version="' in text
    assert 'serving_request_latency_seconds_bucket{api="predict",entrypoint="rest"' in text
