"""Readers for public datasets kept on disk (no downloads)."""

from __future__ import annotations

import gzip
import io
import struct
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class IdxImages:
    """Fashion-MNIST in its IDX form: `count` grey images of `rows`×`cols`, row-major."""

    pixels: bytes
    labels: bytes
    rows: int
    cols: int

    @property
    def count(self) -> int:
        return len(self.labels)

    def png(self, index: int) -> bytes:
        size = self.rows * self.cols
        image = PILImage.frombytes(
            "L", (self.cols, self.rows), self.pixels[index * size : (index + 1) * size]
        )
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()


def fashion_mnist_read(directory: Path, split: str = "train") -> IdxImages:
    """Read the Debian package dataset-fashion-mnist's files. Raises FileNotFoundError
    with the install hint when they are missing."""
    image_name, label_name = _FILES[split]
    image_path, label_path = directory / image_name, directory / label_name
    if not image_path.exists() or not label_path.exists():
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {directory}; install the Debian package "
            "dataset-fashion-mnist (make demo-data) or set FASHION_MNIST_DIR."
        )
    with gzip.open(image_path, "rb") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 0x803:
            raise ValueError(f"{image_path} is not an IDX image file")
        pixels = f.read(count * rows * cols)
    with gzip.open(label_path, "rb") as f:
        magic, label_count = struct.unpack(">II", f.read(8))
        if magic != 0x801 or label_count != count:
            raise ValueError(f"{label_path} does not match {image_path}")
        labels = f.read(count)
    return IdxImages(pixels=pixels, labels=labels, rows=rows, cols=cols)
