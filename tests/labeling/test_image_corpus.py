"""Every kind of file people upload shows the same, correct picture wherever it is
decoded: in the thumbnail, in what the learner embeds and predicts on, and in what
fine-tuning trains on. The corpus (tests/image_corpus.py) says what each must look like.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from PIL import Image as PILImage
from PIL import features

from labeling import decoding, services
from labeling.ingest import ALLOWED_FORMATS, ALLOWED_NAMES, EXTENSIONS
from labeling.models import Image
from models_app.ml import finetune
from models_app.ml.backbone import InputConfig
from models_app.ml.preprocess import preprocess
from tests import image_corpus as corpus
from tests.factories import image_upload, upload, zip_bytes

IMAGENET = InputConfig(
    size=128, crop_pct=1.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
)


def assert_looks_right(pixels: np.ndarray, probes, where: str) -> None:
    for probe in probes:
        seen = corpus.window_mean(pixels, probe)
        assert np.abs(seen - probe.rgb).max() <= probe.tolerance, (
            f"{where} at ({probe.x}, {probe.y}): expected {probe.rgb}, saw {seen.round()}"
        )


@pytest.fixture
def uploader(db):
    # No password: hashing one costs more than decoding the whole corpus sample.
    return get_user_model().objects.create(username="uma-uploader")


@pytest.fixture
def gallery(uploader):
    return services.project_create(name="Corpus", user=uploader)


def ingest(project, user, *files):
    return services.images_ingest(project=project, files=list(files), user=user)


def ingested(project, user, name: str, data: bytes) -> Image:
    [result] = ingest(project, user, upload(name, data))
    assert result.status == "created", result.message
    return Image.objects.get(pk=result.image_id)


@pytest.fixture(params=sorted(corpus.CORPUS))
def sample(request) -> corpus.Sample:
    return corpus.CORPUS[request.param]()


# --- ingest: stored size, stored file, thumbnail -------------------------------------


def test_ingest_stores_an_upright_file_and_a_true_thumbnail(gallery, uploader, sample, settings):
    image = ingested(gallery, uploader, sample.filename, sample.data)
    assert (image.width, image.height) == sample.size
    assert image.file.name.endswith(f".{sample.extension}")

    with image.thumbnail.open("rb") as f, PILImage.open(f) as thumb:
        assert (thumb.format, thumb.mode) == ("JPEG", "RGB")
        pixels = np.asarray(thumb)
        size = thumb.size
    box = settings.LABELING["THUMBNAIL_SIZE"]
    assert max(size) == min(box, max(sample.size))
    assert min(size) >= 1  # a 5000×3 panorama must not give a 0-pixel-tall thumbnail
    width, height = sample.size
    assert abs(size[0] * height - size[1] * width) <= max(width, height)  # same shape ±1 px
    assert_looks_right(pixels, sample.probes, f"{sample.name} thumbnail")

    with image.file.open("rb") as f, PILImage.open(f) as stored:
        # What a browser shows: the stored pixels need no EXIF turn any more.
        assert stored.getexif().get(0x0112, 1) == 1
        assert stored.size == sample.size
    with image.file.open("rb") as f:
        stored_pixels = np.asarray(decoding.open_rgb(f))
    assert_looks_right(stored_pixels, sample.probes, f"{sample.name} stored file")

    # What the labeling page serves: the file itself where browsers show its format,
    # else a JPEG preview of the same upright picture (browsers cannot show TIFF).
    client = Client()
    client.force_login(uploader)
    response = client.get(f"/projects/{gallery.pk}/images/{image.pk}/file")
    assert response.status_code == 200
    served = b"".join(response.streaming_content)
    with PILImage.open(io.BytesIO(served)) as shown:
        if sample.extension == "tif":
            assert shown.format == "JPEG" and shown.size == sample.size
        else:
            assert served == image.file.open("rb").read() and not image.preview
        shown_pixels = np.asarray(decoding.image_rgb(shown))
    assert_looks_right(shown_pixels, sample.probes, f"{sample.name} as the page shows it")


def test_a_rotated_jpeg_keeps_its_colour_profile_and_exif(gallery, uploader):
    profile = corpus.swapped_primaries_profile()
    scene = corpus.upright_scene().transpose(PILImage.Transpose.ROTATE_90)
    exif = PILImage.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Phone maker"  # Make
    out = io.BytesIO()
    scene.save(out, format="JPEG", quality=95, exif=exif.tobytes(), icc_profile=profile)
    image = ingested(gallery, uploader, "phone.jpg", out.getvalue())
    assert (image.width, image.height) == corpus.UPRIGHT_SIZE
    with image.file.open("rb") as f, PILImage.open(f) as stored:
        assert stored.info.get("icc_profile") == profile
        assert stored.getexif().get(0x010F) == "Phone maker"
        assert stored.getexif().get(0x0112, 1) == 1


# --- the learner: preprocess ------------------------------------------------------------


def crop_position(probe: corpus.Probe, size: tuple[int, int], config: InputConfig):
    """Where a probe of the upright picture lands in preprocess's centre crop, or None
    when the crop cut it off."""
    width, height = size
    scale = round(config.size / config.crop_pct)
    if width <= height:
        new = (scale, max(scale, round(height * scale / width)))
    else:
        new = (max(scale, round(width * scale / height)), scale)
    x = (probe.x * new[0] - (new[0] - config.size) // 2) / config.size
    y = (probe.y * new[1] - (new[1] - config.size) // 2) / config.size
    # The patch keeps its size in the picture, so it grows as a share of the crop.
    window = (probe.window[0] * new[0] / config.size, probe.window[1] * new[1] / config.size)
    if all(w <= v <= 1 - w for v, w in ((x, window[0]), (y, window[1]))):
        return corpus.Probe(x, y, probe.rgb, probe.tolerance, window)
    return None


def denormalised(array: np.ndarray, config: InputConfig) -> np.ndarray:
    pixels = array.transpose(1, 2, 0) * np.asarray(config.std) + np.asarray(config.mean)
    return pixels * 255


def test_the_learner_sees_the_same_picture(sample):
    array = preprocess(io.BytesIO(sample.data), IMAGENET)
    assert array.shape == (3, IMAGENET.size, IMAGENET.size) and array.dtype == np.float32
    probes = [p for p in (crop_position(p, sample.size, IMAGENET) for p in sample.probes) if p]
    assert probes, "no probe inside the crop: the sample checks nothing here"
    assert_looks_right(denormalised(array, IMAGENET), probes, f"{sample.name} preprocess")


def test_preprocess_resizes_and_crops_as_it_always_did():
    # Resizing only the cropped box must give the pixels of resize-then-crop, so the
    # embeddings already stored stay comparable with new ones.
    photo = corpus.photo("PNG")
    config = InputConfig(size=224, crop_pct=0.875, mean=(0.5,) * 3, std=(0.25,) * 3)
    rgb = PILImage.open(io.BytesIO(photo)).convert("RGB")
    scale = round(config.size / config.crop_pct)
    new = (max(scale, round(rgb.width * scale / rgb.height)), scale)
    left, top = (new[0] - config.size) // 2, (new[1] - config.size) // 2
    whole = rgb.resize(new, PILImage.Resampling.BICUBIC)
    cropped = whole.crop((left, top, left + config.size, top + config.size))
    expected = (np.asarray(cropped, np.float32) / 255 - 0.5) / 0.25
    got = preprocess(io.BytesIO(photo), config).transpose(1, 2, 0)
    assert np.abs(got - expected).max() <= 2 / 255 / 0.25


def test_a_panorama_preprocesses_at_the_real_input_size():
    sample = corpus.png_very_wide()
    config = InputConfig(size=224, crop_pct=0.875, mean=(0.0,) * 3, std=(1.0,) * 3)
    pixels = denormalised(preprocess(io.BytesIO(sample.data), config), config)
    assert_looks_right(pixels, [corpus.Probe(0.5, 0.5, corpus.GREEN)], "panorama")


def test_a_big_jpeg_decodes_at_a_draft_size_no_smaller_than_asked():
    data = corpus.jpeg_big_photo().data  # 1200×800
    assert decoding.open_rgb(io.BytesIO(data)).size == (1200, 800)
    drafted = decoding.open_rgb(io.BytesIO(data), draft_size=128)
    assert drafted.size == (300, 200)  # 1/4 scale: the largest that keeps both sides ≥128
    png = corpus.photo("PNG")
    assert decoding.open_rgb(io.BytesIO(png), draft_size=128).size == (451, 300)


# --- one function for every path ---------------------------------------------------------


def test_ingest_preprocess_and_finetune_share_the_one_decoding(
    gallery, uploader, tmp_path, monkeypatch
):
    sample = corpus.png_rgba_disc()
    path = tmp_path / "disc.png"
    path.write_bytes(sample.data)
    expected = np.asarray(decoding.open_rgb(path))
    assert_looks_right(expected, sample.probes, "decoding")

    calls: list[str] = []
    real = decoding.image_rgb

    def spy(image):
        calls.append(image.mode)
        return real(image)

    monkeypatch.setattr(decoding, "image_rgb", spy)

    files = finetune._Files([path], np.array([0]), transform=np.asarray)
    pixels, label = files[0]
    assert label == 0 and np.array_equal(pixels, expected)
    assert len(calls) == 1

    identity = InputConfig(size=sample.size[0], crop_pct=1.0, mean=(0.0,) * 3, std=(1.0,) * 3)
    array = preprocess(path, identity)
    assert np.abs(denormalised(array, identity) - expected).max() <= 0.5
    assert len(calls) == 2

    image = ingested(gallery, uploader, sample.filename, sample.data)
    assert len(calls) == 3
    with image.thumbnail.open("rb") as f, PILImage.open(f) as thumb:
        thumb_pixels = np.asarray(thumb.resize(sample.size))
    assert np.abs(thumb_pixels.astype(int) - expected).mean() < 6


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("PA", (1, 0), (255, 255, 255)),  # fully transparent: white
        ("La", (80, 255), (80, 80, 80)),
        ("RGBa", (0, 0, 0, 0), (255, 255, 255)),
        ("RGBA", (255, 0, 0, 128), (255, 127, 127)),
        ("HSV", (0, 255, 255), (255, 0, 0)),
        ("YCbCr", (76, 85, 255), (254, 0, 0)),
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
        ("I", 32768, (128, 128, 128)),  # 16-bit samples held in 32 bits
        ("I;16", 65535, (255, 255, 255)),
        ("I;16B", 16384, (64, 64, 64)),
        ("F", 0.25, (64, 64, 64)),
        ("1", 1, (255, 255, 255)),
    ],
)
def test_every_mode_becomes_eight_bit_rgb(mode, value, expected):
    image = PILImage.new(mode, (4, 4), value)
    rgb = decoding.image_rgb(image)
    assert (rgb.mode, rgb.size) == ("RGB", (4, 4))
    assert np.abs(np.asarray(rgb)[1, 1].astype(int) - expected).max() <= 2


def test_the_result_is_never_the_callers_image():
    # The thumbnail is made by resizing the result in place.
    image = PILImage.new("RGB", (4, 4), corpus.RED)
    assert decoding.image_rgb(image) is not image


def test_float_pixels_outside_zero_to_one_are_stretched():
    image = PILImage.fromarray(np.linspace(-3, 5, 64, dtype=np.float32).reshape(8, 8))
    grey = np.asarray(decoding.image_rgb(image))[..., 0]
    assert grey.min() == 0 and grey.max() == 255


def test_a_16bit_grey_png_with_a_transparent_value():
    ramp = np.array([[0, 30000], [65535, 0]], np.uint16)
    out = io.BytesIO()
    PILImage.fromarray(ramp).save(out, format="PNG", transparency=0)
    grey = np.asarray(decoding.open_rgb(io.BytesIO(out.getvalue())))[..., 0]
    assert grey.tolist() == [[255, 116], [255, 255]]  # 0 is see-through: white


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_mangled_exif_block_does_not_cost_the_picture():
    out = io.BytesIO()
    PILImage.new("RGB", (8, 8), corpus.RED).save(
        out, format="JPEG", exif=b"Exif\x00\x00II*\x00garbage"
    )
    rgb = decoding.open_rgb(io.BytesIO(out.getvalue()))
    assert rgb.size == (8, 8) and rgb.getpixel((4, 4))[0] > 200


# --- refusals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        (
            "IMG_0001.HEIC",
            corpus.heic_header,
            "HEIC photos (the iPhone's default) are not supported",
        ),
        ("scan.ppm", corpus.ppm_image, "Not an image we can read"),
        ("scan.jp2", corpus.jpeg2000_image, "Not an image we can read"),
    ],
)
def test_a_format_we_do_not_take_is_refused_naming_the_allowed_ones(
    gallery, uploader, name, make, message
):
    [result] = ingest(gallery, uploader, upload(name, make()))
    assert result.status == "rejected"
    assert message in result.message
    assert ALLOWED_NAMES in result.message
    assert not Image.objects.exists()


def test_the_allowed_formats_are_named_for_people_and_each_has_an_extension():
    assert ALLOWED_NAMES.startswith("JPEG, PNG, WebP, GIF, BMP, TIFF")
    # AVIF exactly where this Pillow can read it (its wheels can): then the learner can.
    assert ("AVIF" in ALLOWED_FORMATS) == features.check("avif")
    assert set(ALLOWED_FORMATS) <= set(EXTENSIONS)


CUT_FILES = {
    "cut.jpg": lambda: corpus.truncated(corpus.photo("JPEG")),
    "cut-progressive.jpg": lambda: corpus.truncated(corpus.photo("JPEG", progressive=True)),
    "cut.png": lambda: corpus.truncated(corpus.photo("PNG")),
    "cut.webp": lambda: corpus.truncated(corpus.photo("WEBP")),
    "cut.tif": lambda: corpus.truncated(corpus.photo("TIFF")),
    "cut.bmp": lambda: corpus.truncated(corpus.photo("BMP")),
    # Cut after the first frame: the first frame decodes, the file is still broken.
    "cut-animated.gif": lambda: corpus.truncated(corpus.animated_gif_photo(), 0.9),
    "cut-animated.png": lambda: corpus.truncated(corpus.animated_png_photo(), 0.9),
}


def test_truncated_files_are_refused_and_the_good_ones_beside_them_kept(
    gallery, uploader, media_root
):
    files = [image_upload(100)]
    files += [upload(name, make()) for name, make in CUT_FILES.items()]
    files += [image_upload(101)]
    results = {r.name: r for r in ingest(gallery, uploader, *files)}
    for name in CUT_FILES:
        assert results[name].status == "rejected", name
        assert "truncated or corrupt" in results[name].message, results[name].message
        assert "interrupted download" in results[name].message
    good = [results["img100.png"], results["img101.png"]]
    assert [r.status for r in good] == ["created", "created"]
    assert Image.objects.count() == 2
    stored = {str(p.relative_to(media_root)) for p in media_root.rglob("*") if p.is_file()}
    expected = set()
    for image in Image.objects.all():
        expected |= {image.file.name, image.thumbnail.name}
    assert stored == expected


def test_truncated_files_inside_a_zip_are_refused_and_the_rest_imported(gallery, uploader):
    good = corpus.photo("JPEG")
    archive = zip_bytes(
        {
            "cat/whole.jpg": good,
            "cat/cut.jpg": corpus.truncated(good),
            "dog/cut.png": corpus.truncated(corpus.photo("PNG")),
            "dog/whole.png": corpus.png_rgba_disc().data,
        },
        compression=zipfile.ZIP_STORED,
    )
    results = {r.name: r for r in ingest(gallery, uploader, upload("batch.zip", archive))}
    assert results["batch.zip/cat/whole.jpg"].status == "created"
    assert results["batch.zip/dog/whole.png"].status == "created"
    for name in ("batch.zip/cat/cut.jpg", "batch.zip/dog/cut.png"):
        assert results[name].status == "rejected"
        assert "truncated or corrupt" in results[name].message
    assert Image.objects.count() == 2
