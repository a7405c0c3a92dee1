"""The one preprocessing function, shared by embedding, training and inference."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from models_app.ml.backbone import InputConfig


def preprocess(source: str | Path | BinaryIO, config: InputConfig) -> np.ndarray:
    """Decode an image, make it upright RGB, resize its short side to size/crop_pct,
    crop the centre square of `size`, and normalise: float32 (3, size, size)."""
    with Image.open(source) as image:
        image = ImageOps.exif_transpose(image)
        image.draft("RGB", (config.size * 2, config.size * 2))  # cheap JPEG downscale
        rgb = image.convert("RGB")
    scale = int(round(config.size / config.crop_pct))
    width, height = rgb.size
    if width <= height:
        new = (scale, max(scale, round(height * scale / width)))
    else:
        new = (max(scale, round(width * scale / height)), scale)
    rgb = rgb.resize(new, Image.Resampling.BICUBIC)
    left = (new[0] - config.size) // 2
    top = (new[1] - config.size) // 2
    rgb = rgb.crop((left, top, left + config.size, top + config.size))
    array = np.asarray(rgb, dtype=np.float32) / 255.0
    array = (array - np.asarray(config.mean, np.float32)) / np.asarray(config.std, np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))
