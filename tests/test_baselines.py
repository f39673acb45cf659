"""Every registered model: any number of fields, trains, config round trip, exports and serves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from featnet_tf import config as config_lib
from featnet_tf import experiments, lifecycle, saved_model, training
from featnet_tf.features import FeatureSpec, categorical_spec
from featnet_tf.models import MODELS, build_model
from tests.helpers import train_a_few_steps

SMALL = {
    "featnet": dict(num_subsets=2, expand_ratio=2, num_queries=3, tower_units=(8,)),
    "featnet_variant": dict(num_subsets=2, expand_ratio=2, num_queries=3, tower_units=(8,), readout="fields"),
    "featnet_eq13": dict(num_subsets=2, expand_ratio=2, num_queries=3, tower_units=(8,)),
    "lr": {},
    "fm": {},
    "deepfm": dict(hidden_units=(8,)),
    "xdeepfm": dict(cin_layer_sizes=(4,), hidden_units=(8,)),
    "autoint": dict(num_layers=1, num_heads=1, head_dim=4),
    "autoint_plus": dict(num_layers=1, num_heads=1, head_dim=4, hidden_units=(8,)),
    "afn": dict(num_neurons=4, hidden_units=(8,)),
    "afn_plus": dict(num_neurons=4, hidden_units=(8,), ensemble_units=(8,)),
    "fibinet": dict(hidden_units=(8,), bilinear_type="field_all"),
    "dcnv2": dict(num_cross_layers=2, projection_dim=4, hidden_units=(8,)),
}


def test_every_registered_model_is_covered():
    assert set(SMALL) == set(MODELS)


def spec_with(num_fields: int) -> FeatureSpec:
    return categorical_spec(num_fields, vocabulary_size=7)


@pytest.mark.parametrize("num_fields", [2, 400])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_builds_trains_and_round_trips_for_any_number_of_fields(name, num_fields):
    spec = spec_with(num_fields)
    model = build_model(name, spec, embedding_dim=4, **SMALL[name])
    rng = np.random.default_rng(0)
    features = {field.name: rng.integers(0, field.num_ids, 16) for field in spec.fields}
    labels = rng.integers(0, 2, 16).astype(np.float32)
    model(features)  # creates the weights
    before = [weights.numpy().copy() for weights in model.trainable_weights]
    assert np.all(np.isfinite(train_a_few_steps(model, features, labels)))
    moved = {w.name for w, b in zip(model.trainable_weights, before) if np.any(w.numpy() != b)}
    assert any(name.endswith("/embeddings:0") for name in moved), f"no id table trains: {sorted(moved)}"
    assert len(moved) >= len(before) // 2, f"most weights train; moved: {sorted(moved)}"
    logits = model(features, training=False).numpy()
    assert logits.shape == (16, 1) and np.all(np.isfinite(logits))

    config = json.loads(json.dumps(keras.utils.serialize_keras_object(model)))
    rebuilt = keras.utils.deserialize_keras_object(config)
    rebuilt(features)
    rebuilt.set_weights(model.get_weights())
    assert type(rebuilt) is type(model) and rebuilt.get_config() == model.get_config()
    np.testing.assert_allclose(rebuilt(features, training=False).numpy(), logits, atol=1e-5)


@pytest.fixture(scope="module")
def servability_reports(criteo_data, tmp_path_factory) -> dict[str, tuple[str, dict]]:
    """Every registered model, built on the prepared data (its transform's
    vocabularies included) and exported; then all exports checked in one
    fresh process. Training adds nothing to what servability depends on."""
    cases = {}
    for name in sorted(SMALL):
        config = experiments.resolve(
            config_lib.ExperimentConfig(),
            {
                "model.name": name,
                "model.embedding_dim": 4,
                "model.params": SMALL[name],
                "data.data_dir": criteo_data,
                "data.batch_size": 64,
                "data.eval_batch_size": 256,
            },
        )
        root = tmp_path_factory.mktemp(f"export_{name}")
        _, cases[name] = lifecycle.stage_export(training.build_run(config, str(root)), str(root / "export"))
    reports = saved_model.check_all(list(cases.values()))
    return {name: (case.export_dir, report) for (name, case), report in zip(cases.items(), reports)}


@pytest.mark.large
@pytest.mark.parametrize("name", sorted(SMALL))
def test_exports_and_passes_the_servability_check(name, servability_reports):
    _, report = servability_reports[name]
    assert report["unregistered_ops"] == [] and report["python_ops"] == []
    assert report["featnet_tf_modules"] == [] and report["ops"] > 0
    assert max(report["max_abs_difference"].values()) <= 1e-6


def test_the_servability_verdict_names_every_problem():
    case = saved_model.ServabilityCase("/models/m/1", spec_with(2), [], np.array([0.5, 0.25]))
    report = {
        "ops": 10,
        "unregistered_ops": ["FeatNetOp"],
        "python_ops": ["EagerPyFunc"],
        "methods": {**saved_model.SIGNATURE_METHODS, "regression": "tensorflow/serving/predict"},
        "featnet_tf_modules": ["featnet_tf.layers"],
        "probabilities": {key: [0.5, 0.25] for key in saved_model.SIGNATURE_METHODS} | {"predict_raw": [0.5, 0.3]},
    }
    with pytest.raises(saved_model.ServabilityError) as error:
        saved_model.judge(case, report, atol=1e-6)
    for problem in (
        "not register: ['FeatNetOp']",
        "Python ops, which TF Serving cannot run: ['EagerPyFunc']",
        "signature regression has method 'tensorflow/serving/predict', expected 'tensorflow/serving/regress'",
        "imported featnet_tf's code: ['featnet_tf.layers']",
        "signature predict_raw differs from the trained model by 0.05",
    ):
        assert problem in str(error.value)


@pytest.mark.parametrize("name", ["deepfm", "xdeepfm", "autoint_plus", "afn_plus", "fibinet", "dcnv2", "featnet"])
def test_dropout_and_embedding_l2_reach_every_model_with_a_dnn(name):
    config = experiments.resolve(
        config_lib.ExperimentConfig(),
        {"model.name": name, "model.dropout": 0.3, "model.embedding_l2": 1e-5, "model.params": SMALL[name]},
    )
    model = build_model(name, spec_with(3), **config.model.model_kwargs())
    assert model.dropout == 0.3
    assert keras.regularizers.serialize(keras.regularizers.get(model.embeddings_regularizer))["config"][
        "l2"
    ] == pytest.approx(1e-5)


@pytest.mark.parametrize(
    "name, setting",
    [
        ("deepfm", {"use_batch_norm": True, "batch_norm_momentum": 0.9}),
        ("dcnv2", {"use_batch_norm": True, "batch_norm_momentum": 0.9}),
        ("afn", {"batch_norm_momentum": 0.9}),
        ("featnet_variant", {"dnn_batch_norm_momentum": 0.9}),
    ],
)
def test_batch_norm_momentum_reaches_every_batch_normalised_dnn(name, setting):
    config = experiments.resolve(
        config_lib.ExperimentConfig(), {"model.name": name, "model.params": {**SMALL[name], **setting}}
    )
    model = build_model(name, spec_with(3), **config.model.model_kwargs())
    model({field: np.zeros(4, np.int64) for field in spec_with(3).names})
    batch_norms = [layer for layer in model.submodules if isinstance(layer, keras.layers.BatchNormalization)]
    dnn_batch_norms = [layer for layer in batch_norms if "batch_norm_" in layer.name]  # the MLPs' own
    assert dnn_batch_norms and {layer.momentum for layer in dnn_batch_norms} == {0.9}


def test_an_option_a_model_does_not_take_is_an_error_naming_both():
    with pytest.raises(ValueError, match=r"Model 'lr' takes no argument \['dropout'\] \(model.dropout\)"):
        experiments.resolve(config_lib.ExperimentConfig(), {"model.name": "lr", "model.dropout": 0.2})
    with pytest.raises(ValueError, match=r"Model 'deepfm' takes no argument \['num_subsets'\]"):
        experiments.resolve(config_lib.ExperimentConfig(), {"model.name": "deepfm", "model.num_subsets": 4})
    config = experiments.resolve(config_lib.ExperimentConfig(), {"model.name": "deepfm"})
    assert (
        build_model("deepfm", spec_with(3), **config.model.model_kwargs()).dropout == 0.5
    )  # unset: the model's own default


def test_a_resolved_config_names_every_argument_of_its_model_with_the_registrys_default():
    dcnv2 = experiments.resolve(config_lib.ExperimentConfig(), {"model.name": "dcnv2"}).model.params
    assert (
        dcnv2["num_cross_layers"] == 3 and dcnv2["structure"] == "parallel" and dcnv2["hidden_units"] == [400, 400, 400]
    )
    literal = experiments.experiment("featnet_eq13").model.params  # a variant's presets are its defaults
    assert literal["fsgn_initial_threshold"] == -10.0 and literal["dnn_units"] == [] and literal["dropout"] == 0.0
    assert (
        experiments.experiment("afn_plus", assignments=["model.dropout=0.1"]).model.params["ensemble_units"]
        == [400] * 3
    )
    assert set(experiments.EXPERIMENTS) == set(MODELS) | {
        f"{name}_frappe{recipe}" for name in MODELS for recipe in ("", "_bars")
    }


def test_the_embedding_penalty_reaches_the_first_order_weights_only_when_asked_as_fuxictrs_does():
    spec = categorical_spec(["a", "b"], vocabulary_size=40)
    ids = {"a": tf.constant([[1], [2]]), "b": tf.constant([[3], [4]])}

    def penalty_over_tables(*assignments):
        config = experiments.experiment("deepfm", assignments=["model.embedding_l2=0.5", *assignments])
        model = build_model("deepfm", spec, **config.model.model_kwargs())
        model(ids)
        linear = model.linear.weights_per_id
        linear.set_weights([np.ones_like(weight) for weight in linear.get_weights()])
        embeddings = sum(float(np.sum(weight.numpy() ** 2)) for weight in model.field_embedding.trainable_weights)
        linear_rows = sum(int(np.prod(weight.shape)) for weight in linear.trainable_weights)
        return float(tf.add_n(model.losses)), 0.5 * embeddings, 0.5 * linear_rows

    total, embeddings, _ = penalty_over_tables()
    assert total == pytest.approx(embeddings, rel=1e-5), "the field embeddings only, by default"
    total, embeddings, first_order = penalty_over_tables("model.embedding_l2_first_order=true")
    assert total == pytest.approx(embeddings + first_order, rel=1e-5)


def test_the_embedding_initializer_is_a_config_option_of_every_model():
    spec = categorical_spec(["a"], vocabulary_size=5000)
    fuxictr = "model.embedding_initializer={class_name: RandomNormal, config: {stddev: 1.0e-4}}"
    for name in ("deepfm", "featnet"):
        config = experiments.experiment(name, assignments=[fuxictr])
        model = build_model(name, spec, **config.model.model_kwargs())
        model({"a": tf.constant([[1], [2]])})
        table = model.field_embedding.trainable_weights[0].numpy()
        assert np.std(table) == pytest.approx(1e-4, rel=0.05), name
