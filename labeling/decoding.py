"""The one decoding rule: how any accepted file becomes the 8-bit RGB picture we show.

Thumbnails (`labeling.ingest`), embedding and predictions (`models_app.ml.preprocess`)
and fine-tuning (`models_app.ml.finetune`) all decode through `image_rgb`, so a picture
cannot look one way on the labeling page and another way to the model. The rule:

- the first frame of an animation or a multi-page file;
- EXIF orientation applied, so the picture is upright;
- transparency (alpha, a transparent palette entry, a transparent colour key)
  composited on white: what a browser shows on a white page, where dropping the alpha
  would show whatever colour the invisible pixels happen to hold (often black);
- 16-bit and 32-bit greyscale scaled to 0..255 (not clipped, which turns most of such
  an image white), floats in 0..1 scaled, any other float range stretched;
- an embedded ICC profile converted to sRGB, silently skipped when it is broken or does
  not fit the pixels;
- every other mode (palette, 1-bit, CMYK, YCbCr, LAB, ...) converted by Pillow.

Pure Pillow: no Django, so `models_app.ml` may import it.
"""

from __future__ import annotations

import functools
import io
import struct
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageCms, ImageOps

WHITE = (255, 255, 255)
ORIENTATION = 0x0112  # the EXIF tag
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def open_rgb(source: str | Path | BinaryIO, *, draft_size: int | None = None) -> Image.Image:
    """Open a file and decode it by `image_rgb`.

    `draft_size` lets a JPEG decode at 1/2, 1/4 or 1/8 scale straight from its DCT
    (several times faster) while staying at least `draft_size` pixels on both sides;
    other formats ignore it. Callers that resize further (the learner) pass it; callers
    that need every pixel (thumbnails, vetting) do not.
    """
    with Image.open(source) as image:
        if draft_size:
            # Before anything loads the pixels, or the draft is silently ignored.
            image.draft(None, (draft_size, draft_size))
        return image_rgb(image)


def image_upright(image: Image.Image) -> Image.Image:
    """The first frame, loaded, with its EXIF orientation applied; mode unchanged.
    `image` itself (not a copy) when it needs no turn."""
    if image.tell() != 0:
        image.seek(0)
    image.load()
    try:
        if image.getexif().get(ORIENTATION, 1) not in range(2, 9):
            return image
        return ImageOps.exif_transpose(image)
    except (SyntaxError, ValueError, TypeError, KeyError, OSError, struct.error):
        # A mangled EXIF block must not cost the picture: show it as stored.
        return image


def image_rgb(image: Image.Image) -> Image.Image:
    """Upright 8-bit RGB pixels of `image` by the rule above; a new image.

    Raises ValueError for a mode Pillow cannot convert, and OSError or SyntaxError for
    data that does not decode.
    """
    upright = image_upright(image)
    icc = upright.info.get("icc_profile")
    pixels = _flatten(_eight_bit(upright))
    rgb = _to_srgb(pixels, icc) if icc and pixels.mode in ("RGB", "L", "CMYK") else None
    if rgb is None:
        rgb = pixels.convert("RGB") if pixels.mode != "RGB" else pixels
    if rgb is image:
        rgb = rgb.copy()  # callers resize the result in place: never hand back theirs
    # The pixels are sRGB now: a profile left in `info` would be applied a second time
    # by whoever saves this image in a format that copies it (PNG does).
    rgb.info.pop("icc_profile", None)
    return rgb


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale to "L" (or "LA" for a transparent colour key)."""
    if not (image.mode.startswith("I") or image.mode == "F"):
        return image
    alpha = None
    if "transparency" in image.info and image.mode in ("I", "I;16"):
        alpha = image.convert("LA").getchannel("A")
    wide = image if image.mode in ("I", "F") else image.convert("I")
    low, high = wide.getextrema()
    if wide.mode == "I":
        # Integers are 16-bit samples unless they say otherwise: a dark 16-bit image
        # stays dark instead of being stretched to full contrast.
        scale, offset = 255 / max(65535, high), 0.0
    elif low >= 0 and high <= 1:
        scale, offset = 255.0, 0.0
    elif high > low:
        scale, offset = 255 / (high - low), -low * 255 / (high - low)
    else:
        scale, offset = 1.0, 0.0
    grey = wide.convert("F").point(lambda v: v * scale + offset).convert("L")
    return Image.merge("LA", (grey, alpha)) if alpha is not None else grey


def _flatten(image: Image.Image) -> Image.Image:
    """Composite any transparency on white; "L" stays greyscale so a grey ICC fits."""
    if image.mode == "1":
        return image.convert("L")
    if image.mode == "P":
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    elif image.mode in ("L", "RGB") and "transparency" in image.info:
        image = image.convert("LA" if image.mode == "L" else "RGBA")
    if image.mode not in _ALPHA_MODES:
        return image
    base = "L" if image.mode in ("LA", "La") else "RGB"
    with_alpha = image.convert(base + "A")  # also un-premultiplies "La" and "RGBa"
    background = Image.new(base, image.size, WHITE[0] if base == "L" else WHITE)
    background.paste(with_alpha.convert(base), mask=with_alpha.getchannel("A"))
    return background


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image | None:
    try:
        transform = _transform_to_srgb(icc, image.mode)
        return ImageCms.applyTransform(image, transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        # A broken profile, or one for another colour space than the pixels.
        return None


@functools.lru_cache(maxsize=32)
def _transform_to_srgb(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    # Photos from one camera share a profile: build each transform once.
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.buildTransform(profile, _SRGB, mode, "RGB")
