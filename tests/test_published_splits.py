"""Issue 9: pre-split inputs and index-file splits reproduce a published split exactly."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pipelines import examples, preprocess
from pipelines.formats import avazu_spec, criteo_spec
from pipelines.rows import RowParser
from pipelines.splits import FixedSplit
from tests.conftest import sample_data_dir
from tests.test_preprocess import DIRECT, read_split

SAMPLES = sample_data_dir()
needs_samples = pytest.mark.skipif(SAMPLES is None, reason="../shared/data (or $FEATNET_SAMPLE_DATA) is absent")


def serialized_split(output_dir: str, split: str) -> set[bytes]:
    return {example.SerializeToString(deterministic=True) for example in read_split(output_dir, split)}


@needs_samples
def test_index_file_puts_every_row_in_its_named_split(tmp_path):
    path = os.path.join(SAMPLES, "criteo_sample.tsv")
    positions = np.random.default_rng(7).permutation(10_000)
    index = {"train": positions[:7_000], "valid": positions[7_000:8_500], "test": positions[8_500:]}
    np.savez(tmp_path / "split.npz", **index)
    output = str(tmp_path / "out")
    result = preprocess.run(
        ["--input", path, "--format", "criteo", "--split_indices", str(tmp_path / "split.npz"), "--output_dir", output]
        + DIRECT
    )
    assert {split: result.statistics["splits"][split]["rows"] for split in index} == {
        "train": 7_000,
        "valid": 1_500,
        "test": 1_500,
    }
    assert result.statistics["split_provenance"] == {"method": "index_file", "index_file": str(tmp_path / "split.npz")}
    written = {split: serialized_split(output, split) for split in index}
    with open(path, encoding="utf-8") as stream:
        lines = stream.read().splitlines()
    parser = RowParser(criteo_spec(), "criteo")
    encoder = examples.ExampleEncoder(criteo_spec())
    for split, rows in index.items():
        for position in rows[:200]:  # row by row, for a sample of each split
            row = parser.parse(lines[position], parser.columns(None), path, position + 1, position)
            example = encoder.encode(row.values, row.label).SerializeToString(deterministic=True)
            assert example in written[split], f"row {position} is not in {split}"
            assert (
                all(example not in written[other] for other in index if other != split)
                or lines.count(lines[position]) > 1
            )
            assert (
                int(lines[position].split("\t")[0]) == row.label and row.values["C1"] == lines[position].split("\t")[14]
            )


@needs_samples
def test_pre_split_avazu_files_give_the_same_rows_out_as_in(tmp_path):
    with open(os.path.join(SAMPLES, "avazu_sample.csv"), encoding="utf-8") as stream:
        header, *lines = stream.read().splitlines()
    parts = {"train": lines[:8_000], "valid": lines[8_000:9_000], "test": lines[9_000:]}
    args = []
    for split, part in parts.items():
        (tmp_path / f"{split}.csv").write_text("\n".join([header] + part) + "\n")
        args += [f"--{split}", str(tmp_path / f"{split}.csv")]
    output = str(tmp_path / "out")
    result = preprocess.run(args + ["--format", "avazu", "--output_dir", output] + DIRECT)
    assert result.statistics["split_provenance"]["method"] == "files"
    spec = avazu_spec()
    encoder = examples.ExampleEncoder(spec)
    for split, part in parts.items():
        parser = RowParser(spec, "avazu", FixedSplit(split))
        columns = parser.header_columns(header, "x")
        expected = sorted(
            encoder.encode(row.values, row.label).SerializeToString(deterministic=True)
            for row in (parser.parse(line, columns, "x", 0, 0) for line in part)
        )
        assert sorted(e.SerializeToString(deterministic=True) for e in read_split(output, split)) == expected
        assert result.statistics["splits"][split]["rows"] == len(part)


@pytest.mark.parametrize(
    "index, message",
    [
        ({"train": [0, 1, 1], "valid": [2], "test": [3, 4]}, "rows \\[1\\] appear more than once in `train`"),
        ({"train": [0, 1], "valid": [1, 2], "test": [3, 4]}, "row 1 is in both `train` and `valid`"),
        ({"train": [0, 1], "valid": [2], "test": [3]}, "1 rows are in no split, e.g. rows \\[4\\]"),
        ({"train": [0, 1, 5], "valid": [2], "test": [3, 4]}, "outside the input's 5 data rows, e.g. \\[5\\]"),
        ({"train": [0, 1, 2], "valid": [3]}, "lacks the arrays \\['test'\\]"),
    ],
)
def test_bad_index_files_fail_before_any_output(tmp_path, index, message):
    raw = tmp_path / "rows.tsv"
    raw.write_text("".join("1\t" + "\t".join(["1"] * 13 + ["a"] * 26) + "\n" for _ in range(5)))
    np.savez(tmp_path / "split.npz", **{name: np.array(values) for name, values in index.items()})
    output = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        preprocess.run(
            [
                "--input",
                str(raw),
                "--format",
                "criteo",
                "--split_indices",
                str(tmp_path / "split.npz"),
                "--output_dir",
                str(output),
            ]
            + DIRECT
        )
    assert not output.exists()


def test_input_and_pre_split_inputs_are_exclusive(tmp_path):
    with pytest.raises(ValueError, match="either --input, or pre-split"):
        preprocess.run(
            ["--input", "a.tsv", "--train", "b.tsv", "--format", "criteo", "--output_dir", str(tmp_path / "o")] + DIRECT
        )
