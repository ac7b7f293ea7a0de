"""Sequence transposer: ragged batch-major sequences <-> time-major zero-padded steps.

``pack`` takes the sequences of a batch concatenated one after the other, ``(sum(lengths),
D)``, and lays them out time-major, ``(T_max, N, D)``, zero past each sequence's length (caffe2
PackRNNSequence; PyTorch ``pad_sequence`` of the split sequences). ``unpack`` is its inverse
(caffe2 UnpackRNNSequence). Both move values unchanged, so the same functions serve float
arrays and integer codes.
"""

import numpy as np


__all__ = ["pack", "unpack", "check_ragged_lengths"]


def check_ragged_lengths(lengths):
    """Validate ``(N,)`` sequence lengths, each >= 1, and return them as int64."""
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.size == 0:
        raise ValueError(f"lengths must be a non-empty 1-D array, one per sequence, "
                         f"not of shape {lengths.shape}")
    if lengths.dtype.kind not in "iu":
        raise ValueError(f"lengths must be integers, not {lengths.dtype}")
    if np.any(lengths < 1):
        raise ValueError(f"every length must be at least 1; got {lengths.tolist()}")
    return lengths.astype(np.int64)


def pack(values, lengths):
    """Ragged batch-major ``(sum(lengths), ...)`` -> time-major padded ``(max(lengths), N, ...)``."""
    lengths = check_ragged_lengths(lengths)
    values = np.asarray(values)
    if values.ndim < 1 or values.shape[0] != lengths.sum():
        raise ValueError(f"values must hold sum(lengths) = {lengths.sum()} rows, one per step "
                         f"of every sequence; got shape {values.shape}")
    steps = int(lengths.max())
    padded = np.zeros((steps, lengths.size) + values.shape[1:], dtype=values.dtype)
    t = np.concatenate([np.arange(n) for n in lengths])
    sequence = np.repeat(np.arange(lengths.size), lengths)
    padded[t, sequence] = values
    return padded


def unpack(padded, lengths):
    """Time-major padded ``(T, N, ...)`` -> ragged batch-major ``(sum(lengths), ...)``."""
    lengths = check_ragged_lengths(lengths)
    padded = np.asarray(padded)
    if padded.ndim < 2 or padded.shape[1] != lengths.size:
        raise ValueError(f"padded must have shape (T, {lengths.size}, ...), time-major with "
                         f"one column per sequence; got {padded.shape}")
    if lengths.max() > padded.shape[0]:
        raise ValueError(f"a length of {lengths.max()} exceeds the {padded.shape[0]} steps "
                         f"of padded")
    t = np.concatenate([np.arange(n) for n in lengths])
    sequence = np.repeat(np.arange(lengths.size), lengths)
    return padded[t, sequence]
