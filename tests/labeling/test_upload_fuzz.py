"""Hostile uploads, generated: random bytes under any name and content type, nested
zips. Each is refused by name with the reason, the good file beside it is stored, and a
refused file leaves nothing behind (no row, no file under MEDIA_ROOT)."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import string

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from labeling.models import Image
from tests.factories import image_bytes, image_upload, zip_bytes

pytestmark = pytest.mark.django_db

# Hostile names and the name the server receives, worked out by hand: the test client
# sends the basename, Django's multipart parser drops what precedes a slash or a
# backslash, and an UploadedFile cuts a name to 255 characters.
HOSTILE = {
    "../../etc/passwd.png": "passwd.png",
    "/abs/olute.jpg": "olute.jpg",
    "C:\\\\windows\\\\evil.png": "evil.png",
    "nul\x00byte.png": "nulbyte.png",  # the NUL cannot travel in a header: dropped here
    "caf\udce9.png": "caf?.png",  # a name that was not UTF-8 (surrogate escape)
    "x" * 400 + ".png": "x" * 251 + ".png",
    ".zip": ".zip",
    "pets.zip": "pets.zip",
}
PLAIN = st.builds(
    lambda stem, ext: stem + ext,
    st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=40),
    st.sampled_from(["", ".png", ".jpg", ".gif", ".PNG", ".zip", ".ZIP", ".txt"]),
)
# (sent, received): received is None where the multipart round trip of an arbitrary
# text (quotes, newlines, separators) is Django's business, not ours to predict.
NAMES = st.one_of(
    st.sampled_from(sorted(HOSTILE.items())),
    PLAIN.map(lambda name: (name, name)),
    st.text(min_size=1, max_size=80)
    # A name whose last part is empty, "." or "..": Django's UploadedFile refuses it.
    .filter(lambda name: os.path.basename(sendable(name)) not in {"", ".", ".."})
    .map(lambda name: (name, None)),
)
TYPES = st.sampled_from(
    ["image/png", "image/jpeg", "application/zip", "text/html", "application/octet-stream", ""]
)


def sendable(name: str) -> str:
    """`name` as a multipart header can carry it: UTF-8, no NUL."""
    return name.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def good_image(seed: int) -> bytes:
    # image_bytes repeats its colours every 256 seeds: the size tells those apart.
    return image_bytes(seed % 256, size=(64 + seed // 256, 48))


def expected_refusal(name: str, data: bytes) -> str | None:
    """How the refusal of `data` sent as `name` begins, decided without the ingest code:
    by the name's extension and by whether Pillow recognises the bytes at all. None
    where Pillow knows the header (random bytes that start like some format): then any
    stated reason will do."""
    if name.lower().endswith(".zip"):
        return "Not a readable zip file ("
    if not data:
        return "File is empty."
    try:
        PILImage.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return "Not an image we can read (allowed: JPEG, PNG"
    except Exception:  # noqa: BLE001 - a known header, a broken rest
        return None
    return None


def stored_files(media_root) -> set[str]:
    if not media_root.exists():
        return set()
    return {str(p.relative_to(media_root)) for p in media_root.rglob("*") if p.is_file()}


def files_of_rows(project) -> set[str]:
    """The files the project's image rows name: nothing else may be on disk."""
    names = set()
    for row in Image.objects.filter(project=project).values("file", "thumbnail", "preview"):
        names |= {name for name in row.values() if name}
    return names


_seeds = itertools.count(1000)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=4096), names=NAMES, content_type=TYPES)
def test_random_files_are_refused_by_name_beside_a_good_one_that_is_kept(
    api, owner, project, media_root, data, names, content_type
):
    sent, received = names
    bad = SimpleUploadedFile(sendable(sent), data, content_type=content_type or None)
    seed = next(_seeds)
    good_bytes = good_image(seed)
    before = set(Image.objects.filter(project=project).values_list("id", flat=True))

    response = api(owner).post(
        f"/api/v1/projects/{project.pk}/images/",
        {"files": [bad, SimpleUploadedFile(f"good{seed}.png", good_bytes, "image/png")]},
        format="multipart",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    *refused, kept = body["results"]
    assert (body["created"], body["duplicates"], body["rejected"]) == (1, 0, len(refused))
    # The good file: reported, stored as a row with its bytes' hash, its files on disk.
    assert (kept["name"], kept["status"]) == (f"good{seed}.png", "created")
    added = set(Image.objects.filter(project=project).values_list("id", flat=True)) - before
    assert added == {kept["image_id"]}
    row = Image.objects.get(pk=kept["image_id"])
    assert row.content_hash == hashlib.sha256(good_bytes).hexdigest()
    assert row.original_name == f"good{seed}.png"
    with row.file.open("rb") as f:
        assert f.read() == good_bytes
    # The bad file: refused by the name it arrived under, with the reason. Only a name
    # that Django's parser reduces to nothing never reaches the view (it drops the part).
    if received is not None:
        assert len(refused) == 1, body
    assert len(refused) <= 1, body
    for result in refused:
        assert result["status"] == "rejected" and result["image_id"] is None
        if received is not None:
            assert result["name"] == received
        assert "/" not in result["name"] and "\\" not in result["name"]
        reason = expected_refusal(result["name"], data)
        assert result["message"].startswith(reason or ""), (result, data[:16])
        assert result["message"].strip()
    # Nothing half-written: every file on disk belongs to a stored row.
    assert stored_files(media_root) == files_of_rows(project)


def test_a_zip_inside_a_zip_is_refused_and_its_good_neighbours_are_kept(
    api, owner, project, media_root
):
    inner = zip_bytes({"cat/a.png": image_bytes(1)})
    outer = zip_bytes({"cat/inner.zip": inner, "cat/b.png": image_bytes(2)})
    response = api(owner).post(
        f"/api/v1/projects/{project.pk}/images/",
        {
            "files": [
                SimpleUploadedFile("nested.zip", outer),
                image_upload(3, name="loose.png"),
            ]
        },
        format="multipart",
    )
    assert response.status_code == 201
    results = {r["name"]: r for r in response.json()["results"]}
    assert set(results) == {"nested.zip/cat/inner.zip", "nested.zip/cat/b.png", "loose.png"}
    refused = results["nested.zip/cat/inner.zip"]
    assert refused["status"] == "rejected" and refused["image_id"] is None
    assert refused["message"].startswith("Not an image we can read (allowed: ")
    # The inner zip is not unpacked: its picture is nowhere in the project.
    hashes = dict(
        Image.objects.filter(project=project).values_list("original_name", "content_hash")
    )
    assert hashes == {
        "nested.zip/cat/b.png": hashlib.sha256(image_bytes(2)).hexdigest(),
        "loose.png": hashlib.sha256(image_bytes(3)).hexdigest(),
    }
    assert Image.objects.get(original_name="nested.zip/cat/b.png").label.name == "cat"
    assert stored_files(media_root) == files_of_rows(project)
    assert len(stored_files(media_root)) == 4  # two images, two thumbnails


def test_an_empty_file_is_refused_alone(api, owner, project, media_root):
    """An empty file is one bad file like any other: it does not cost the batch."""
    response = api(owner).post(
        f"/api/v1/projects/{project.pk}/images/",
        {"files": [SimpleUploadedFile("empty.png", b""), image_upload(4, name="fine.png")]},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    empty, fine = response.json()["results"]
    assert (empty["name"], empty["status"], empty["message"]) == (
        "empty.png",
        "rejected",
        "File is empty.",
    )
    assert fine["status"] == "created"
    assert list(Image.objects.filter(project=project).values_list("original_name", flat=True)) == [
        "fine.png"
    ]
    assert stored_files(media_root) == files_of_rows(project)
