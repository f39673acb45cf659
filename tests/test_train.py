"""featnet_tf.train / evaluate / export: end to end, skew, MirroredStrategy, resume, bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from featnet_tf import callbacks, evaluate, experiments, export, lifecycle, saved_model, train, training
from featnet_tf import config as config_lib
from featnet_tf.metrics import binary_auc
from tests.helpers import REPO_ROOT
from tfbase.versions import list_versions

TINY_OVERRIDES = {
    "model.embedding_dim": 4,
    "model.num_subsets": 2,
    "model.num_queries": 3,
    "model.tower_units": [8],
    "model.dnn_units": [16],
    "training.learning_rate": 0.003,
    "data.batch_size": 128,
    "data.eval_batch_size": 512,
}
# The same, as the command line takes it.
TINY = [item for key, value in TINY_OVERRIDES.items() for item in ("--set", f"{key}={value}")]


def tiny_config(data_dir: str, overrides: dict | None = None) -> config_lib.ExperimentConfig:
    """The `featnet` experiment, made tiny, on `data_dir`, with dotted `overrides`."""
    return experiments.experiment("featnet", **{**TINY_OVERRIDES, "data.data_dir": data_dir, **(overrides or {})})


@pytest.fixture(scope="module")
def data_dir(criteo_data):
    return criteo_data


@pytest.fixture(scope="module")
def trained_run(data_dir, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("runs") / "featnet")
    config = tiny_config(data_dir, {"training.epochs": 3})
    result = lifecycle.Trainer(config, run_dir).run()
    assert result.stages_run == ("fit", "evaluate", "export")
    return run_dir


def run_train_subprocess(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "featnet_tf.train"] + args,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )


def test_train_evaluate_export_check_end_to_end(trained_run, data_dir, capsys):
    with open(os.path.join(trained_run, "metrics.json")) as stream:
        metrics = json.load(stream)
    assert metrics["examples"] == len(
        list(tf.data.TFRecordDataset(tf.io.gfile.glob(f"{data_dir}/test/*"), compression_type="GZIP"))
    )
    # the rows' true click probabilities bound what any model can reach on them
    from pipelines.synthesize import split_truth

    labels, truth = split_truth(os.path.join(os.path.dirname(data_dir), "criteo.tsv"), "test")
    bayes, rate = binary_auc(labels, truth), labels.mean()
    # chance is 0.5 ± 0.014 on these 1,970 rows; the tiny model learns to about 0.61 in its 3 epochs
    assert 0.58 < metrics["auc"] < bayes + 0.02, (metrics["auc"], bayes)
    base_rate_logloss = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    # the best epoch (the first here) is about as calibrated as the click rate itself; an overfit one is far worse
    assert 0 < metrics["logloss"] < base_rate_logloss + 0.02, (metrics["logloss"], base_rate_logloss)
    config = experiments.load(os.path.join(trained_run, "config.yaml"))
    assert metrics["config_hash"] == config.config_hash() and config.model.params["num_subsets"] == 2
    assert os.path.exists(os.path.join(trained_run, "logs")), "TensorBoard logs"
    assert not tf.io.gfile.glob(os.path.join(trained_run, "backup", "**", "*")), (
        "the backup is deleted after a finished run"
    )
    with open(os.path.join(trained_run, "history.json")) as stream:
        val_auc = json.load(stream)["history"]["val_auc"]
    assert max(val_auc) > 0.6, f"validation AUC stayed near chance: {val_auc}"

    # the best epoch is chosen on the exact validation AUC, not Keras' 200-bucket estimate
    with open(os.path.join(trained_run, "checkpoints", "best.json")) as stream:
        best = json.load(stream)
    labels, probabilities = training.predict(training.load_run(trained_run), "valid")
    assert best["val_auc"] == pytest.approx(binary_auc(labels, probabilities), abs=1e-6) == max(val_auc)

    # evaluation reproduces the metrics from the run directory alone
    os.remove(os.path.join(trained_run, "metrics.json"))
    again = training.evaluate_run(training.load_run(trained_run), "test")
    with open(os.path.join(trained_run, "metrics.json")) as stream:
        assert json.load(stream) == again
    assert again["auc"] == pytest.approx(metrics["auc"], abs=1e-9) and again["examples"] == metrics["examples"]

    export_dir = os.path.join(trained_run, "export", "1")
    assert os.path.exists(os.path.join(export_dir, "saved_model.pb"))
    assert os.path.exists(os.path.join(export_dir, saved_model.WARMUP_FILE))
    assert any(name.endswith(".txt") for name in os.listdir(os.path.join(export_dir, "assets"))), (
        "vocabularies are assets"
    )

    # export again: the next version, checked by the servability check
    published = lifecycle.export_run(training.load_run(trained_run))
    assert published.path == os.path.join(trained_run, "export", "2") and published.report["ops"] > 0
    assert list_versions(os.path.join(trained_run, "export")) == [1, 2]
    assert not [name for name in os.listdir(os.path.join(trained_run, "export")) if name.startswith(".tmp")]


def test_no_training_serving_skew(trained_run, data_dir):
    """The same raw test rows through serving_default, predict_raw and the
    training path (tf.data transform → ranker) give the same probabilities."""
    run = training.load_run(trained_run)
    labels, training_path = training.predict(run, "test")
    files = sorted(tf.io.gfile.glob(os.path.join(data_dir, "test", "*.tfrecord.gz")))
    examples = [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    loaded = tf.saved_model.load(os.path.join(trained_run, "export", "1"))
    from_examples = loaded.signatures["serving_default"](examples=tf.constant(examples))["probability"].numpy()
    raw = saved_model.raw_inputs_from_examples(run.spec, examples)
    from_raw = loaded.signatures["predict_raw"](**{k: tf.constant(v) for k, v in raw.items()})["probability"].numpy()
    assert len(training_path) == len(examples) > 100
    np.testing.assert_allclose(from_examples, training_path, atol=1e-6)
    np.testing.assert_allclose(from_raw, training_path, atol=1e-6)
    classify = loaded.signatures["classification"](inputs=tf.constant(examples[:5]))
    assert classify["classes"].numpy()[0].tolist() == [b"0", b"1"]
    np.testing.assert_allclose(classify["scores"].numpy()[:, 1], training_path[:5], atol=1e-6)


def test_ids_held_in_memory_are_the_streamed_ids_and_serve_the_same_predictions(trained_run, data_dir):
    """`data.cache=memory` computes the ids once with the same transform: the same rows, labels and
    predictions as the streamed path and the SavedModel; training batches are a new permutation each epoch."""
    import dataclasses

    run = training.load_run(trained_run)
    streamed = list(run.dataset("test", 256, shuffle=False))
    held = list(run.dataset("test", 256, cache=True, shuffle=False))
    assert len(streamed) == len(held)
    for (ids_a, labels_a), (ids_b, labels_b) in zip(streamed, held):
        np.testing.assert_array_equal(labels_a.numpy(), labels_b.numpy())
        for name in ids_a:
            np.testing.assert_array_equal(ids_a[name].numpy(), ids_b[name].numpy(), err_msg=name)

    _, from_memory = training.predict(run, "test", run.dataset("test", 512, cache=True, shuffle=False))
    files = sorted(tf.io.gfile.glob(os.path.join(data_dir, "test", "*.tfrecord.gz")))
    examples = [record.numpy() for record in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    loaded = tf.saved_model.load(os.path.join(trained_run, "export", "1"))
    served = loaded.signatures["serving_default"](examples=tf.constant(examples))["probability"].numpy()
    np.testing.assert_allclose(from_memory, served, atol=1e-6)

    def rows(dataset) -> list[tuple]:
        out = []
        for ids, labels in dataset:
            columns = [ids[name].numpy().reshape(len(labels), -1) for name in sorted(ids)]
            out += [tuple(row) for row in np.concatenate(columns + [labels.numpy()], axis=1).tolist()]
        return out

    shuffled = run.dataset("test", 256, cache=True, shuffle=True, seed=7)
    first, second = rows(shuffled), rows(shuffled)
    assert sorted(first) == sorted(second) == sorted(rows(streamed)) and first != second

    def config_with(**data) -> training.Run:
        config = dataclasses.replace(run.config, data=dataclasses.replace(run.config.data, **data))
        return dataclasses.replace(run, config=config)

    assert training.should_cache(config_with(cache="memory"), "train")
    assert not training.should_cache(config_with(cache="none"), "train")
    assert training.should_cache(config_with(cache="auto", cache_max_megabytes=1024), "train")
    assert not training.should_cache(config_with(cache="auto", cache_max_megabytes=1), "train"), (
        "16,000 rows of 39 ids take more than 1 MB"
    )


def test_unknown_categories_and_missing_fields_are_served(trained_run):
    """A client may send unseen categories and omit fields: OOV and defaults."""
    loaded = tf.saved_model.load(os.path.join(trained_run, "export", "1"))
    example = tf.train.Example()
    example.features.feature["C1"].bytes_list.value.append(b"never-seen-before")
    example.features.feature["I1"].float_list.value.append(12345.0)
    empty = tf.train.Example()
    out = loaded.signatures["serving_default"](
        examples=tf.constant([example.SerializeToString(), empty.SerializeToString()])
    )
    probability = out["probability"].numpy()
    assert probability.shape == (2,) and np.all((probability > 0) & (probability < 1))


@pytest.mark.large
def test_mirrored_strategy_on_two_logical_cpus_matches_one_device(data_dir, tmp_path):
    # Without dropout: its masks are drawn per replica, so they differ between one and two replicas.
    common = (
        ["--data_dir", data_dir, "--no_export"]
        + TINY
        + ["--set", "training.epochs=2", "--set", "training.steps_per_epoch=6"]
    )
    common += ["--set", "model.dropout=0.0"]
    mirrored = run_train_subprocess(
        common
        + [
            "--run_dir",
            str(tmp_path / "mirrored"),
            "--strategy",
            "mirrored",
            "--logical_cpus",
            "2",
            "--set",
            "data.batch_size=64",
        ]
    )
    assert mirrored.returncode == 0, mirrored.stderr[-3000:]
    assert "2 replica(s) (MirroredStrategy), global batch 128" in mirrored.stdout
    single = run_train_subprocess(
        common + ["--run_dir", str(tmp_path / "single"), "--strategy", "one_device", "--set", "data.batch_size=128"]
    )
    assert single.returncode == 0, single.stderr[-3000:]
    histories = []
    for name in ("mirrored", "single"):
        with open(tmp_path / name / "history.json") as stream:
            histories.append(json.load(stream)["history"])
    np.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=1e-3)
    np.testing.assert_allclose(histories[0]["val_logloss"], histories[1]["val_logloss"], rtol=1e-3)
    np.testing.assert_allclose(histories[0]["val_auc"], histories[1]["val_auc"], rtol=1e-3)


@pytest.mark.large
def test_lazy_adam_and_several_steps_per_execution_train_on_two_replicas(data_dir, tmp_path):
    """LazyAdam's row updates on mirrored variables, three steps per call, a
    backup every six steps (two calls), all under MirroredStrategy."""
    run_dir = tmp_path / "lazy"
    result = run_train_subprocess(
        ["--data_dir", data_dir, "--run_dir", str(run_dir), "--no_export", "--strategy", "mirrored"]
        + ["--logical_cpus", "2"]
        + TINY
        + ["--set", "training.optimizer=lazy_adam", "--set", "training.steps_per_execution=3"]
        + ["--set", "training.epochs=2", "--set", "training.steps_per_epoch=6"]
        + ["--set", "training.backup_every_steps=6", "--set", "data.batch_size=64"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(run_dir / "history.json") as stream:
        history = json.load(stream)
    assert history["steps"] == 12 and history["replicas"] == 2
    assert all(np.isfinite(history["history"]["loss"]))
    assert history["history"]["loss"][1] < history["history"]["loss"][0]
    assert (
        callbacks.backup_frequency(
            experiments.experiment(
                "featnet", assignments=["training.backup_every_steps=200", "training.steps_per_execution=8"]
            ).training
        )
        == 25
    )


def kill_when(process: subprocess.Popen, ready, what: str, after: float = 0.0, timeout: float = 240) -> None:
    """SIGKILLs `process` `after` seconds once `ready()` holds (a real `kill -9`, mid-stage)."""
    deadline = time.time() + timeout
    while not ready() and time.time() < deadline:
        assert process.poll() is None, f"the run ended before {what}: " + process.stderr.read().decode()[-3000:]
        time.sleep(0.1)
    time.sleep(after)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.large
def test_a_killed_run_resumes_where_it_was_killed(data_dir, tmp_path):
    """Killed mid-training: resumes from its backup. Killed after training (evaluating or exporting):
    resumes at that stage without training again, and publishes one version."""
    run_dir = tmp_path / "resumable"
    args = ["--data_dir", data_dir, "--run_dir", str(run_dir)] + TINY
    args += [
        "--set",
        "training.epochs=2",
        "--set",
        "training.steps_per_epoch=60",
        "--set",
        "training.backup_every_steps=10",
    ]
    command = [sys.executable, "-m", "featnet_tf.train"] + args
    first = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    backup = str(run_dir / "backup" / "**" / "*.index")
    kill_when(first, lambda: bool(tf.io.gfile.glob(backup)), "a backup", after=0.3)  # mid-epoch, past a backup
    assert not (run_dir / "history.json").exists(), "the first run was killed before it finished"

    second = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kill_when(second, (run_dir / "history.json").exists, "training finished")  # killed evaluating
    output = second.stdout.read().decode()
    step = int(output.split("resuming from the backup at step ")[1].split()[0])
    assert step >= 10 and step % 10 == 0
    assert not (run_dir / "export").exists() or list_versions(str(run_dir / "export")) == []

    third = run_train_subprocess(args)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "training finished earlier (history.json); resuming at evaluation" in third.stdout
    assert "starting at step 0" not in third.stdout and "resuming from the backup" not in third.stdout
    with open(run_dir / "history.json") as stream:
        history = json.load(stream)
    assert history["steps"] == 120, "the resumed run finished the same 2 × 60 steps, not more"
    assert list_versions(str(run_dir / "export")) == [1]
    assert not (run_dir / "backup").exists(), "the backup is dropped once training is done"


def test_a_whole_run_lives_in_tensorflows_in_memory_file_system(data_dir, tmp_path):
    """The lifecycle reads and writes its run directory through `tf.io.gfile`: a run on ``ram://``
    trains, evaluates and publishes (the export base is local: the servability check loads the
    version in another process, which cannot see this one's memory), then resumes as finished.

    One epoch: TensorFlow 2.21's ``ram://`` appends to a file opened for writing again instead of
    replacing it, so a best checkpoint saved twice in place would not restore there (gs:// and local
    files replace it). The run's own JSON and YAML files are renamed into place, never rewritten."""
    run_dir = f"ram://featnet_tf_test/{tmp_path.name}/run"
    config = tiny_config(
        data_dir,
        {"training.epochs": 1, "training.steps_per_epoch": 20, "export.export_base": str(tmp_path / "export")},
    )
    first = lifecycle.Trainer(config, run_dir).run()
    assert first.stages_run == ("fit", "evaluate", "export")
    assert first.fit.steps == 20 and len(first.fit.history["val_auc"]) == 1
    assert first.export.path == str(tmp_path / "export" / "1")
    for name in ("config.yaml", "history.json", "metrics.json", "export.json", "checkpoints/best.index"):
        assert tf.io.gfile.exists(f"{run_dir}/{name}"), name
    assert tf.io.gfile.glob(f"{run_dir}/logs/*"), "TensorBoard logs"
    assert not tf.io.gfile.exists(f"{run_dir}/backup"), "the backup is dropped once training is done"
    with tf.io.gfile.GFile(f"{run_dir}/metrics.json") as stream:
        assert json.load(stream) == first.metrics
    assert sorted(os.listdir(tmp_path)) == ["export"], "nothing of the run was written locally"

    again = lifecycle.Trainer(config, run_dir).run()
    assert again.stages_run == () and again.metrics == first.metrics and again.fit == first.fit
    assert list_versions(str(tmp_path / "export")) == [1]
    with pytest.raises(ValueError, match="holds a run with another config"):
        lifecycle.Trainer(tiny_config(data_dir, {"training.epochs": 3}), run_dir)


def test_trainer_stages_return_what_they_write_and_a_diverging_fit_raises(data_dir, tmp_path):
    config = tiny_config(data_dir, {"training.epochs": 1, "training.steps_per_epoch": 5})
    trainer = lifecycle.Trainer(config, str(tmp_path))
    fit = trainer.fit()
    assert fit == lifecycle.FitResult.read(str(tmp_path / "history.json")) and fit.steps == 5
    assert trainer.evaluate("valid")["auc"] == pytest.approx(fit.best_val_auc, abs=1e-9)
    diverging = tiny_config(data_dir, {"training.learning_rate": 1e38, "training.steps_per_epoch": 5})
    with pytest.raises(lifecycle.NonFiniteLoss, match="the loss became"):
        lifecycle.Trainer(diverging, str(tmp_path / "diverged")).fit()
    assert not (tmp_path / "diverged" / "history.json").exists()


def test_a_diverging_run_stops_and_nothing_is_evaluated_or_exported(data_dir, tmp_path, capsys):
    run_dir = tmp_path / "diverged"
    overrides = ["--set", "training.learning_rate=1e38", "--set", "training.steps_per_epoch=5"]
    code = train.main(["--data_dir", data_dir, "--run_dir", str(run_dir)] + TINY + overrides)
    assert code == 3
    assert "the loss became" in capsys.readouterr().err
    assert sorted(os.listdir(run_dir)) == ["checkpoints", "config.yaml", "logs"]


def test_a_diverged_model_fails_its_check_and_is_never_published(trained_run, tmp_path):
    run = training.load_run(trained_run)
    weights = run.model.trainable_weights[0]
    weights.assign(tf.fill(tf.shape(weights), float("nan")))
    base = tmp_path / "export"
    with pytest.raises(saved_model.ServabilityError, match="not finite"):
        lifecycle.export_run(run, str(base))
    assert os.listdir(base) == [], "a version that failed its check was visible to servers"


def test_run_files_are_written_whole_or_not_at_all(tmp_path):
    from featnet_tf.files import write_atomically, write_json

    path = tmp_path / "best.json"
    write_json(str(path), {"epoch": 3, "val_auc": 0.75})
    with pytest.raises(UnicodeEncodeError):
        write_atomically(str(path), '{"epoch": 4, "val_auc": "\ud800"}')  # fails half way through writing
    assert json.loads(path.read_text()) == {"epoch": 3, "val_auc": 0.75}
    assert os.listdir(tmp_path) == ["best.json"], "a temporary file was left behind"


def test_bad_inputs_fail_clearly_and_leave_nothing_behind(data_dir, trained_run, tmp_path, capsys):
    run_dir = tmp_path / "never"
    assert train.main(["--data_dir", data_dir, "--run_dir", str(run_dir), "--set", "model.num_subset=3"]) == 2
    assert "Model 'featnet' takes no argument ['num_subset'] (model.num_subset)" in capsys.readouterr().err
    assert not run_dir.exists()
    assert train.main(["--data_dir", data_dir, "--run_dir", str(run_dir), "--set", "model.num_subsets=0"]) == 2
    assert "num_subsets=0" in capsys.readouterr().err
    assert train.main(["--data_dir", str(tmp_path / "nodata"), "--run_dir", str(run_dir)]) == 2
    assert "not a preprocessing output directory" in capsys.readouterr().err
    assert not run_dir.exists()

    assert evaluate.main(["--run_dir", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err

    export_file = tmp_path / "export_base"
    export_file.write_text("not a directory")
    assert export.main(["--run_dir", trained_run, "--export_base", str(export_file)]) == 1
    assert "is a file" in capsys.readouterr().err
    assert export_file.read_text() == "not a directory"
    leftovers = [name for name in os.listdir(os.path.join(trained_run, "export")) if name.startswith(".tmp")]
    assert leftovers == []


def test_config_overrides_and_validation(tmp_path):
    (tmp_path / "overrides.yaml").write_text(
        "model:\n  num_subsets: 8\n  embeddings_initializer: "
        "{class_name: RandomNormal, config: {stddev: 0.1}}\ntraining:\n  schedule: cosine\n"
    )
    config = experiments.experiment(
        "featnet", str(tmp_path / "overrides.yaml"), ["model.tower_units=[64, 32]", "training.epochs=3"]
    )
    assert (config.model.params["num_subsets"], config.model.params["tower_units"], config.training.epochs) == (
        8,
        [64, 32],
        3,
    )
    assert config.training.schedule == "cosine" and config.model.embedding_dim == 16
    assert config.model.params["embeddings_initializer"] == {"class_name": "RandomNormal", "config": {"stddev": 0.1}}
    path = str(tmp_path / "config.yaml")
    config_lib.save(config, path)
    assert experiments.load(path) == config and experiments.load(path).config_hash() == config.config_hash()
    with pytest.raises(ValueError, match="training.schedule='warm'"):
        experiments.experiment("featnet", assignments=["training.schedule=warm"])
    # YAML 1.1 reads 1e-4 (no dot) as a string; every config path reads it as the number it is.
    assert experiments.experiment("featnet", assignments=["model.embedding_l2=1e-4"]).model.embedding_l2 == 1e-4
    assert (
        experiments.experiment("featnet", assignments=["model.sapn_initial_threshold=-3e0"]).model.params[
            "sapn_initial_threshold"
        ]
        == -3.0
    )
    with pytest.raises(ValueError, match="`model.embedding_l2` must be a number. Received: 'small'"):
        experiments.experiment("featnet", assignments=["model.embedding_l2=small"])
    with pytest.raises(ValueError, match="`training.epochs` must be an integer. Received: 'ten'"):
        experiments.experiment("featnet", assignments=["training.epochs=ten"])
    with pytest.raises(ValueError, match="Unknown experiment 'featnet_mnist'"):
        experiments.experiment("featnet_mnist")
    with pytest.raises(ValueError, match=r"`training.backup_every_steps` \(15\) must be a multiple of .*\(10\)"):
        experiments.experiment("featnet", assignments=["training.backup_every_steps=15"])
