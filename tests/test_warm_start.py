"""Warm start: yesterday's weights carried into today's vocabularies, row by row, by token."""

import os

import numpy as np
import pytest

from featnet_tf import config as config_lib
from featnet_tf import experiments, training, warm_start
from featnet_tf.features import NUM_RESERVED_IDS
from featnet_tf.layers.field_embedding import FieldEmbedding

HASHED_FIELD, HASH_BUCKETS = "C3", 50
TINY_MODEL = {
    "model.embedding_dim": 4,
    "model.num_subsets": 2,
    "model.num_queries": 3,
    "model.tower_units": [8],
    "model.dnn_units": [8],
}


@pytest.fixture(scope="module")
def two_days(tmp_path_factory):
    """Days 0 and 1 of a synthetic stream (3,000 rows each, tokens moving), prepared with C3 hashed."""
    from pipelines import preprocess, synthesize
    from pipelines.formats import criteo_spec

    root = tmp_path_factory.mktemp("two_days")
    spec = criteo_spec(min_count=1).replace_field(HASHED_FIELD, hash_buckets=HASH_BUCKETS)
    spec_path = root / "spec.json"
    spec.save(str(spec_path))
    raw = synthesize.synthesize_days(str(root / "raw"), 3000, 2, seed=4)
    prepared = []
    for day, path in enumerate(raw):
        output = str(root / f"day{day}")
        preprocess.preprocess(preprocess.PreprocessOptions(output, "criteo", input=[path], spec=str(spec_path)))
        prepared.append(output)
    return prepared


def make_config(data_dir, **overrides):
    return experiments.resolve(config_lib.ExperimentConfig(), {**TINY_MODEL, "data.data_dir": data_dir, **overrides})


@pytest.fixture(scope="module")
def yesterday(two_days, tmp_path_factory):
    """A run of day 0 with its (randomly initialised, all distinct) weights saved as its best."""
    run_dir = str(tmp_path_factory.mktemp("yesterday"))
    run = training.build_run(make_config(two_days[0]), run_dir)
    run.model.save_weights(run.path(training.BEST_WEIGHTS))
    config_lib.save(run.config, run.path(training.CONFIG_FILE))
    return run


def table_of(run):
    (layer,) = [layer for layer in run.model.submodules if isinstance(layer, FieldEmbedding)]
    return layer, layer.embeddings.numpy()


def test_rows_are_carried_by_token_kept_new_dropped_and_hashed(two_days, yesterday, tmp_path):
    import tf_keras as keras

    keras.utils.set_random_seed(99)  # today's fresh rows drawn apart from yesterday's
    today = training.build_run(make_config(two_days[1]), str(tmp_path / "today"))
    _, fresh = table_of(today)
    carried = warm_start.warm_start(today, yesterday.run_dir)
    layer, table = table_of(today)
    _, old_table = table_of(yesterday)
    old_ranges, new_ranges = table_of(yesterday)[0].row_ranges(), layer.row_ranges()

    field = "C10"  # long-tailed: tokens come and go between the days
    old_tokens, new_tokens = warm_start.vocabulary(yesterday, field), warm_start.vocabulary(today, field)
    kept = sorted(set(old_tokens) & set(new_tokens))
    new = [token for token in new_tokens if token not in set(old_tokens)]
    gone = [token for token in old_tokens if token not in set(new_tokens)]
    assert kept and new and gone
    assert carried["fields"][field] == {"kept": len(kept), "new": len(new), "dropped": len(gone)}

    def row(ranges, tokens, token):
        return ranges[field][0] + NUM_RESERVED_IDS + tokens.index(token)

    for token in kept[:50]:  # a token kept keeps its row exactly
        assert np.array_equal(table[row(new_ranges, new_tokens, token)], old_table[row(old_ranges, old_tokens, token)])
    for token in new[:50]:  # a new token keeps the row the layer's initializer gave it
        assert np.array_equal(table[row(new_ranges, new_tokens, token)], fresh[row(new_ranges, new_tokens, token)])
    old_rows = {tuple(old_table[row(old_ranges, old_tokens, token)]) for token in gone}
    assert not old_rows & {tuple(vector) for vector in table}  # a vanished token's row is gone
    reserved = slice(new_ranges[field][0], new_ranges[field][0] + NUM_RESERVED_IDS)
    old_reserved = slice(old_ranges[field][0], old_ranges[field][0] + NUM_RESERVED_IDS)
    assert np.array_equal(table[reserved], old_table[old_reserved])  # missing and OOV rows copied

    start, rows = new_ranges[HASHED_FIELD]  # a hashed field: every row copied as it is
    old_start, old_rows_count = old_ranges[HASHED_FIELD]
    assert rows == old_rows_count == HASH_BUCKETS + NUM_RESERVED_IDS
    assert np.array_equal(table[start : start + rows], old_table[old_start : old_start + rows])
    assert carried["fields"][HASHED_FIELD] == {"kept": rows, "new": 0, "dropped": 0}

    dense = [w for w in today.model.weights if w.name.split("/")[-1].startswith("kernel")]
    old_dense = [w for w in yesterday.model.weights if w.name.split("/")[-1].startswith("kernel")]
    assert dense and all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(dense, old_dense))


def test_another_model_is_refused_by_name_before_anything_changes(two_days, yesterday, tmp_path):
    wider = training.build_run(make_config(two_days[1], **{"model.embedding_dim": 8}), str(tmp_path / "wider"))
    before = [weight.numpy() for weight in wider.model.weights]
    with pytest.raises(ValueError, match=r"another model: model.embedding_dim is 8 here, 4 there"):
        warm_start.warm_start(wider, yesterday.run_dir)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, wider.model.weights))


def test_a_field_of_another_layout_is_refused_by_name(two_days, yesterday, tmp_path):
    from featnet_tf.prepared_data import load_feature_spec

    today = training.build_run(make_config(two_days[1]), str(tmp_path / "today"))
    spec = load_feature_spec(two_days[1])
    other = spec.replace_field(HASHED_FIELD, hash_buckets=2 * HASH_BUCKETS)
    with pytest.raises(ValueError, match=rf"field {HASHED_FIELD} hashes into {2 * HASH_BUCKETS} buckets here and 50"):
        warm_start.check_fields(yesterday.spec, other, yesterday.run_dir)
    with pytest.raises(ValueError, match=r"warm start from .*not a run directory"):
        warm_start.warm_start(today, str(tmp_path / "nowhere"))


def test_train_records_what_it_carried_in_its_config_and_metrics(two_days, yesterday, tmp_path):
    from featnet_tf import lifecycle

    config = make_config(
        two_days[1],
        **{
            "training.warm_start": yesterday.run_dir,
            "training.epochs": 1,
            "training.steps_per_epoch": 5,
            "data.batch_size": 64,
        },
    )
    result = lifecycle.Trainer(config, str(tmp_path / "run")).run(export=False)
    assert experiments.load(os.path.join(result.run_dir, training.CONFIG_FILE)).training.warm_start == yesterday.run_dir
    recorded = result.metrics["warm_start"]
    assert recorded["from"] == yesterday.run_dir and recorded["rows"]["kept"] > 0 and recorded["rows"]["new"] > 0
    assert result.fit.steps == 5  # the optimizer starts fresh: its step count too
