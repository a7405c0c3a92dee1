"""The one preprocessing function, shared by embedding, training, inference and the
standalone predictor of exported models (`models_app.predictor`).

Pillow and numpy only: neither torch nor Django, so a machine that runs an exported
model with onnxruntime prepares its images by this very code, not by a copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from labeling.decoding import open_rgb


@dataclass(frozen=True)
class InputConfig:
    """What a backbone expects: the square side, the share of the resized short side
    the centre crop keeps, and the per-channel mean and std of the normalisation."""

    size: int
    crop_pct: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def preprocess(source: str | Path | BinaryIO, config: InputConfig) -> np.ndarray:
    """Decode an image by the project's one rule (`labeling.decoding`: upright, first
    frame, transparency on white, 8-bit sRGB), resize its short side to size/crop_pct,
    crop the centre square of `size`, and normalise: float32 (3, size, size)."""
    # A JPEG decodes straight at a fraction of its size, never below twice the input.
    rgb = open_rgb(source, draft_size=config.size * 2)
    scale = int(round(config.size / config.crop_pct))
    width, height = rgb.size
    if width <= height:
        new = (scale, max(scale, round(height * scale / width)))
    else:
        new = (max(scale, round(width * scale / height)), scale)
    left = (new[0] - config.size) // 2
    top = (new[1] - config.size) // 2
    # Resize only the part the crop keeps: the same pixels as resizing the whole image
    # and cropping it, without building a 400,000-pixel-wide row for a 5000×3 panorama.
    fx, fy = width / new[0], height / new[1]
    box = (left * fx, top * fy, (left + config.size) * fx, (top + config.size) * fy)
    rgb = rgb.resize((config.size, config.size), Image.Resampling.BICUBIC, box=box)
    array = np.asarray(rgb, dtype=np.float32) / 255.0
    array = (array - np.asarray(config.mean, np.float32)) / np.asarray(config.std, np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))
