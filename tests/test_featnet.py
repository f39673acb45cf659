"""FeatNet end to end: any number of fields, serialization, SavedModel, learning."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from featnet_tf.features import FeatureSpec, Field
from featnet_tf.metrics import binary_auc
from featnet_tf.models import FeatNet, build_model
from featnet_tf.synthetic import planted_interaction_data
from tests.helpers import run_in_fresh_python

SMALL = dict(embedding_dim=4, num_subsets=3, expand_ratio=2, num_queries=5, tower_units=(8, 8))


def categorical_spec(num_fields: int, vocabulary_size: int = 5) -> FeatureSpec:
    return FeatureSpec(tuple(Field(f"f{i}", "categorical", vocabulary_size=vocabulary_size) for i in range(num_fields)))


def random_ids(spec: FeatureSpec, rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {field.name: rng.integers(0, field.num_ids, size=rows) for field in spec.fields}


@pytest.mark.parametrize("num_fields", [2, 39, 400])
def test_builds_and_trains_for_any_number_of_fields(num_fields):
    spec = categorical_spec(num_fields)
    model = FeatNet(spec, **SMALL)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy(from_logits=True))
    features = random_ids(spec, 32)
    labels = np.random.default_rng(1).integers(0, 2, size=32).astype(np.float32)
    history = model.fit(features, labels, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    outputs = model.explain(features)
    assert outputs.logits.shape == (32, 1)
    assert outputs.subset_weights.shape == (32, 3, num_fields)
    assert outputs.interaction_scores.shape == (32, 3, 5, num_fields)


def test_paper_defaults():
    model = FeatNet(categorical_spec(3))
    assert (model.embedding_dim, model.num_subsets, model.expand_ratio, model.num_queries) == (16, 10, 4, 16)
    assert model.tower_units == (128, 128, 128)


@pytest.mark.parametrize(
    "argument, value", [("num_subsets", 0), ("embedding_dim", 0), ("num_queries", -1), ("expand_ratio", 0)]
)
def test_bad_configuration_values_are_named(argument, value):
    with pytest.raises(ValueError, match=f"{argument}={value}"):
        FeatNet(categorical_spec(3), **{argument: value})


def test_unknown_model_name():
    with pytest.raises(ValueError, match="'featnett'"):
        build_model("featnett", categorical_spec(2))


def test_config_round_trip_gives_the_same_model():
    spec = categorical_spec(6)
    model = FeatNet(spec, **SMALL, use_layer_norm=True)
    features = random_ids(spec, 8)
    expected = model(features).numpy()
    config = json.loads(json.dumps(keras.utils.serialize_keras_object(model)))
    rebuilt = keras.utils.deserialize_keras_object(config)
    rebuilt(features)
    rebuilt.set_weights(model.get_weights())
    assert rebuilt.get_config() == model.get_config()
    np.testing.assert_allclose(rebuilt(features).numpy(), expected, atol=1e-6)


def test_saved_model_serves_in_a_process_without_featnet_tf(tmp_path):
    spec = categorical_spec(5)
    model = FeatNet(spec, **SMALL)
    features = random_ids(spec, 16)
    expected = tf.sigmoid(model(features)).numpy()[:, 0]

    signature = {name: tf.TensorSpec([None], tf.int64, name=name) for name in spec.names}

    @tf.function(input_signature=[signature])
    def serve(inputs):
        return {"probability": tf.sigmoid(model(inputs))[:, 0]}

    path = str(tmp_path / "saved_model")
    tf.saved_model.save(model, path, signatures={"serving_default": serve})
    np.savez(tmp_path / "inputs.npz", **features)
    output = run_in_fresh_python(
        f"""
        import sys, numpy as np, tensorflow as tf
        serve = tf.saved_model.load({path!r}).signatures["serving_default"]
        inputs = dict(np.load({str(tmp_path / 'inputs.npz')!r}))
        probability = serve(**{{k: tf.constant(v) for k, v in inputs.items()}})["probability"].numpy()
        assert not any(name.startswith("featnet_tf") for name in sys.modules), "featnet_tf was imported"
        print(",".join(repr(float(p)) for p in probability))
        """
    )
    served = np.array([float(p) for p in output.strip().splitlines()[-1].split(",")])
    np.testing.assert_allclose(served, expected, atol=1e-6)


@pytest.mark.large
def test_learns_a_planted_third_order_interaction():
    """Label = parity of three fields (no lower-order signal), five noise fields.

    300 steps of batch 256 at lr 1e-3. Observed on this CPU: the training loss
    falls from 0.693 to about 0.35 and validation AUC reaches about 0.94 with
    the Bayes-optimal AUC at 0.95.
    """
    data = planted_interaction_data(num_rows=86_800, seed=0)
    split = 76_800
    train = {name: values[:split] for name, values in data.features.items()}
    valid = {name: values[split:] for name, values in data.features.items()}
    model = FeatNet(data.feature_spec)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy(from_logits=True))
    history = model.fit(train, data.labels[:split], batch_size=256, epochs=1, verbose=0)
    probabilities = tf.sigmoid(model.predict(valid, batch_size=4096, verbose=0)).numpy()[:, 0]
    auc = binary_auc(data.labels[split:], probabilities)
    initial_loss = float(keras.losses.binary_crossentropy(data.labels[split:], np.full(len(probabilities), 0.5)))
    assert history.history["loss"][-1] < initial_loss - 0.05
    assert auc > 0.7, f"validation AUC {auc:.3f}"
