"""`--strategy multi_worker`: two `python -m featnet_tf.train` processes on
127.0.0.1, each with its own TF_CONFIG, as on two hosts sharing the run
directory."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from featnet_tf import workers
from tests.helpers import REPO_ROOT
from tests.test_train import TINY

# Without dropout: its masks are drawn per replica, so they differ between one and two replicas.
STEPS = ["--set", "training.epochs=2", "--set", "training.steps_per_epoch=6", "--set", "model.dropout=0.0"]
LOSS_RTOL = 1e-4  # float32 sums in another order; measured 1e-7
WORKER_TIMEOUT = 10  # --worker_timeout of the killed-worker test
FAILURE_DEADLINE = WORKER_TIMEOUT + 30  # a killed worker fails the run within this many seconds


def start_workers(args: list[str], count: int = 2) -> list[subprocess.Popen]:
    processes = []
    for tf_config in workers.loopback_tf_configs(count):
        env = dict(os.environ, TF_CONFIG=tf_config)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "featnet_tf.train", "--strategy", "multi_worker"] + args,
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return processes


def finish(processes: list[subprocess.Popen], timeout: float = 300) -> list[tuple[int, str, str]]:
    results = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
        results.append((process.returncode, stdout, stderr))
    return results


@pytest.fixture(scope="module")
def data_dir(criteo_data):
    return criteo_data


@pytest.mark.large
def test_two_workers_train_as_one_process_of_the_same_global_batch_and_the_chief_alone_writes(data_dir, tmp_path):
    common = ["--data_dir", data_dir] + TINY + STEPS
    processes = start_workers(common + ["--run_dir", str(tmp_path / "two"), "--set", "data.batch_size=64"])
    (chief_code, chief_out, chief_err), (worker_code, worker_out, worker_err) = finish(processes)
    assert chief_code == 0, chief_err[-3000:]
    assert worker_code == 0, worker_err[-3000:]
    assert "worker 0 of 2, chief" in chief_out and "worker 1 of 2 (" in worker_out
    assert "2 replica(s) (CollectiveAllReduceStrategy), global batch 128" in chief_out

    # only the chief evaluates and exports; nothing of the other worker is left in the run directory
    assert "test AUC" in chief_out and "exported" in chief_out
    assert "test AUC" not in worker_out and "exported" not in worker_out
    assert "the chief evaluates and exports" in worker_out
    run = tmp_path / "two"
    assert sorted(os.listdir(run / "export")) == [".last_version", "1"], "one export, by one process"
    assert not glob.glob(str(run / "**" / "workertemp_*"), recursive=True)
    assert not (run / "backup").exists()
    event_files = glob.glob(str(run / "logs" / "**" / "events.out.tfevents.*"), recursive=True)
    assert event_files and {name.split(".")[-3] for name in event_files} == {str(processes[0].pid)}
    for name in ("config.yaml", "history.json", "metrics.json", "export.json", "checkpoints/best.index"):
        assert (run / name).exists(), name

    single = subprocess.run(
        [sys.executable, "-m", "featnet_tf.train", "--strategy", "one_device", "--no_export"]
        + common
        + ["--run_dir", str(tmp_path / "one"), "--set", "data.batch_size=128"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    histories = [json.loads((tmp_path / name / "history.json").read_text())["history"] for name in ("two", "one")]
    for key in ("loss", "val_logloss", "val_auc"):
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=LOSS_RTOL, err_msg=key)


@pytest.mark.large
def test_a_killed_worker_fails_the_run_clearly_within_the_stated_timeout(data_dir, tmp_path):
    args = ["--data_dir", data_dir, "--run_dir", str(tmp_path / "run"), "--no_export"] + TINY
    args += ["--set", "training.epochs=1", "--set", "training.steps_per_epoch=5000"]
    chief, worker = start_workers(args + ["--worker_timeout", str(WORKER_TIMEOUT)])
    try:
        lines = []
        for line in worker.stdout:  # wait until the worker is training
            lines.append(line)
            if "starting at step 0" in line:
                break
        else:
            pytest.fail(f"the worker ended before training: {''.join(lines)}{worker.stderr.read()[-3000:]}")
        time.sleep(2.0)
        assert chief.poll() is None, "the chief ended before the worker was killed"
        worker.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = chief.communicate(timeout=FAILURE_DEADLINE + 60)
        seconds = time.monotonic() - killed
    finally:
        for process in (chief, worker):
            process.kill()
            process.wait()
    assert chief.returncode == 4, stderr[-3000:]
    assert seconds <= FAILURE_DEADLINE, f"the chief noticed the dead worker after {seconds:.0f} s"
    message = [line for line in stderr.splitlines() if line.startswith("[train] error:")]
    assert len(message) == 1 and "a worker failed during training" in message[0], stderr[-3000:]
    assert "task:1" in message[0], "the error names the dead worker"
    assert "to resume from the last backup in" in message[0]


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "needs TF_CONFIG naming the cluster and this task"),
        ("{not json", "TF_CONFIG is not a valid cluster and task .JSONDecodeError"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}}', r"\(KeyError: 'task'\)"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "chief", "index": 0}}', r"\(KeyError: 'chief'\)"),
        (
            '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}',
            "task index 1 is not one of the 1 worker tasks",
        ),
    ],
)
def test_a_missing_or_malformed_tf_config_is_refused_naming_the_problem(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        workers.configure()
