"""Real-world image files, made with Pillow (and tifffile) at test time, each with what
its correct picture looks like.

Each kind is a function returning a `Sample`: the file's bytes and a few `Probe`s, the
colour the upright, white-composited, first-frame picture must show at a point. The
pictures are made so that the usual mistakes fail visibly: transparent pixels are black
underneath (dropping the alpha gives black corners), every frame after the first has
another colour, an EXIF-rotated picture has a red top, a green left and a blue rest,
16-bit greyscale is a ramp (clipping makes it white), and so on.

The functions at the end make files that must be refused with a message: formats we do
not take, and good files cut short as an interrupted download leaves them.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tifffile
from PIL import Image, ImageCms, ImageDraw, features
from skimage import data as skimage_data

RGB = tuple[int, int, int]
RED: RGB = (255, 0, 0)
GREEN: RGB = (0, 200, 0)
BLUE: RGB = (0, 0, 255)
WHITE: RGB = (255, 255, 255)
CYAN: RGB = (0, 255, 255)
SIDE = 96  # big enough that JPEG blocks do not blur the probes, small enough to be quick


@dataclass(frozen=True)
class Probe:
    """The colour at (x, y), as fractions of the upright picture's width and height."""

    x: float
    y: float
    rgb: RGB
    tolerance: int = 40
    window: tuple[float, float] = (0.03, 0.03)  # half-sides of the patch averaged, as fractions


def window_mean(pixels: np.ndarray, probe: Probe) -> np.ndarray:
    """The mean colour of `pixels` (height, width, 3) in the probe's patch."""
    height, width = pixels.shape[:2]
    rx = max(1, round(probe.window[0] * width))
    ry = max(1, round(probe.window[1] * height))
    cx, cy = min(int(probe.x * width), width - 1), min(int(probe.y * height), height - 1)
    patch = pixels[max(0, cy - ry) : cy + ry + 1, max(0, cx - rx) : cx + rx + 1]
    return patch.reshape(-1, 3).astype(np.float64).mean(axis=0)


@dataclass(frozen=True)
class Sample:
    name: str
    filename: str
    data: bytes
    size: tuple[int, int]  # upright width, height
    probes: tuple[Probe, ...]
    extension: str  # what the stored file's name ends with


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _disc(mode: str, background, colour, side: int = SIDE) -> Image.Image:
    """A disc of `colour` (radius 0.3 of the side) on `background`."""
    image = Image.new(mode, (side, side), background)
    r = 0.3 * side
    c = side / 2
    ImageDraw.Draw(image).ellipse((c - r, c - r, c + r, c + r), fill=colour)
    return image


def _disc_probes(centre: RGB, corner: RGB = WHITE, tolerance: int = 40) -> tuple[Probe, ...]:
    return (
        Probe(0.5, 0.5, centre, tolerance),
        Probe(0.08, 0.08, corner, tolerance),
        Probe(0.92, 0.92, corner, tolerance),
        Probe(0.92, 0.08, corner, tolerance),
    )


def _disc_sample(name: str, filename: str, data: bytes, centre: RGB, **kwargs) -> Sample:
    extension = kwargs.pop("extension", filename.rsplit(".", 1)[1])
    return Sample(name, filename, data, (SIDE, SIDE), _disc_probes(centre, **kwargs), extension)


# --- transparency: composited on white -------------------------------------------------


def png_rgba_disc() -> Sample:
    """A red disc on fully transparent black, and a half-transparent blue square."""
    image = _disc("RGBA", (0, 0, 0, 0), (*RED, 255))
    ImageDraw.Draw(image).rectangle((0, 80, 14, 95), fill=(0, 0, 255, 128))
    sample = _disc_sample("png_rgba_disc", "disc.png", _save(image, "PNG"), RED)
    # Half of blue over white: (127, 127, 255), neither blue nor white nor black.
    return Sample(
        sample.name,
        sample.filename,
        sample.data,
        sample.size,
        (*sample.probes, Probe(0.07, 0.92, (127, 127, 255), 20)),
        sample.extension,
    )


def png_la_disc() -> Sample:
    image = _disc("LA", (0, 0), (60, 255))
    return _disc_sample("png_la_disc", "grey-alpha.png", _save(image, "PNG"), (60, 60, 60))


def png_palette_transparent_index() -> Sample:
    image = _disc("P", 0, 1)
    image.putpalette([0, 0, 0, *RED] + [0] * 762)
    data = _save(image, "PNG", transparency=0)
    return _disc_sample("png_palette_transparent_index", "palette.png", data, RED)


def png_palette_alpha_table() -> Sample:
    """A palette whose tRNS gives each entry its own alpha (index 0 clear, 1 opaque)."""
    image = _disc("P", 0, 1)
    image.putpalette([0, 0, 0, *RED] + [0] * 762)
    data = _save(image, "PNG", transparency=b"\x00\xff")
    return _disc_sample("png_palette_alpha_table", "palette-alpha.png", data, RED)


def png_rgb_colour_key() -> Sample:
    """An RGB PNG whose tRNS chunk makes pure black transparent."""
    image = _disc("RGB", (0, 0, 0), RED)
    data = _save(image, "PNG", transparency=(0, 0, 0))
    return _disc_sample("png_rgb_colour_key", "colour-key.png", data, RED)


def png_grey_colour_key() -> Sample:
    image = _disc("L", 0, 90)
    data = _save(image, "PNG", transparency=0)
    return _disc_sample("png_grey_colour_key", "grey-key.png", data, (90, 90, 90))


def gif_transparent() -> Sample:
    image = _disc("P", 0, 1)
    image.putpalette([0, 0, 0, *RED] + [0] * 762)
    data = _save(image, "GIF", transparency=0)
    return _disc_sample("gif_transparent", "transparent.gif", data, RED)


def webp_rgba_disc() -> Sample:
    image = _disc("RGBA", (0, 0, 0, 0), (*RED, 255))
    data = _save(image, "WEBP", lossless=True)
    return _disc_sample("webp_rgba_disc", "disc.webp", data, RED)


def tiff_rgba_disc() -> Sample:
    image = _disc("RGBA", (0, 0, 0, 0), (*RED, 255))
    data = _save(image, "TIFF", compression="tiff_deflate")
    return _disc_sample("tiff_rgba_disc", "disc.tif", data, RED, extension="tif")


def png_16bit_rgba_disc() -> Sample:
    pixels = np.zeros((SIDE, SIDE, 4), np.uint16)
    mask = np.asarray(_disc("L", 0, 255)) > 0
    pixels[mask] = (65535, 0, 0, 65535)
    data = _png16(pixels, colour_type=6)
    return _disc_sample("png_16bit_rgba_disc", "disc16.png", data, RED)


# --- first frame -------------------------------------------------------------------------


def _flat_frames(*colours: RGB) -> list[Image.Image]:
    return [Image.new("RGB", (SIDE, SIDE), colour) for colour in colours]


def _first_frame_sample(name: str, filename: str, data: bytes, extension: str) -> Sample:
    probes = (Probe(0.5, 0.5, RED), Probe(0.1, 0.1, RED), Probe(0.9, 0.9, RED))
    return Sample(name, filename, data, (SIDE, SIDE), probes, extension)


def gif_animated() -> Sample:
    first, *rest = (f.convert("P") for f in _flat_frames(RED, GREEN, BLUE))
    data = _save(first, "GIF", save_all=True, append_images=rest, duration=100, loop=0)
    return _first_frame_sample("gif_animated", "animated.gif", data, "gif")


def webp_animated() -> Sample:
    first, *rest = _flat_frames(RED, GREEN, BLUE)
    data = _save(first, "WEBP", save_all=True, append_images=rest, duration=100, lossless=True)
    return _first_frame_sample("webp_animated", "animated.webp", data, "webp")


def png_animated() -> Sample:
    """APNG: the default image is frame 0."""
    first, *rest = _flat_frames(RED, BLUE)
    data = _save(first, "PNG", save_all=True, append_images=rest, duration=100)
    return _first_frame_sample("png_animated", "animated.png", data, "png")


def tiff_multipage() -> Sample:
    first, *rest = _flat_frames(RED, GREEN, BLUE)
    data = _save(first, "TIFF", save_all=True, append_images=rest)
    return _first_frame_sample("tiff_multipage", "scan.tif", data, "tif")


def mpo_two_frames() -> Sample:
    """A camera's multi-picture JPEG (stereo pair, or a preview behind the photo)."""
    first, *rest = _flat_frames(RED, BLUE)
    data = _save(first, "MPO", save_all=True, append_images=rest)
    return _first_frame_sample("mpo_two_frames", "stereo.jpg", data, "jpg")


# --- bit depth: greyscale ramps, not a white or black square ---------------------------


def _ramp_probes(tolerance: int = 12) -> tuple[Probe, ...]:
    # The ramp runs left (0) to right (full scale).
    return tuple(Probe(x, 0.5, (round(255 * x),) * 3, tolerance) for x in (0.1, 0.3, 0.5, 0.7, 0.9))


def _ramp(dtype, top: float) -> np.ndarray:
    row = np.linspace(0, top, SIDE, dtype=np.float64)
    return np.repeat(row[None, :], SIDE, axis=0).astype(dtype)


def _ramp_sample(name: str, filename: str, data: bytes, extension: str) -> Sample:
    return Sample(name, filename, data, (SIDE, SIDE), _ramp_probes(), extension)


def png_16bit_grey_ramp() -> Sample:
    data = _save(Image.fromarray(_ramp(np.uint16, 65535)), "PNG")
    return _ramp_sample("png_16bit_grey_ramp", "depth16.png", data, "png")


def tiff_16bit_grey_ramp() -> Sample:
    data = _save(Image.fromarray(_ramp(np.uint16, 65535)), "TIFF")
    return _ramp_sample("tiff_16bit_grey_ramp", "depth16.tif", data, "tif")


def tiff_16bit_big_endian_ramp() -> Sample:
    out = io.BytesIO()
    tifffile.imwrite(out, _ramp(">u2", 65535), byteorder=">")
    return _ramp_sample("tiff_16bit_big_endian_ramp", "motorola.tif", out.getvalue(), "tif")


def tiff_float_ramp() -> Sample:
    data = _save(Image.fromarray(_ramp(np.float32, 1.0)), "TIFF")
    return _ramp_sample("tiff_float_ramp", "float.tif", data, "tif")


def png_8bit_grey_ramp() -> Sample:
    data = _save(Image.fromarray(_ramp(np.uint8, 255)), "PNG")
    return _ramp_sample("png_8bit_grey_ramp", "grey.png", data, "png")


def png_16bit_rgb_disc() -> Sample:
    pixels = np.full((SIDE, SIDE, 3), 65535, np.uint16)
    mask = np.asarray(_disc("L", 0, 255)) > 0
    pixels[mask] = (65535, 0, 0)
    return _disc_sample("png_16bit_rgb_disc", "rgb16.png", _png16(pixels, colour_type=2), RED)


def tiff_16bit_rgb_disc() -> Sample:
    pixels = np.full((SIDE, SIDE, 3), 65535, np.uint16)
    mask = np.asarray(_disc("L", 0, 255)) > 0
    pixels[mask] = (0, 0, 65535)
    out = io.BytesIO()
    tifffile.imwrite(out, pixels, photometric="rgb")
    return _disc_sample("tiff_16bit_rgb_disc", "rgb16.tif", out.getvalue(), BLUE)


def _png16(pixels: np.ndarray, *, colour_type: int) -> bytes:
    """A 16-bit PNG written by hand: Pillow has no 16-bit colour mode to save from."""
    height, width = pixels.shape[:2]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# --- other modes -------------------------------------------------------------------------


def jpeg_cmyk_adobe() -> Sample:
    """CMYK as Photoshop writes it: inverted, with an Adobe APP14 marker."""
    image = _disc("CMYK", (0, 0, 0, 0), (255, 0, 0, 0))
    data = _save(image, "JPEG", quality=95)
    assert b"\xff\xee\x00\x0eAdobe" in data[:64]  # the APP14 segment
    return _disc_sample("jpeg_cmyk_adobe", "print.jpg", data, CYAN)


def tiff_cmyk() -> Sample:
    image = _disc("CMYK", (0, 0, 0, 0), (0, 255, 255, 0))
    return _disc_sample("tiff_cmyk", "print.tif", _save(image, "TIFF"), RED)


def tiff_lab() -> Sample:
    # Pillow's 8-bit LAB: L 0..255 for 0..100, a and b offset by 128. sRGB red is about
    # L 53, a 80, b 67; white is L 100, a = b = 0.
    image = _disc("LAB", (255, 128, 128), (136, 208, 195))
    return _disc_sample("tiff_lab", "lab.tif", _save(image, "TIFF"), RED, tolerance=50)


def tiff_ycbcr() -> Sample:
    image = _disc("RGB", WHITE, RED).convert("YCbCr")
    return _disc_sample("tiff_ycbcr", "ycbcr.tif", _save(image, "TIFF"), RED)


def tiff_jpeg_compressed() -> Sample:
    image = _disc("RGB", WHITE, BLUE)
    data = _save(image, "TIFF", compression="jpeg")
    return _disc_sample("tiff_jpeg_compressed", "jpeg-in.tif", data, BLUE)


def png_palette() -> Sample:
    image = _disc("RGB", WHITE, BLUE).quantize(colors=4)
    return _disc_sample("png_palette", "palette-opaque.png", _save(image, "PNG"), BLUE)


def png_one_bit() -> Sample:
    image = _disc("1", 1, 0)
    return _disc_sample("png_one_bit", "bilevel.png", _save(image, "PNG"), (0, 0, 0))


def jpeg_greyscale() -> Sample:
    image = _disc("L", 255, 70)
    data = _save(image, "JPEG", quality=95)
    return _disc_sample("jpeg_greyscale", "grey.jpg", data, (70, 70, 70))


def bmp_rgb() -> Sample:
    image = _disc("RGB", WHITE, RED)
    return _disc_sample("bmp_rgb", "paint.bmp", _save(image, "BMP"), RED)


def bmp_palette() -> Sample:
    image = _disc("RGB", WHITE, GREEN).quantize(colors=4)
    return _disc_sample("bmp_palette", "palette.bmp", _save(image, "BMP"), GREEN)


def bmp_one_bit() -> Sample:
    image = _disc("1", 1, 0)
    return _disc_sample("bmp_one_bit", "bilevel.bmp", _save(image, "BMP"), (0, 0, 0))


def webp_lossy() -> Sample:
    image = _disc("RGB", WHITE, GREEN)
    return _disc_sample("webp_lossy", "lossy.webp", _save(image, "WEBP", quality=90), GREEN)


def avif_rgba_disc() -> Sample:
    image = _disc("RGBA", (0, 0, 0, 0), (*RED, 255))
    return _disc_sample("avif_rgba_disc", "disc.avif", _save(image, "AVIF", quality=90), RED)


# --- colour profiles -----------------------------------------------------------------


def swapped_primaries_profile() -> bytes:
    """The sRGB profile with its red and blue primaries swapped: a pixel stored as
    pure red in this space is pure blue in sRGB, so ignoring the profile shows."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", profile[128:132])
    entries = {bytes(profile[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, blue = entries[b"rXYZ"], entries[b"bXYZ"]
    profile[red + 4 : red + 12], profile[blue + 4 : blue + 12] = (
        profile[blue + 4 : blue + 12],
        profile[red + 4 : red + 12],
    )
    return bytes(profile)


def jpeg_icc_swapped() -> Sample:
    image = _disc("RGB", WHITE, RED)
    data = _save(image, "JPEG", quality=95, icc_profile=swapped_primaries_profile())
    return _disc_sample("jpeg_icc_swapped", "wide-gamut.jpg", data, BLUE, tolerance=60)


def png_icc_swapped() -> Sample:
    image = _disc("RGB", WHITE, RED)
    data = _save(image, "PNG", icc_profile=swapped_primaries_profile())
    return _disc_sample("png_icc_swapped", "wide-gamut.png", data, BLUE, tolerance=60)


def jpeg_icc_broken() -> Sample:
    """A profile that is not one: the picture is shown as if it had none."""
    image = _disc("RGB", WHITE, RED)
    data = _save(image, "JPEG", quality=95, icc_profile=b"not an ICC profile at all" * 8)
    return _disc_sample("jpeg_icc_broken", "broken-profile.jpg", data, RED)


# --- orientation ---------------------------------------------------------------------

# How a viewer turns the stored pixels upright, per EXIF orientation (TIFF 6.0, tag
# 0x0112); each of these is its own inverse except 6 and 8, which undo each other.
_TO_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,  # 90° clockwise
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,  # 90° counter-clockwise
}
_TO_STORED = {
    **_TO_UPRIGHT,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}
UPRIGHT_SIZE = (96, 64)


def upright_scene() -> Image.Image:
    """Landscape, red top band, green left band, blue elsewhere: every one of the
    eight orientations stores a different image."""
    width, height = UPRIGHT_SIZE
    image = Image.new("RGB", UPRIGHT_SIZE, BLUE)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width - 1, int(0.3 * height) - 1), fill=RED)
    draw.rectangle((0, int(0.3 * height), int(0.45 * width) - 1, height - 1), fill=GREEN)
    return image


_SCENE_PROBES = (
    Probe(0.5, 0.12, RED),
    Probe(0.3, 0.7, GREEN),
    Probe(0.75, 0.7, BLUE),
)


def _oriented(orientation: int, fmt: str, extension: str, **options) -> Sample:
    scene = upright_scene()
    stored = scene.transpose(_TO_STORED[orientation]) if orientation in _TO_STORED else scene
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _save(stored, fmt, exif=exif.tobytes(), **options)
    name = f"{fmt.lower()}_orientation_{orientation}"
    return Sample(
        name, f"oriented-{orientation}.{extension}", data, UPRIGHT_SIZE, _SCENE_PROBES, extension
    )


def jpeg_orientation(orientation: int) -> Callable[[], Sample]:
    def make() -> Sample:
        return _oriented(orientation, "JPEG", "jpg", quality=95)

    make.__name__ = f"jpeg_orientation_{orientation}"
    return make


def png_orientation_6() -> Sample:
    return _oriented(6, "PNG", "png")


def webp_orientation_8() -> Sample:
    return _oriented(8, "WEBP", "webp", lossless=True)


def tiff_orientation_6() -> Sample:
    return _oriented(6, "TIFF", "tif")


# --- sizes and real photos -----------------------------------------------------------


def png_one_pixel() -> Sample:
    data = _save(Image.new("RGB", (1, 1), RED), "PNG")
    return Sample("png_one_pixel", "dot.png", data, (1, 1), (Probe(0.5, 0.5, RED),), "png")


def _thirds(size: tuple[int, int], horizontal: bool) -> Image.Image:
    image = Image.new("RGB", size, GREEN)
    draw = ImageDraw.Draw(image)
    long = size[0] if horizontal else size[1]
    a, b = long // 3, 2 * long // 3
    if horizontal:
        draw.rectangle((0, 0, a - 1, size[1] - 1), fill=RED)
        draw.rectangle((b, 0, long - 1, size[1] - 1), fill=BLUE)
    else:
        draw.rectangle((0, 0, size[0] - 1, a - 1), fill=RED)
        draw.rectangle((0, b, size[0] - 1, long - 1), fill=BLUE)
    return image


def png_very_wide() -> Sample:
    size = (5000, 3)
    data = _save(_thirds(size, horizontal=True), "PNG")
    # Narrow patches: the learner's centre crop of a panorama is a sliver of it.
    probes = tuple(
        Probe(x, 0.5, rgb, window=(0.0001, 0.3))
        for x, rgb in ((0.15, RED), (0.5, GREEN), (0.85, BLUE))
    )
    return Sample("png_very_wide", "panorama.png", data, size, probes, "png")


def png_very_tall() -> Sample:
    size = (3, 5000)
    data = _save(_thirds(size, horizontal=False), "PNG")
    probes = tuple(
        Probe(0.5, y, rgb, window=(0.3, 0.0001))
        for y, rgb in ((0.15, RED), (0.5, GREEN), (0.85, BLUE))
    )
    return Sample("png_very_tall", "scroll.png", data, size, probes, "png")


def _photo_probes(pixels: np.ndarray, points, tolerance: int = 20) -> tuple[Probe, ...]:
    """The photo's own mean colours around `points`: wide patches, so that resizing and
    JPEG blocks shift them little while a turned, mirrored or recoloured photo fails."""
    window = (0.05, 0.05)
    probes = (Probe(x, y, (0, 0, 0), tolerance, window) for x, y in points)
    return tuple(
        Probe(p.x, p.y, tuple(int(round(v)) for v in window_mean(pixels, p)), tolerance, window)
        for p in probes
    )


_PHOTO_POINTS = ((0.5, 0.5), (0.3, 0.25), (0.7, 0.8), (0.4, 0.6))


def jpeg_progressive_photo() -> Sample:
    """scikit-image's cat, as a progressive JPEG."""
    pixels = skimage_data.chelsea()
    data = _save(Image.fromarray(pixels), "JPEG", quality=92, progressive=True)
    height, width = pixels.shape[:2]
    probes = _photo_probes(pixels, _PHOTO_POINTS)
    return Sample("jpeg_progressive_photo", "chelsea.jpg", data, (width, height), probes, "jpg")


def jpeg_big_photo() -> Sample:
    """The coffee photo at 1200 px: big enough that the learner's JPEG draft applies."""
    image = Image.fromarray(skimage_data.coffee()).resize((1200, 800), Image.Resampling.LANCZOS)
    pixels = np.asarray(image)
    data = _save(image, "JPEG", quality=92)
    probes = _photo_probes(pixels, _PHOTO_POINTS)
    return Sample("jpeg_big_photo", "coffee.jpg", data, image.size, probes, "jpg")


# --- the corpus ----------------------------------------------------------------------

CORPUS: dict[str, Callable[[], Sample]] = {
    make.__name__: make
    for make in (
        png_rgba_disc,
        png_la_disc,
        png_palette_transparent_index,
        png_palette_alpha_table,
        png_rgb_colour_key,
        png_grey_colour_key,
        gif_transparent,
        webp_rgba_disc,
        tiff_rgba_disc,
        png_16bit_rgba_disc,
        gif_animated,
        webp_animated,
        png_animated,
        tiff_multipage,
        mpo_two_frames,
        png_16bit_grey_ramp,
        tiff_16bit_grey_ramp,
        tiff_16bit_big_endian_ramp,
        tiff_float_ramp,
        png_8bit_grey_ramp,
        png_16bit_rgb_disc,
        tiff_16bit_rgb_disc,
        jpeg_cmyk_adobe,
        tiff_cmyk,
        tiff_lab,
        tiff_ycbcr,
        tiff_jpeg_compressed,
        png_palette,
        png_one_bit,
        jpeg_greyscale,
        bmp_rgb,
        bmp_palette,
        bmp_one_bit,
        webp_lossy,
        *((avif_rgba_disc,) if features.check("avif") else ()),
        jpeg_icc_swapped,
        png_icc_swapped,
        jpeg_icc_broken,
        *(jpeg_orientation(o) for o in range(1, 9)),
        png_orientation_6,
        webp_orientation_8,
        tiff_orientation_6,
        png_one_pixel,
        png_very_wide,
        png_very_tall,
        jpeg_progressive_photo,
        jpeg_big_photo,
    )
}


# --- files to refuse ---------------------------------------------------------------


def heic_header() -> bytes:
    """The start of an iPhone photo (HEIF container, HEVC brand). Nothing here can
    write one, and nothing past the header matters: the brand alone must be named."""
    ftyp = b"ftyp" + b"heic" + b"\x00\x00\x00\x00" + b"mif1heic"
    box = struct.pack(">I", 4 + len(ftyp)) + ftyp
    return box + b"\x00\x00\x00\x08free" + bytes(range(256)) * 4


def ppm_image() -> bytes:
    return _save(_disc("RGB", WHITE, RED), "PPM")


def jpeg2000_image() -> bytes:
    return _save(_disc("RGB", WHITE, RED), "JPEG2000")


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    """`data` cut short, as an interrupted download leaves it."""
    return data[: int(len(data) * fraction)]


def photo(fmt: str, **options) -> bytes:
    return _save(Image.fromarray(skimage_data.chelsea()), fmt, **options)


def animated_gif_photo() -> bytes:
    cat = Image.fromarray(skimage_data.chelsea())
    frames = [cat.convert("P"), cat.rotate(90).convert("P"), cat.rotate(180).convert("P")]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:])


def animated_png_photo() -> bytes:
    cat = Image.fromarray(skimage_data.chelsea())
    return _save(cat, "PNG", save_all=True, append_images=[cat.rotate(90), cat.rotate(180)])
