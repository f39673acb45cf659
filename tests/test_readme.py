"""README's "Scaling out" commands exist as written: every flag of every
`python -m` command is one the command (or Beam, for a pipeline) knows, and
every `--set` names a config key that takes that value."""

from __future__ import annotations

import itertools
import logging
import os
import re
import shlex

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.dask import dask_runner  # noqa: F401  (defines --dask_client_address, as a Dask run imports it)

from featnet_tf import train
from pipelines import preprocess, score
from serving import client
from tests.helpers import REPO_ROOT


def section(title: str) -> str:
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as stream:
        text = stream.read()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def python_commands(markdown: str) -> list[list[str]]:
    """The arguments of each ``python -m MODULE ...`` line of the bash blocks
    (continuation lines joined, comments dropped), module first."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if "python -m " in line:
                lexer = shlex.shlex(line[line.index("python -m ") :], posix=True, punctuation_chars=True)
                lexer.whitespace_split = True
                words = list(itertools.takewhile(lambda word: word not in {"&", ";", "|", "&&"}, lexer))
                commands.append(words[2:])
    return commands


SCALING_OUT = python_commands(section("Scaling out"))


def test_the_section_shows_every_runner_and_both_training_setups():
    runners = {words[words.index("--runner") + 1] for words in SCALING_OUT if "--runner" in words}
    assert runners == {"DaskRunner", "DataflowRunner", "FlinkRunner", "SparkRunner"}
    assert sum("multi_worker" in words for words in SCALING_OUT) >= 2
    assert all("--setup_file" in words for words in SCALING_OUT if {"DataflowRunner", "FlinkRunner"} & set(words))


@pytest.mark.parametrize("words", SCALING_OUT, ids=lambda words: " ".join(words[:1] + words[-4:]))
def test_every_flag_is_known(words, caplog):
    module, args = words[0], words[1:]
    if module == "featnet_tf.train":
        train.resolve_config(train.parse_args(args))  # a bad flag exits; a bad --set key raises
        return
    if module == "serving.client":
        client.parse_args(args)
        return
    pipelines = {"pipelines.preprocess": preprocess, "pipelines.score": score}
    assert module in pipelines, f"README runs {module}, which this test does not know"
    _, beam_args = pipelines[module].parse_args(args)
    with caplog.at_level(logging.WARNING):
        PipelineOptions(beam_args).get_all_options()
    unknown = [record.getMessage() for record in caplog.records if "Discarding" in record.getMessage()]
    assert not unknown, unknown
