"""What bounds `serving.server`: the model call and the gRPC path, each alone.

One run, one measurement after the other, on the demo's export:

1. ``model call``: the SavedModel's restored `serving_default` (a
   `tf.function`, as `tf.saved_model.load` gives it) against the server's
   `Servable.run` (the version loaded into a session, one callable per
   signature), called in this process at batch 1, 8 and 64: p50 ms and CPU
   ms per call (all of this process' threads).
2. ``grpc only``: a PredictionService that answers every Predict with a
   constant, no model and no checks, in a subprocess; the load generator is
   `serving.loadtest` (1 and 8 clients, batch 1). The floor of gRPC in
   Python on both ends.
3. ``no model``: `serving.server` itself with every model call answered by
   zeros of the signature's outputs: the server's own request path (checks,
   batching, metrics, protos) on top of gRPC, without TensorFlow's work.

Each gRPC line gives QPS, p50/p99 ms, and the CPU per request of the server
process and of the load generator (this process): on a 2-core machine the two
share the cores.

    python benchmarks/serving_floors.py --export_base demo_output/run/export \
        --examples 'demo_output/data/test/*.tfrecord.gz' --seconds 6
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as stream:
        fields = stream.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_model_calls(export_dir: str, examples: list[bytes], batch_sizes: list[int], calls: int) -> None:
    import tensorflow as tf

    from serving.servable import load_servable

    restored = tf.saved_model.load(export_dir).signatures["serving_default"]
    servable = load_servable("featnet", 0, export_dir)
    paths = {
        "restored tf.function signature": lambda batch: restored(examples=tf.constant(batch))["probability"].numpy(),
        "session callable (serving.servable)": lambda batch: servable.run("serving_default", {"examples": batch}),
    }
    for batch_size in batch_sizes:
        batches = [np.array(examples[i : i + batch_size], dtype=object) for i in range(0, 64 * batch_size, batch_size)]
        for label, call in paths.items():
            for batch in batches[:10]:
                call(batch)
            latencies, cpu_before = [], own_cpu_seconds()
            for index in range(calls):
                begin = time.perf_counter()
                call(batches[index % len(batches)])
                latencies.append(1000 * (time.perf_counter() - begin))
            cpu_ms = 1000 * (own_cpu_seconds() - cpu_before) / calls
            print(
                f"model call, batch {batch_size:>2}, {label}: p50 {np.percentile(latencies, 50):.2f} ms, "
                f"CPU {cpu_ms:.2f} ms a call",
                flush=True,
            )


def serve_constant(port: int) -> None:
    """A PredictionService answering one constant probability to everything."""
    import concurrent.futures

    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from serving import tensors

    answer = predict_pb2.PredictResponse()
    answer.outputs["probability"].CopyFrom(tensors.to_proto(np.full([1, 1], 0.5, np.float32)))

    class Constant(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            return answer

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=16))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Constant(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"[server] serving model 'featnet' version 1 on 127.0.0.1:{bound}", flush=True)
    server.wait_for_termination()


def serve_without_model(argv: list[str]) -> None:
    """`serving.server` whose model calls answer zeros of the outputs' shapes."""
    import tensorflow as tf

    from serving import server
    from serving.servable import Servable

    shapes: dict[tuple, list] = {}  # (servable, signature): each output's key, row-free dims and dtype

    def zeros(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = shapes.get((id(self), signature))
        if outputs is None:
            outputs = shapes[(id(self), signature)] = [
                (
                    key,
                    None if info.tensor_shape.unknown_rank else [dim.size for dim in info.tensor_shape.dim],
                    tf.dtypes.as_dtype(info.dtype).as_numpy_dtype,
                )
                for key, info in self.signature_defs[signature].outputs.items()
            ]
        rows = len(next(iter(inputs.values())))
        return {
            key: np.zeros([rows, 1] if dims is None else [rows if size < 0 else size for size in dims], dtype)
            for key, dims, dtype in outputs
        }

    Servable.run = zeros
    sys.exit(server.serve(server.parse_args(argv)))


def load_against(command: list[str], examples: list[bytes], seconds: float, label: str) -> None:
    from serving.loadtest import run_load

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:
            if "[server] serving model" in line:
                break
        else:
            raise RuntimeError(f"the {label} server did not start")
        target = "127.0.0.1:" + line.rsplit(":", 1)[1].strip()
        run_load(target, "featnet", examples, 8, 1.0, 1)  # warm up both ends
        for clients in (1, 8):
            server_before, own_before = process_cpu_seconds(process.pid), own_cpu_seconds()
            result = run_load(target, "featnet", examples, clients, seconds, 1)
            server_ms = 1000 * (process_cpu_seconds(process.pid) - server_before) / result["requests"]
            own_ms = 1000 * (own_cpu_seconds() - own_before) / result["requests"]
            print(
                f"{label}, batch 1, {clients} client(s): {result['qps']:,.0f} QPS, p50 {result['p50_ms']:.2f} ms, "
                f"p99 {result['p99_ms']:.2f} ms; CPU a request: server {server_ms:.2f} ms, load generator "
                f"{own_ms:.2f} ms",
                flush=True,
            )
    finally:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export_base")
    parser.add_argument("--examples")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--calls", type=int, default=300, help="timed in-process calls per batch size")
    parser.add_argument("--serve", choices=["constant", "no_model"], help=argparse.SUPPRESS)  # the subprocesses
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve == "constant":
        return serve_constant(args.port)
    if args.serve == "no_model":
        return serve_without_model(
            ["--model_name", "featnet", "--model_base_path", args.export_base, "--port", "0", "--rest_api_port", "0"]
        )
    if not args.export_base or not args.examples:
        parser.error("--export_base and --examples are required")
    from serving.loadtest import read_examples
    from tfbase.versions import list_versions

    examples = read_examples(args.examples, limit=20_000)
    export_dir = os.path.join(args.export_base, str(list_versions(args.export_base)[-1]))
    time_model_calls(export_dir, examples, [1, 8, 64], args.calls)
    this = [sys.executable, os.path.abspath(__file__)]
    load_against([*this, "--serve", "constant"], examples, args.seconds, "grpc only (constant answer)")
    no_model = [*this, "--serve", "no_model", "--export_base", os.path.abspath(args.export_base)]
    load_against(no_model, examples, args.seconds, "serving.server without the model")


if __name__ == "__main__":
    main(sys.argv[1:])
