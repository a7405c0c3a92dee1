"""Test data: users, and real image files made with Pillow."""

from __future__ import annotations

import io
import zipfile

import factory
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)


def image_bytes(
    seed: int = 0, *, size: tuple[int, int] = (64, 48), fmt: str = "PNG", exif=None
) -> bytes:
    """A distinct, real image for every seed: a gradient whose colours depend on it."""
    image = PILImage.new("RGB", size)
    r, g, b = (seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256
    image.putdata(
        [
            ((r + x) % 256, (g + y) % 256, (b + x * y) % 256)
            for y in range(size[1])
            for x in range(size[0])
        ]
    )
    out = io.BytesIO()
    kwargs = {"exif": exif} if exif is not None else {}
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def upload(name: str, data: bytes, content_type: str = "application/octet-stream"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def image_upload(seed: int = 0, name: str | None = None, **kwargs) -> SimpleUploadedFile:
    return upload(name or f"img{seed}.png", image_bytes(seed, **kwargs), "image/png")


def zip_bytes(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()
