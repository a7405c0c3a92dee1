"""models_app.ml.preprocess on images made pixel by pixel: which pixels the crop keeps,
how the short side is scaled, and the normalisation, checked against Pillow and numpy
by hand."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from models_app.ml.backbone import InputConfig
from models_app.ml.preprocess import preprocess

MEAN = (0.5, 0.25, 0.125)
STD = (0.5, 0.25, 0.2)


def png(array: np.ndarray) -> io.BytesIO:
    out = io.BytesIO()
    Image.fromarray(array.astype(np.uint8), "RGB").save(out, format="PNG")
    out.seek(0)
    return out


def numbered(width: int, height: int) -> np.ndarray:
    """Every pixel different: red counts columns, green rows, blue both."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 10, y * 10, (x + y * width) % 256], axis=-1)


def normalised(pixels: np.ndarray) -> np.ndarray:
    array = pixels.astype(np.float32) / 255.0
    array = (array - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return array.transpose(2, 0, 1)


def test_a_landscape_image_keeps_its_centre_when_no_resize_is_needed():
    # Short side 4 = size / crop_pct: no scaling, a 2 x 2 crop from column 3, row 1.
    pixels = numbered(8, 4)
    out = preprocess(png(pixels), InputConfig(size=2, crop_pct=0.5, mean=MEAN, std=STD))
    assert out.shape == (3, 2, 2)
    assert out.dtype == np.float32
    assert out.flags["C_CONTIGUOUS"]
    assert out == pytest.approx(normalised(pixels[1:3, 3:5]), abs=1e-6)


def test_a_portrait_image_keeps_its_centre_too():
    pixels = numbered(4, 8)
    out = preprocess(png(pixels), InputConfig(size=2, crop_pct=0.5, mean=MEAN, std=STD))
    assert out == pytest.approx(normalised(pixels[3:5, 1:3]), abs=1e-6)


def test_an_odd_margin_is_split_with_the_extra_pixel_after():
    pixels = numbered(7, 4)
    out = preprocess(png(pixels), InputConfig(size=2, crop_pct=0.5, mean=MEAN, std=STD))
    # (7 - 2) // 2 = 2 columns before the crop, 3 after.
    assert out == pytest.approx(normalised(pixels[1:3, 2:4]), abs=1e-6)
    # The same for rows: (7 - 2) // 2 = 2 rows above, 3 below.
    pixels = numbered(4, 7)
    out = preprocess(png(pixels), InputConfig(size=2, crop_pct=0.5, mean=MEAN, std=STD))
    assert out == pytest.approx(normalised(pixels[2:4, 1:3]), abs=1e-6)


@pytest.mark.parametrize("size", [(37, 23), (23, 37), (50, 50), (9, 40)])
def test_the_short_side_is_scaled_to_size_over_crop_pct_then_cropped(size):
    rng = np.random.default_rng(sum(size))
    # Smooth content, so resampling differences stay small.
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    pixels = np.stack([x * 200 / size[0], y * 200 / size[1], (x + y) * 100 / sum(size)], -1)
    pixels = pixels + rng.uniform(0, 2, pixels.shape)
    config = InputConfig(size=8, crop_pct=0.8, mean=MEAN, std=STD)
    out = preprocess(png(pixels), config)
    # By hand: short side to round(8 / 0.8) = 10, the long in proportion, centre crop.
    width, height = size
    if width <= height:
        new = (10, max(10, round(height * 10 / width)))
    else:
        new = (max(10, round(width * 10 / height)), 10)
    full = Image.fromarray(pixels.astype(np.uint8), "RGB").resize(new, Image.Resampling.BICUBIC)
    left, top = (new[0] - 8) // 2, (new[1] - 8) // 2
    expected = np.asarray(full.crop((left, top, left + 8, top + 8)))
    assert out.shape == (3, 8, 8)
    assert np.abs(out - normalised(expected)).max() * 0.2 < 4 / 255


def test_one_colour_stays_that_colour_normalised():
    pixels = np.zeros((30, 45, 3))
    pixels[...] = (255, 128, 0)
    out = preprocess(png(pixels), InputConfig(size=6, crop_pct=0.875, mean=MEAN, std=STD))
    expected = [(1.0 - 0.5) / 0.5, (128 / 255 - 0.25) / 0.25, (0.0 - 0.125) / 0.2]
    for channel, value in enumerate(expected):
        assert out[channel] == pytest.approx(np.full((6, 6), value), abs=1e-5)


def test_a_path_is_read_as_well_as_a_file(tmp_path):
    pixels = numbered(8, 4)
    path = tmp_path / "numbered.png"
    path.write_bytes(png(pixels).getvalue())
    config = InputConfig(size=2, crop_pct=0.5, mean=MEAN, std=STD)
    assert preprocess(path, config).tolist() == preprocess(str(path), config).tolist()
    assert preprocess(path, config) == pytest.approx(normalised(pixels[1:3, 3:5]), abs=1e-6)
