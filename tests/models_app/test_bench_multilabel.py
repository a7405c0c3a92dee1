"""The mosaic benchmark of tag projects, run small on real Fashion-MNIST images: its
mosaics are what they say, the same command gives the same figures, and the report
holds what issue 23 asks for."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from labeling.datasets import fashion_mnist_read
from models_app.benchmarks.multilabel import labels_to_every_tag, mosaic_indices, mosaic_png

DATA = Path(settings.LABELING["FASHION_MNIST_DIR"])
SMALL = {"pool": 60, "test": 40, "budgets": "10,20,40", "seeds": 2, "strategies": "auto"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def run(tmp_path, cache_dir, capsys, **options) -> tuple[dict, str]:
    path = tmp_path / "multilabel.json"
    call_command("bench_multilabel", json_path=str(path), cache_dir=cache_dir, **options)
    return json.loads(path.read_text()), capsys.readouterr().out


def test_a_mosaic_is_its_four_images_and_its_tags_are_their_classes():
    data = fashion_mnist_read(DATA, "test")
    indices = mosaic_indices(5, data.count, "test")
    # A larger pool begins with a smaller one's mosaics (their embeddings are shared).
    assert np.array_equal(indices, mosaic_indices(50, data.count, "test")[:5])
    assert not np.array_equal(indices, mosaic_indices(5, data.count, "train"))
    with PILImage.open(io.BytesIO(mosaic_png(data, indices[0]))) as image:
        assert image.size == (56, 56) and image.mode == "L"
        pixels = np.asarray(image)
    for tile, index in enumerate(indices[0]):
        with PILImage.open(io.BytesIO(data.png(int(index)))) as source:
            r, c = divmod(tile, 2)
            assert np.array_equal(pixels[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28], source)


def test_labels_to_every_tag_counts_until_each_tag_had_a_positive():
    served = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 1]], dtype=np.float32)
    assert labels_to_every_tag(served) == 4
    assert labels_to_every_tag(served[:3]) is None


def test_the_same_command_gives_the_same_figures(tmp_path, cache_dir, capsys):
    options = {**SMALL, "plot_path": str(tmp_path / "multilabel.png")}
    first, _ = run(tmp_path, cache_dir, capsys, **options)
    second, out = run(tmp_path, cache_dir, capsys, **options)
    assert "100 from the cache" in out and "0 computed" in out
    assert first.pop("seconds") > 0 and second.pop("seconds") > 0
    assert first == second
    for key in ("budgets", "strategies", "default_strategy", "full_pool_map", "machine"):
        assert key in first
    assert first["budgets"] == [10, 20, 40] and first["seeds"] == 2
    assert (first["pool"], first["test"]) == (60, 40)
    assert first["default_strategy"] == "auto" and set(first["strategies"]) == {"random", "auto"}
    assert 0.3 < first["full_pool_map"] <= 1
    assert first["target_95pct"] == pytest.approx(0.95 * first["full_pool_map"], abs=1e-4)
    for row in first["strategies"].values():
        runs = np.asarray(row["map_runs"])
        assert runs.shape == (2, 3) and ((runs > 0) & (runs <= 1)).all()
        assert np.allclose(row["map_mean"], runs.mean(axis=0), atol=1e-4)
        assert np.allclose(row["map_std"], runs.std(axis=0), atol=1e-4)
        assert "labels_to_95pct" in row and "labels_ratio_vs_random" in row
    assert first["strategies"]["random"]["labels_ratio_vs_random"] in (1.0, None)
    random_runs = first["strategies"]["random"]["map_runs"]
    assert random_runs[0] != random_runs[1]  # the seeds draw different labels
    words = shlex.split(first["command"])
    assert words[:3] == ["python", "manage.py", "bench_multilabel"]
    assert words[words.index("--budgets") + 1] == "10,20,40"
    with PILImage.open(tmp_path / "multilabel.png") as plot:
        assert plot.format == "PNG" and plot.width > 300


def test_bad_options_are_refused(tmp_path, cache_dir):
    for options in ({"strategies": "vibes"}, {"budgets": "10,100"}, {"budgets": "ten"}):
        with pytest.raises(CommandError):
            call_command(
                "bench_multilabel",
                json_path=str(tmp_path / "x.json"),
                cache_dir=cache_dir,
                **{**SMALL, **options},
            )
