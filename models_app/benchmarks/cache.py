"""Backbone features of benchmark images, cached by content so a rerun skips the
backbone (a first active-learning run embeds 25,000 images: about 14 CPU-minutes on two
cores)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from django.conf import settings

from models_app import services
from models_app.ml.embed import embed_batches


def embedding_cache(cache_dir: str | Path) -> EmbeddingCache:
    """The cache of this server's backbone features under `cache_dir`."""
    key = "".join(c if c.isalnum() or c in "-_." else "-" for c in services.backbone_key())
    return EmbeddingCache(Path(cache_dir) / f"{key}.npz")


class EmbeddingCache:
    """Backbone features by SHA-256 of the image bytes, in one .npz file."""

    def __init__(self, path: Path):
        self.path = path
        self.vectors_by_hash: dict[str, np.ndarray] = {}
        self.changed = False
        self.computed = 0  # vectors this process computed
        if path.exists():
            with np.load(path) as saved:
                self.vectors_by_hash = dict(zip(saved["hashes"], saved["vectors"], strict=True))

    def get(self, digest: str) -> np.ndarray | None:
        return self.vectors_by_hash.get(digest)

    def put(self, digest: str, vector: np.ndarray) -> None:
        self.vectors_by_hash[digest] = np.asarray(vector, dtype=np.float16)
        self.changed = True

    def vectors(self, images: list[bytes]) -> np.ndarray:
        """Features of these encoded images, computing the missing ones with the app's
        embedding function (same preprocessing as stored images get)."""
        digests = [hashlib.sha256(data).hexdigest() for data in images]
        missing = [i for i, d in enumerate(digests) if d not in self.vectors_by_hash]
        if missing:
            sources = [io.BytesIO(images[i]) for i in missing]
            backbone = services.backbone_load()
            for start, batch in embed_batches(
                backbone, sources, batch_size=settings.LEARNER["EMBED_BATCH"]
            ):
                for offset, vector in enumerate(batch):
                    self.put(digests[missing[start + offset]], vector)
            self.computed += len(missing)
        return np.stack([self.vectors_by_hash[d] for d in digests]).astype(np.float32)

    def save(self) -> None:
        if not self.changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        hashes = list(self.vectors_by_hash)
        with open(self.path, "wb") as f:
            np.savez(
                f, hashes=np.array(hashes), vectors=np.stack(list(self.vectors_by_hash.values()))
            )
        self.changed = False
