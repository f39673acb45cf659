"""`python -m pipelines.synthesize`: Criteo- or Avazu-format click logs with known click probabilities.

Each row's click probability comes from planted effects: first-order token
weights, a numeric effect, interactions of orders 2, 3, 4 and 5 (products of
±1 codes of the fields involved, which carry no lower-order signal), and
pure-noise fields that do not matter at all. The true probability of every
row is written beside the data (``<output>.probabilities.npy``, row order), so
the Bayes-optimal AUC of any subset of rows is known.

    python -m pipelines.synthesize --format criteo --rows 100000 --output /tmp/criteo.tsv

A stream of days (``--days N``, or ``--day K`` alone): the same planted model
every day, over a vocabulary that moves: each day a share of every long-tailed
field's tokens stops appearing and new tokens take their traffic.

    python -m pipelines.synthesize --rows 200000 --days 5 --output /tmp/days
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import os
import sys
from typing import Sequence

import numpy as np

from pipelines.formats import AVAZU_RAW_CATEGORICAL, CRITEO_CATEGORICAL, CRITEO_NUMERIC
from pipelines.splits import file_splits

CRITEO_CARDINALITIES = (
    1000,
    500,
    20000,
    10000,
    300,
    20,
    10000,
    600,
    3,
    20000,
    5000,
    15000,
    3000,
    25,
    8000,
    18000,
    10,
    4000,
    2000,
    4,
    17000,
    15,
    15,
    12000,
    100,
    9000,
)
CRITEO_CATEGORICAL_MISSING = (0.0,) * 18 + (0.1, 0.3, 0.0, 0.4, 0.0, 0.2, 0.4, 0.4)
CRITEO_NUMERIC_MISSING = (0.45, 0.0, 0.2, 0.2, 0.02, 0.2, 0.04, 0.0, 0.04, 0.45, 0.04, 0.75, 0.2)
AVAZU_CARDINALITIES = (7, 7, 4000, 5000, 25, 6000, 400, 30, 50000, 200000, 8000, 5, 4, 2500, 8, 9, 450, 4, 68, 170, 60)


@dataclasses.dataclass(frozen=True)
class Interaction:
    """``weight · Π code_f(x_f)`` over `fields`, each code ±1 (0 when missing)."""

    fields: tuple[str, ...]
    weight: float


# Planted on fields of low to medium cardinality, so that a few hundred
# thousand rows carry enough evidence to learn them.
CRITEO_INTERACTIONS = (
    Interaction(("C5", "C14"), 1.0),
    Interaction(("C6", "C17", "C22"), 1.0),
    Interaction(("C9", "C20", "C23", "C25"), 0.8),
    Interaction(("C2", "C6", "C9", "C14", "C20"), 0.6),
)
CRITEO_FIRST_ORDER = ("C1", "C2")
CRITEO_NUMERIC_EFFECT = "I1"
CRITEO_NOISE = tuple(
    name
    for name in CRITEO_NUMERIC + CRITEO_CATEGORICAL
    if name not in CRITEO_FIRST_ORDER + (CRITEO_NUMERIC_EFFECT,) + sum((i.fields for i in CRITEO_INTERACTIONS), ())
)
AVAZU_INTERACTIONS = (
    Interaction(("site_id", "device_type"), 1.0),
    Interaction(("app_id", "C14", "hour_of_day"), 1.0),
    Interaction(("device_model", "C17", "banner_pos", "weekday"), 0.8),
)
AVAZU_FIRST_ORDER = ("C1", "site_category", "app_category")


@dataclasses.dataclass
class Synthetic:
    """Generated columns (as strings, in file order), labels and probabilities."""

    header: tuple[str, ...] | None
    columns: list[np.ndarray]
    labels: np.ndarray
    probabilities: np.ndarray


def _skewed_ids(rng: np.random.Generator, rows: int, cardinality: int) -> np.ndarray:
    """Ids in [0, cardinality) with a long-tailed (Zipf-like) frequency."""
    return np.minimum((cardinality * rng.random(rows) ** 3).astype(np.int64), cardinality - 1)


def _tokens(ids: np.ndarray, salt: int) -> np.ndarray:
    """Criteo-like 8-hex-digit tokens of ids, distinct per field."""
    hashed = (ids.astype(np.uint64) * np.uint64(2654435761) + np.uint64(salt * 40503 + 1)) % np.uint64(2**32)
    return np.char.mod("%08x", hashed)


def _codes(rng: np.random.Generator, ids: np.ndarray, cardinality: int, present: np.ndarray) -> np.ndarray:
    table = rng.permutation(np.resize([-1.0, 1.0], cardinality))
    return np.where(present, table[ids], 0.0)


def _calibrate(logits: np.ndarray, click_rate: float) -> np.ndarray:
    """Adds the bias that makes the mean probability equal `click_rate`."""
    low, high = -20.0, 20.0
    for _ in range(60):
        bias = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(logits + bias)))) < click_rate:
            low = bias
        else:
            high = bias
    return 1 / (1 + np.exp(-(logits + (low + high) / 2)))


def _criteo_numeric(rng: np.random.Generator, rows: int, logits: np.ndarray) -> list[np.ndarray]:
    """The 13 count columns (as strings, missing empty); adds I1's effect to `logits`."""
    numeric_columns = []
    for index, name in enumerate(CRITEO_NUMERIC):
        present = rng.random(rows) >= CRITEO_NUMERIC_MISSING[index]
        values = np.floor(np.exp(rng.normal(1.0 + 0.3 * index, 1.5, rows))).astype(np.int64)  # counts >= 0
        if name == "I2":
            values -= rng.integers(0, 3, rows) * (rng.random(rows) < 0.1)
        if name == CRITEO_NUMERIC_EFFECT:
            logits += np.where(present, 0.5 * (np.log1p(np.maximum(values, 0)) - 1.5), 0.0)
        numeric_columns.append(np.where(present, values.astype(str), ""))
    return numeric_columns


def _criteo_rows(rng: np.random.Generator, rows: int, click_rate: float, field_effects) -> Synthetic:
    """Criteo-format rows drawn from `rng`: counts, then per categorical field its ids and missing
    rows, with ``field_effects(index, ids, first_order) -> (token numbers, ±1 codes, first-order
    weights or None)`` saying what each id is and does; the planted interactions over the codes."""
    codes: dict[str, np.ndarray] = {}
    logits = np.zeros(rows)
    numeric_columns = _criteo_numeric(rng, rows, logits)
    categorical_columns = []
    for index, name in enumerate(CRITEO_CATEGORICAL):
        ids = _skewed_ids(rng, rows, CRITEO_CARDINALITIES[index])
        present = rng.random(rows) >= CRITEO_CATEGORICAL_MISSING[index]
        tokens, code, weight = field_effects(index, ids, name in CRITEO_FIRST_ORDER)
        codes[name] = np.where(present, code, 0.0)
        if weight is not None:
            logits += np.where(present, weight, 0.0)
        categorical_columns.append(np.where(present, _tokens(tokens, index), ""))
    for interaction in CRITEO_INTERACTIONS:
        logits += interaction.weight * np.prod([codes[name] for name in interaction.fields], axis=0)
    probabilities = _calibrate(logits, click_rate)
    labels = (rng.random(rows) < probabilities).astype(np.int64)
    return Synthetic(None, [labels.astype(str)] + numeric_columns + categorical_columns, labels, probabilities)


def synthesize_criteo(rows: int, seed: int = 0, click_rate: float = 0.25) -> Synthetic:
    rng = np.random.default_rng(seed)

    def planted(index: int, ids: np.ndarray, first_order: bool):
        cardinality = CRITEO_CARDINALITIES[index]
        code = rng.permutation(np.resize([-1.0, 1.0], cardinality))[ids]
        return ids, code, (rng.normal(0, 0.7, cardinality)[ids] if first_order else None)

    return _criteo_rows(rng, rows, click_rate, planted)


# === A stream of days: one planted click model, a vocabulary that moves ===

LONG_TAILED = 1000  # a field of at least this many ids renews its tokens day after day


def _hash_uniform(values: np.ndarray, salt: int) -> np.ndarray:
    """A uniform number in (0, 1) for each integer of `values`, the same on every call (splitmix64)."""
    x = values.astype(np.uint64) + np.uint64(salt * 0x9E3779B97F4A7C15 % 2**64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def token_generations(cardinality: int, day: int, seed: int, field_index: int, new_token_rate: float) -> np.ndarray:
    """How many times each id slot's token has been replaced by a new one up to `day` (0 on day 0).

    In a field of `LONG_TAILED` ids or more, each day replaces ``new_token_rate`` of the slots,
    rarer slots more often (chosen with a weight proportional to the slot's popularity rank): the
    replaced slot's token stops appearing and a token never seen before takes its traffic."""
    generations = np.zeros(cardinality, np.int64)
    if cardinality < LONG_TAILED or new_token_rate <= 0:
        return generations
    weights = np.arange(1, cardinality + 1, dtype=np.float64)
    weights /= weights.sum()
    for past_day in range(1, day + 1):
        rng = np.random.default_rng([seed, field_index, past_day, 1])
        replaced = rng.choice(cardinality, size=round(new_token_rate * cardinality), replace=False, p=weights)
        generations[replaced] += 1
    return generations


def token_effects(tokens: np.ndarray, seed: int, field_index: int) -> tuple[np.ndarray, np.ndarray]:
    """The planted model's ±1 interaction code and first-order weight (normal, std 0.7) of each
    token number: a function of the token alone, so a token keeps its effect every day."""
    salt = (seed * 1_000 + field_index) * 3
    code = np.where(_hash_uniform(tokens, salt) < 0.5, -1.0, 1.0)
    u1, u2 = _hash_uniform(tokens, salt + 1), _hash_uniform(tokens, salt + 2)
    return code, 0.7 * np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)


def synthesize_criteo_day(
    rows: int, day: int, seed: int = 0, new_token_rate: float = 0.15, click_rate: float = 0.25
) -> Synthetic:
    """Day `day` of a stream of Criteo-format days: the planted effects of `synthesize_criteo`,
    the same every day (`token_effects`), over tokens that move (`token_generations`); each
    day's rows are drawn apart (a day can be made alone) and its bias set to `click_rate`."""

    def moving(index: int, slots: np.ndarray, first_order: bool):
        cardinality = CRITEO_CARDINALITIES[index]
        tokens = slots + cardinality * token_generations(cardinality, day, seed, index, new_token_rate)[slots]
        code, weight = token_effects(tokens, seed, index)
        return tokens, code, (weight if first_order else None)

    return _criteo_rows(np.random.default_rng([seed, day, 2]), rows, click_rate, moving)


def day_path(output_dir: str, day: int) -> str:
    return os.path.join(output_dir, f"day-{day:02d}.tsv")


def synthesize_days(output_dir: str, rows: int, days: int, seed: int = 0, new_token_rate: float = 0.15) -> list[str]:
    """Writes days 0 .. `days` − 1 (`day_path`), each with its true probabilities; their paths."""
    os.makedirs(output_dir, exist_ok=True)
    paths, previous = [], None
    for day in range(days):
        data = synthesize_criteo_day(rows, day, seed, new_token_rate)
        write(data, day_path(output_dir, day), "\t")
        paths.append(day_path(output_dir, day))
        vocabulary = set(np.concatenate(data.columns[1 + len(CRITEO_NUMERIC) :]).tolist()) - {""}
        news = f", {len(vocabulary - previous) / len(vocabulary):.1%} of its tokens new" if previous else ""
        print(f"[synthesize] day {day}: {rows} rows → {paths[-1]} (click rate {data.labels.mean():.4f}{news})")
        previous = vocabulary
    return paths


def synthesize_avazu(rows: int, seed: int = 0, click_rate: float = 0.17) -> Synthetic:
    rng = np.random.default_rng(seed)
    day = rng.integers(0, 10, rows)
    hour = rng.integers(0, 24, rows)
    raw_hour = np.char.mod("%d", 14102100 + day * 100 + hour)  # 2014-10-21 .. 2014-10-30
    weekday = (1 + day) % 7  # 2014-10-21 was a Tuesday (1)
    logits = 0.3 * np.cos(2 * np.pi * hour / 24)
    codes: dict[str, np.ndarray] = {
        "hour_of_day": _codes(rng, hour, 24, np.ones(rows, bool)),
        "weekday": _codes(rng, weekday, 7, np.ones(rows, bool)),
    }
    categorical_columns = []
    for index, name in enumerate(AVAZU_RAW_CATEGORICAL):
        cardinality = AVAZU_CARDINALITIES[index]
        ids = _skewed_ids(rng, rows, cardinality)
        codes[name] = _codes(rng, ids, cardinality, np.ones(rows, bool))
        if name in AVAZU_FIRST_ORDER:
            logits += rng.normal(0, 0.7, cardinality)[ids]
        tokens = (
            np.char.mod("%d", ids) if name.startswith("C") or name.endswith(("_pos", "_type")) else _tokens(ids, index)
        )
        categorical_columns.append(tokens)
    for interaction in AVAZU_INTERACTIONS:
        logits += interaction.weight * np.prod([codes[name] for name in interaction.fields], axis=0)
    probabilities = _calibrate(logits, click_rate)
    labels = (rng.random(rows) < probabilities).astype(np.int64)
    ids = np.char.mod("%d", rng.integers(0, 2**64 - 1, rows, dtype=np.uint64, endpoint=True))  # overflows int64
    header = ("id", "click", "hour") + AVAZU_RAW_CATEGORICAL
    return Synthetic(header, [ids, labels.astype(str), raw_hour] + categorical_columns, labels, probabilities)


def write(data: Synthetic, path: str, delimiter: str) -> None:
    """Writes the rows (gzip when `path` ends in .gz) and the probabilities."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as stream:
        if data.header:
            stream.write(delimiter.join(data.header) + "\n")
        chunk = 100_000
        for start in range(0, len(data.labels), chunk):
            block = [column[start : start + chunk] for column in data.columns]
            stream.write("".join(delimiter.join(cells) + "\n" for cells in zip(*block)))
    np.save(probabilities_path(path), data.probabilities.astype(np.float64))


def probabilities_path(path: str) -> str:
    return path + ".probabilities.npy"


def split_truth(path: str, split: str, input_format: str = "criteo", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and true click probabilities of the rows that the default hash
    split (8:1:1, `seed`) puts in `split`, for Bayes-optimal metrics."""
    header = input_format == "avazu"
    in_split = np.array(file_splits(path, header=header, seed=seed)) == split
    delimiter, label_column = ("\t", 0) if input_format == "criteo" else (",", 1)
    with open(path, encoding="utf-8") as stream:
        lines = stream.read().splitlines()[1 if header else 0 :]
    labels = np.array([int(line.split(delimiter, label_column + 1)[label_column]) for line in lines])
    return labels[in_split], np.load(probabilities_path(path))[in_split]


def synthesize_file(output: str, rows: int, input_format: str = "criteo", seed: int = 0) -> Synthetic:
    """Writes `rows` rows of `input_format` (``criteo`` or ``avazu``) and their true probabilities."""
    if rows <= 0:
        raise ValueError(f"`rows` must be positive. Received: {rows}")
    if input_format == "criteo":
        data, delimiter = synthesize_criteo(rows, seed), "\t"
    else:
        data, delimiter = synthesize_avazu(rows, seed), ","
    write(data, output, delimiter)
    print(
        f"[synthesize] {rows} {input_format} rows → {output} (click rate {data.labels.mean():.4f}); "
        f"true probabilities → {probabilities_path(output)}"
    )
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.synthesize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=("criteo", "avazu"), default="criteo")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--output", required=True, help="file to write (.gz compresses)")
    parser.add_argument("--seed", type=int, default=0)
    days = parser.add_argument_group("a stream of days (Criteo format): one click model, a vocabulary that moves")
    days.add_argument("--days", type=int, help="write days 0 .. N-1 as --output/day-NN.tsv (--output a directory)")
    days.add_argument("--day", type=int, help="write day K alone to --output")
    days.add_argument(
        "--new_token_rate",
        type=float,
        default=0.15,
        help=f"share of each field's ids (fields of >= {LONG_TAILED}) whose token is replaced by a new one each day",
    )
    args = parser.parse_args(argv)
    if args.rows <= 0:
        parser.error(f"--rows must be positive. Received: {args.rows}")
    if (args.days is not None or args.day is not None) and args.format != "criteo":
        parser.error("--days and --day write Criteo-format days")
    if not 0 <= args.new_token_rate < 1:
        parser.error(f"--new_token_rate must be in [0, 1). Received: {args.new_token_rate}")
    if args.days is not None:
        if args.days <= 0:
            parser.error(f"--days must be positive. Received: {args.days}")
        synthesize_days(args.output, args.rows, args.days, args.seed, args.new_token_rate)
    elif args.day is not None:
        data = synthesize_criteo_day(args.rows, args.day, args.seed, args.new_token_rate)
        write(data, args.output, "\t")
        print(f"[synthesize] day {args.day}: {args.rows} rows → {args.output} (click rate {data.labels.mean():.4f})")
    else:
        synthesize_file(args.output, args.rows, args.format, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
