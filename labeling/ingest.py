"""Decode and vet uploaded files before anything is stored.

Pure functions over bytes and file objects: no database, no storage. Every refusal is a
`RejectedFile` whose message is written for the person who sent the file.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image as PILImage
from PIL import UnidentifiedImageError, features

from labeling import decoding

# Formats a browser can show and the learner can read. Anything else is refused even if
# Pillow has a plugin for it (EPS, for one, would run Ghostscript). AVIF only where this
# Pillow was built with libavif (its wheels are); every process of a deployment runs the
# same build, so the learner can read whatever the upload accepted.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF") + (
    ("AVIF",) if features.check("avif") else ()
)
# What browsers display themselves; other formats get a JPEG preview for the pages.
BROWSER_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "AVIF")
PREVIEW_SIZE = 2048
# MPO is how Pillow names a JPEG holding several pictures (phones, stereo cameras).
EXTENSIONS = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tif",
    "AVIF": "avif",
}
_NAMES = {"WEBP": "WebP"}
ALLOWED_NAMES = ", ".join(_NAMES.get(f, f) for f in ALLOWED_FORMATS)
# ISO base media brands of HEIF stills (HEVC-coded, what iPhones save by default).
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
# Storing a turned image again: near-lossless quality for the lossy formats, and the
# formats whose writers take an EXIF block (every writer that can takes the profile).
_RESAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}, "AVIF": {"quality": 95}}
_KEEPS_EXIF = ("JPEG", "PNG", "WEBP", "AVIF")


class RejectedFile(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_image_bytes: int
    max_image_pixels: int
    max_zip_bytes: int
    max_zip_expanded_bytes: int
    max_zip_ratio: int
    max_zip_entries: int
    thumbnail_size: int


@dataclass(frozen=True)
class DecodedImage:
    content: bytes
    extension: str
    width: int
    height: int
    thumbnail: bytes
    content_hash: str
    # A JPEG of the upright picture for formats a browser cannot show (TIFF), served
    # on the labeling page in place of the file; None where the file itself will do.
    preview: bytes | None = None


@dataclass(frozen=True)
class ZipMember:
    """One file inside a zip: either its bytes or the reason it was refused."""

    name: str
    class_name: str | None
    data: bytes | None = None
    error: str | None = None


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def too_large(size: int, limit: int) -> str:
    return f"File is {human_size(size)}, over the {human_size(limit)} limit."


def image_decode(data: bytes, *, limits: Limits) -> DecodedImage:
    """Fully decode `data`, apply its EXIF orientation and make a JPEG thumbnail.

    The thumbnail and the stored size come from `decoding.image_rgb`, the rule the
    learner decodes by too.
    """
    if len(data) > limits.max_image_bytes:
        raise RejectedFile(too_large(len(data), limits.max_image_bytes))
    if not data:
        raise RejectedFile("File is empty.")
    image = _open(data)
    width, height = image.size
    if width * height > limits.max_image_pixels:
        raise RejectedFile(
            f"Image is {width}×{height} pixels, over the limit of "
            f"{limits.max_image_pixels:,} pixels (a possible decompression bomb)."
        )
    image_format = image.format
    # Pillow turns a TIFF upright as it loads it and drops the tag, so read that first;
    # other formats may keep their EXIF after the pixels, readable once loaded.
    orientation = _orientation(image) if image_format == "TIFF" else None
    try:
        image.load()
        _check_last_frame(data, width * height, limits=limits)
        if orientation is None:
            orientation = _orientation(image)
        upright = decoding.image_upright(image)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        raise RejectedFile(_corrupt(error)) from None
    try:
        rgb = decoding.image_rgb(upright)
    except ValueError as error:
        raise RejectedFile(
            f"Image pixels are in a form we cannot convert to colour ({upright.mode}: "
            f"{error}); save it as an 8-bit JPEG or PNG and upload again."
        ) from None
    except (OSError, SyntaxError) as error:
        raise RejectedFile(_corrupt(error)) from None

    content = data
    if orientation in range(2, 9):
        # Store the upright pixels so the browser, the thumbnail and the learner all see
        # the same picture, whatever each of them does with EXIF.
        content = _resave(upright, image_format)

    width, height = rgb.size
    preview = None
    if image_format not in BROWSER_FORMATS:
        shown = rgb.copy()
        shown.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
        preview_out = io.BytesIO()
        shown.save(preview_out, format="JPEG", quality=92)
        preview = preview_out.getvalue()
    rgb.thumbnail((limits.thumbnail_size, limits.thumbnail_size))
    thumb_out = io.BytesIO()
    rgb.save(thumb_out, format="JPEG", quality=85)
    return DecodedImage(
        content=content,
        extension=EXTENSIONS[image_format],
        width=width,
        height=height,
        thumbnail=thumb_out.getvalue(),
        content_hash=hashlib.sha256(data).hexdigest(),
        preview=preview,
    )


def _open(data: bytes) -> PILImage.Image:
    try:
        return PILImage.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except PILImage.DecompressionBombError:
        raise RejectedFile("Image has too many pixels (a decompression bomb).") from None
    except UnidentifiedImageError:
        if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
            raise RejectedFile(
                "HEIC photos (the iPhone's default) are not supported here: export them "
                "as JPEG (on an iPhone: Settings → Camera → Formats → Most Compatible) and "
                f"upload again. Allowed: {ALLOWED_NAMES}."
            ) from None
        raise RejectedFile(f"Not an image we can read (allowed: {ALLOWED_NAMES}).") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        # The header said what the file is, the rest did not follow (WebP does this).
        raise RejectedFile(_corrupt(error)) from None


def _orientation(image: PILImage.Image) -> int:
    try:
        return image.getexif().get(decoding.ORIENTATION, 1)
    except (SyntaxError, ValueError, TypeError, KeyError, OSError, struct.error):
        return 1  # as `decoding.image_upright` does with an EXIF block it cannot read


def _corrupt(error: BaseException) -> str:
    return (
        f"Image data is truncated or corrupt ({error}); the file may be cut short, as "
        "after an interrupted download. Send it again."
    )


def _check_last_frame(data: bytes, frame_pixels: int, *, limits: Limits) -> None:
    """Decode the last frame of an animation or a multi-page file too: a file cut short
    after its first frame is as damaged as one cut inside it. Skipped where decoding
    every frame would cost more than the largest still image we take."""
    with PILImage.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as frames:
        count = getattr(frames, "n_frames", 1)
        if count > 1 and count * frame_pixels <= limits.max_image_pixels:
            frames.seek(count - 1)
            frames.load()


def _resave(upright: PILImage.Image, image_format: str) -> bytes:
    """`upright` in its own format, keeping its colour profile and its EXIF block
    (less the orientation, which its pixels now carry out)."""
    save_format = "JPEG" if image_format == "MPO" else image_format  # its first picture
    options = dict(_RESAVE_OPTIONS.get(save_format, {}))
    if icc := upright.info.get("icc_profile"):
        options["icc_profile"] = icc
    if save_format in _KEEPS_EXIF:
        options["exif"] = upright.getexif()
    out = io.BytesIO()
    try:
        upright.save(out, format=save_format, **options)
    except (OSError, ValueError) as error:
        raise RejectedFile(f"Could not store the image turned upright ({error}).") from None
    return out.getvalue()


def _member_path(raw_name: str) -> list[str]:
    """Split a zip entry name into safe parts, refusing any that could leave its folder."""
    name = raw_name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise RejectedFile("Path is absolute; entries must stay inside the zip's folders.")
    parts = name.split("/")
    if any(part == ".." for part in parts):
        raise RejectedFile("Path escapes its folder ('..'); refused.")
    normal = posixpath.normpath(name)
    return [part for part in normal.split("/") if part not in ("", ".")]


def _is_noise(parts: list[str]) -> bool:
    # Files that archivers add beside the data (macOS resource forks, Thumbs.db, ...).
    return (
        parts[0] == "__MACOSX"
        or any(p.startswith(".") for p in parts)
        or parts[-1]
        in (
            "Thumbs.db",
            "desktop.ini",
        )
    )


def zip_members(fileobj: BinaryIO, *, size: int, limits: Limits) -> Iterator[ZipMember]:
    """Yield the image files of a zip whose folders are class names.

    Files at the top level are unlabeled; `class/x.jpg` is labeled `class`; a single
    folder wrapping everything (`dataset/class/x.jpg`) is looked through. The whole zip is
    refused up front if it is corrupt, too large, or expands far beyond its size.
    """
    if size > limits.max_zip_bytes:
        raise RejectedFile(
            f"Zip is {human_size(size)}, over the {human_size(limits.max_zip_bytes)} limit."
        )
    try:
        archive = zipfile.ZipFile(fileobj)
        infos = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise RejectedFile(f"Not a readable zip file ({error}).") from None
    if len(infos) > limits.max_zip_entries:
        raise RejectedFile(
            f"Zip holds {len(infos):,} files, over the limit of {limits.max_zip_entries:,}."
        )
    expanded = sum(info.file_size for info in infos)
    if expanded > limits.max_zip_expanded_bytes or expanded > max(size, 1) * limits.max_zip_ratio:
        raise RejectedFile(
            f"Zip would expand to {human_size(expanded)} from {human_size(size)}, far beyond "
            "its size (a possible zip bomb); refused."
        )

    entries: list[tuple[zipfile.ZipInfo, list[str] | None, str | None]] = []
    for info in infos:
        try:
            parts = _member_path(info.filename)
        except RejectedFile as rejected:
            entries.append((info, None, rejected.message))
            continue
        if parts and not _is_noise(parts):
            entries.append((info, parts, None))

    good = [parts for _, parts, _ in entries if parts]
    strip = 0
    if good and all(len(p) >= 3 for p in good) and len({p[0] for p in good}) == 1:
        strip = 1

    for info, parts, error in entries:
        if parts is None:
            yield ZipMember(name=info.filename, class_name=None, error=error)
            continue
        parts = parts[strip:]
        class_name = parts[0] if len(parts) > 1 else None
        if info.flag_bits & 0x1:
            yield ZipMember(info.filename, class_name, error="Entry is encrypted; refused.")
            continue
        if info.file_size > limits.max_image_bytes:
            yield ZipMember(
                info.filename,
                class_name,
                error=too_large(info.file_size, limits.max_image_bytes),
            )
            continue
        try:
            with archive.open(info) as member:
                # The header's size may lie: never read more than the limit allows.
                data = member.read(limits.max_image_bytes + 1)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
            yield ZipMember(info.filename, class_name, error=f"Entry is corrupt ({error}).")
            continue
        if len(data) > limits.max_image_bytes:
            yield ZipMember(
                info.filename,
                class_name,
                error=f"Expands beyond the {human_size(limits.max_image_bytes)} limit; refused.",
            )
            continue
        yield ZipMember(info.filename, class_name, data=data)
