"""Do malformed requests fail the well-formed requests merged with them?

Serves an export with `serving.server` (server-side batching on) and, for the
same seconds, runs N clients sending well-formed single-row Predict requests
beside M clients sending ``b"not an example"``; prints how many of each
failed, by status code. Well-formed requests should never fail.

    python benchmarks/serving_bad_neighbours.py --model_base_path demo_output/run/export \
        --examples 'demo_output/data/test/*.tfrecord.gz' --clients 8 --bad_clients 2 --seconds 8
"""

from __future__ import annotations

import argparse
import sys
import threading

from serving.loadtest import read_examples, run_load
from serving.local import LocalServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_base_path", required=True)
    parser.add_argument("--examples", required=True, help="TFRecord files of well-formed serialized examples")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--bad_clients", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args(argv)
    good_examples = read_examples(args.examples, limit=1000)
    results = {}
    with LocalServer(args.model_base_path, "featnet") as server:

        def load(label: str, examples: list[bytes], clients: int) -> None:
            results[label] = run_load(server.target, "featnet", examples, clients, args.seconds, batch_size=1)

        threads = [
            threading.Thread(target=load, args=("well-formed", good_examples, args.clients)),
            threading.Thread(target=load, args=("malformed", [b"not an example"], args.bad_clients)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for label, result in results.items():
        failed = sum(result["errors"].values())
        sent = result["requests"] + failed
        print(f"{label}: {sent} requests, {failed} failed ({failed / max(sent, 1):.1%}) {result['errors']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
