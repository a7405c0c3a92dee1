"""Batched embedding with decoding overlapped with the forward pass."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from models_app.ml.backbone import Backbone
from models_app.ml.preprocess import preprocess


def embed_batches(
    backbone: Backbone,
    sources: Sequence[str | Path],
    *,
    batch_size: int = 32,
    decode_threads: int = 2,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (offset, float32 embeddings) batch by batch for `sources`, in order.

    The next batch is decoded and resized in threads (Pillow releases the GIL) while the
    model runs on the current one, so the pipeline runs close to the model's own speed.
    """

    def load(start: int) -> torch.Tensor:
        arrays = [preprocess(s, backbone.input) for s in sources[start : start + batch_size]]
        return torch.from_numpy(np.stack(arrays))

    starts = list(range(0, len(sources), batch_size))
    if not starts:
        return
    with ThreadPoolExecutor(max_workers=decode_threads) as pool:
        pending = pool.submit(load, starts[0])
        for i, start in enumerate(starts):
            batch = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(load, starts[i + 1])
            yield start, backbone.embed(batch).float().cpu().numpy()


def embed_all(backbone: Backbone, sources: Sequence[str | Path], **kwargs) -> np.ndarray:
    out = np.zeros((len(sources), backbone.dim), dtype=np.float32)
    for start, vectors in embed_batches(backbone, sources, **kwargs):
        out[start : start + len(vectors)] = vectors
    return out


def raw_forward_throughput(
    backbone: Backbone, sources: Sequence[str | Path], *, batch_size: int
) -> float:
    """Images a second through the backbone's forward pass alone: the images are
    decoded and preprocessed beforehand, then embedded in batches of `batch_size` after
    one warm-up batch (first-call allocations). The yardstick the pipeline is held to."""
    torch.manual_seed(0)
    tensors = torch.from_numpy(np.stack([preprocess(s, backbone.input) for s in sources]))
    backbone.embed(tensors[:batch_size])
    started = time.perf_counter()
    for start in range(0, len(tensors), batch_size):
        backbone.embed(tensors[start : start + batch_size])
    return len(tensors) / (time.perf_counter() - started)


def compute_threads() -> int:
    """The CPU threads torch computes with here."""
    return torch.get_num_threads()
