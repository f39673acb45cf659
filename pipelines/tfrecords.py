"""TFRecord framing and compression of a whole batch of records at once.

`frame_records` frames every record of an Arrow binary array with NumPy and
Arrow (length, masked CRC32C of the length, data, masked CRC32C of the data,
byte for byte what TensorFlow's record writer writes); `gzip_compress` makes
the gzip stream of one shard (`pipelines.shards` writes it on a thread of its
own, which overlaps with the parsing of the next batch since zlib releases
the GIL).

Beam's own gzip writer compresses at zlib's default level 6, which measured
29 µs per 740-byte Criteo example on this machine, more than all the rest of
the preprocessing; `COMPRESSION_LEVEL` 1 takes a quarter of that for files
about a third larger (`BENCHMARKS.md`). Readers see a standard gzip stream.
"""

from __future__ import annotations

import zlib

import google_crc32c
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.examples import binary_lengths, binary_offsets, fixed_width_binary

COMPRESSION_LEVEL = 1
_CRC_MASK_DELTA = 0xA282EAD8


def masked_crc32c(crcs: np.ndarray) -> np.ndarray:
    """TFRecord's masked CRC32C of CRC values (uint32)."""
    crcs = crcs.astype(np.uint32)
    rotated = (crcs >> np.uint32(15)) | (crcs << np.uint32(17))
    return (rotated.astype(np.uint64) + _CRC_MASK_DELTA).astype(np.uint32)


def _little_endian(values: np.ndarray, dtype: str) -> pa.Array:
    """Each value's little-endian bytes as a binary array."""
    payload = np.ascontiguousarray(values, dtype=dtype).view(np.uint8).reshape(len(values), -1)
    return fixed_width_binary(b"", payload, np.ones(len(values), dtype=bool))


def frame_records(records: pa.Array) -> pa.Buffer:
    """The TFRecord framing of every record of a binary array, as one Arrow
    buffer (no copy; picklable; zlib and file writes take it as it is)."""
    if len(records) == 0:
        return pa.py_buffer(b"")
    records = records.cast(pa.binary())
    lengths = binary_lengths(records).astype("<u8")
    distinct, inverse = np.unique(lengths, return_inverse=True)
    length_crcs = np.array([google_crc32c.value(length.tobytes()) for length in distinct], dtype=np.uint32)
    length_crcs = length_crcs[inverse.reshape(-1)]
    data_crcs = np.fromiter(map(google_crc32c.value, records.to_pylist()), dtype=np.uint32, count=len(records))
    framed = pc.binary_join_element_wise(
        _little_endian(lengths, "<u8"),
        _little_endian(masked_crc32c(length_crcs), "<u4"),
        records,
        _little_endian(masked_crc32c(data_crcs), "<u4"),
        b"",
    )
    framed_offsets = binary_offsets(framed)
    return framed.buffers()[2].slice(framed_offsets[0], framed_offsets[-1] - framed_offsets[0])


def gzip_compress(data) -> bytes:
    """A whole gzip stream of `data` at `COMPRESSION_LEVEL` (zlib releases the
    GIL while it works)."""
    compressor = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


EMPTY_GZIP = gzip_compress(b"")
