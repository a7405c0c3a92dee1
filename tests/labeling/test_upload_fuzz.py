"""Hostile uploads, generated: random bytes under any name and content type, nested
zips. Each is refused with a clear 4xx and leaves nothing behind."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeling.models import Image

pytestmark = pytest.mark.django_db

NAMES = st.one_of(
    st.text(min_size=1, max_size=80),
    st.sampled_from(
        [
            "../../etc/passwd.png",
            "/abs/olute.jpg",
            "C:\\\\windows\\\\evil.png",
            "nul\x00byte.png",
            "caf\udce9.png",  # a name that was not UTF-8 (surrogate escape)
            "x" * 400 + ".png",
            ".zip",
            "pets.zip",
        ]
    ),
)
TYPES = st.sampled_from(
    ["image/png", "image/jpeg", "application/zip", "text/html", "application/octet-stream", ""]
)


def stored_files(media_root) -> list:
    return [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=4096), name=NAMES, content_type=TYPES)
def test_random_files_are_refused_and_leave_nothing(
    api, owner, project, media_root, data, name, content_type
):
    safe_name = name.encode("utf-8", "replace").decode("utf-8").replace("\x00", "") or "f"
    upload = SimpleUploadedFile(safe_name, data, content_type=content_type or None)
    response = api(owner).post(
        f"/api/v1/projects/{project.pk}/images/", {"files": [upload]}, format="multipart"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    # Refused per file with a reason, or (an empty file) by the form itself.
    assert (body.get("rejected") == 1 and body["results"][0]["message"]) or body.get("files")
    assert not Image.objects.filter(project=project).exists()
    assert stored_files(media_root) == []


def test_a_zip_inside_a_zip_is_refused_and_leaves_nothing(api, owner, project, media_root):
    from tests.factories import image_bytes

    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("cat/a.png", image_bytes(1))
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("cat/inner.zip", inner.getvalue())
    response = api(owner).post(
        f"/api/v1/projects/{project.pk}/images/",
        {"files": [SimpleUploadedFile("nested.zip", outer.getvalue())]},
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["results"][0]["status"] == "rejected"
    assert not Image.objects.filter(project=project).exists()
    assert stored_files(media_root) == []
