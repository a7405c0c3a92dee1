"""Every bad upload is refused with its own message while the good files beside it are
kept, and a refused file leaves nothing behind (no row, no file on disk)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image as PILImage

from labeling import services
from labeling.models import Annotation, Image, LabelClass
from tests.factories import image_bytes, image_upload, upload, zip_bytes


def stored_files(media_root: Path) -> set[str]:
    return {str(p.relative_to(media_root)) for p in Path(media_root).rglob("*") if p.is_file()}


def snapshot(media_root):
    return (
        Image.objects.count(),
        Annotation.objects.count(),
        LabelClass.objects.count(),
        stored_files(media_root),
    )


def ingest(project, owner, *files):
    return services.images_ingest(project=project, files=list(files), user=owner)


def assert_batch(results, bad_name: str, message_part: str, media_root, before):
    """The good files around the bad one were stored; the bad one only cost a message."""
    by_name = {r.name: r for r in results}
    bad = by_name[bad_name]
    assert bad.status == "rejected"
    assert message_part in bad.message
    good = [r for r in results if r.name != bad_name]
    assert [r.status for r in good] == ["created", "created"]
    images_before, annotations_before, classes_before, files_before = before
    assert Image.objects.count() == images_before + 2
    assert Annotation.objects.count() == annotations_before
    assert LabelClass.objects.count() == classes_before
    new_files = stored_files(media_root) - files_before
    expected = set()
    for image in Image.objects.filter(pk__in=[r.image_id for r in good]):
        expected |= {image.file.name, image.thumbnail.name}
    assert new_files == expected


@pytest.fixture
def before(project, media_root, images):
    return snapshot(media_root)


def test_it_refuses_a_file_that_is_not_an_image(project, owner, media_root, before):
    results = ingest(
        project,
        owner,
        image_upload(100),
        upload("notes.jpg", b"these are my shopping notes, not a photo"),
        image_upload(101),
    )
    assert_batch(results, "notes.jpg", "Not an image we can read", media_root, before)


def test_it_refuses_a_truncated_image(project, owner, media_root, before):
    data = image_bytes(7, size=(200, 150), fmt="JPEG")
    results = ingest(
        project,
        owner,
        image_upload(100),
        upload("cut.jpg", data[: len(data) // 2]),
        image_upload(101),
    )
    assert_batch(results, "cut.jpg", "truncated or corrupt", media_root, before)


def test_it_refuses_a_file_over_the_size_limit(project, owner, media_root, settings, before):
    settings.LABELING = {**settings.LABELING, "MAX_IMAGE_BYTES": 30_000}
    big = image_bytes(9, size=(300, 300))  # a noisy gradient PNG well over 30 kB
    assert len(big) > 30_000
    results = ingest(project, owner, image_upload(100), upload("big.png", big), image_upload(101))
    assert_batch(results, "big.png", "over the 29.3 KB limit", media_root, before)


def test_it_refuses_a_decompression_bomb(project, owner, media_root, before):
    # 100 megapixels that compress to a few kilobytes: tiny to send, huge to decode.
    out = io.BytesIO()
    PILImage.new("1", (10_000, 10_000)).save(out, format="PNG")
    assert len(out.getvalue()) < 100_000
    results = ingest(
        project, owner, image_upload(100), upload("bomb.png", out.getvalue()), image_upload(101)
    )
    assert_batch(results, "bomb.png", "decompression bomb", media_root, before)


def test_it_refuses_zip_entries_whose_path_escapes(project, owner, media_root, before):
    archive = zip_bytes(
        {
            "cat/ok1.png": image_bytes(100),
            "../../etc/evil.png": image_bytes(102),
            "cat/ok2.png": image_bytes(101),
        }
    )
    results = ingest(project, owner, upload("pets.zip", archive))
    names = {r.name: r for r in results}
    evil = names["pets.zip/../../etc/evil.png"]
    assert evil.status == "rejected" and "escapes its folder" in evil.message
    assert [names[f"pets.zip/cat/ok{i}.png"].status for i in (1, 2)] == ["created", "created"]
    # The good entries were imported labeled, into a class made from the folder name.
    cat = LabelClass.objects.get(project=project, name="cat")
    assert Image.objects.filter(project=project, label=cat, source="import").count() == 2
    assert not list(Path(media_root).rglob("evil*"))


def test_it_refuses_an_absolute_zip_path(project, owner, before):
    archive = zip_bytes({"/abs/x.png": image_bytes(100), "dog/y.png": image_bytes(101)})
    results = ingest(project, owner, upload("abs.zip", archive))
    assert [r.status for r in results] == ["rejected", "created"]
    assert "absolute" in results[0].message


def test_it_refuses_a_zip_bomb_and_keeps_the_other_files(project, owner, media_root, before):
    bomb = zip_bytes({"cat/zeros.png": b"\0" * 30_000_000})
    assert len(bomb) < 100_000
    results = ingest(project, owner, image_upload(100), upload("bomb.zip", bomb), image_upload(101))
    assert_batch(results, "bomb.zip", "far beyond its size", media_root, before)


def test_it_refuses_a_corrupt_zip(project, owner, media_root, before):
    results = ingest(
        project,
        owner,
        image_upload(100),
        upload("broken.zip", b"PK\x03\x04 nope"),
        image_upload(101),
    )
    assert_batch(results, "broken.zip", "Not a readable zip", media_root, before)


def test_it_reports_exact_duplicates_without_storing_them_twice(project, owner, media_root, images):
    before = snapshot(media_root)
    first = images[0]
    results = ingest(project, owner, image_upload(0, name="again.png"), image_upload(100))
    assert results[0].status == "duplicate"
    assert f"image #{first.pk}" in results[0].message
    assert results[0].image_id == first.pk
    assert results[1].status == "created"
    assert Image.objects.count() == before[0] + 1


def test_duplicates_inside_one_batch_are_stored_once(project, owner, media_root):
    results = ingest(project, owner, image_upload(5, name="a.png"), image_upload(5, name="b.png"))
    assert [r.status for r in results] == ["created", "duplicate"]
    [stored] = Image.objects.filter(project=project)
    assert results[1].image_id == results[0].image_id == stored.pk
    assert stored.original_name == "a.png"
    assert stored_files(media_root) == {stored.file.name, stored.thumbnail.name}


def test_the_same_image_may_live_in_two_projects(project, other_project, owner, outsider):
    assert ingest(project, owner, image_upload(3))[0].status == "created"
    results = services.images_ingest(project=other_project, files=[image_upload(3)], user=outsider)
    assert results[0].status == "created"
    rows = Image.objects.values_list("project", "uploaded_by", "content_hash")
    digest = hashlib.sha256(image_bytes(3)).hexdigest()
    assert sorted(rows) == sorted(
        [(project.pk, owner.pk, digest), (other_project.pk, outsider.pk, digest)]
    )


def test_exif_orientation_is_applied(project, owner):
    exif = PILImage.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to view
    data = image_bytes(1, size=(120, 40), fmt="JPEG", exif=exif.tobytes())
    [result] = ingest(project, owner, upload("phone.jpg", data))
    image = Image.objects.get(pk=result.image_id)
    assert (image.width, image.height) == (40, 120)
    with image.file.open("rb") as f, PILImage.open(f) as stored:
        assert stored.size == (40, 120)
        assert stored.getexif().get(0x0112, 1) == 1
    with image.thumbnail.open("rb") as f, PILImage.open(f) as thumb:
        assert thumb.size[1] > thumb.size[0]


def test_an_upload_keeps_size_hash_and_a_thumbnail(project, owner, settings):
    [result] = ingest(project, owner, image_upload(4, size=(600, 300)))
    image = Image.objects.get(pk=result.image_id)
    assert (image.width, image.height, image.source) == (600, 300, "upload")
    assert len(image.content_hash) == 64
    with image.thumbnail.open("rb") as f, PILImage.open(f) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) == settings.LABELING["THUMBNAIL_SIZE"]


def test_a_zip_of_class_folders_imports_labeled_images(project, owner, classes):
    archive = zip_bytes(
        {
            "export/cat/1.png": image_bytes(200),
            "export/Dog/2.png": image_bytes(201),
            "export/fish/3.png": image_bytes(202),
            "export/__MACOSX/._junk": b"junk",
        }
    )
    results = ingest(project, owner, upload("export.zip", archive))
    assert [r.status for r in results] == ["created"] * 3
    labels = {Image.objects.get(pk=r.image_id).label.name for r in results}
    assert labels == {"cat", "dog", "fish"}  # "Dog" matched "dog"; "fish" was created
    assert Annotation.objects.filter(image__project=project).count() == 3


def test_a_zip_folder_naming_a_deactivated_class_is_refused(project, owner, classes):
    services.label_class_update(label_class=classes[0], is_active=False)
    results = ingest(project, owner, upload("a.zip", zip_bytes({"cat/1.png": image_bytes(300)})))
    assert results[0].status == "rejected"
    assert "deactivated" in results[0].message
    assert not Image.objects.filter(project=project).exists()


def test_an_encrypted_zip_entry_is_refused(project, owner):
    archive = bytearray(zip_bytes({"cat/1.png": image_bytes(1)}, compression=zipfile.ZIP_STORED))
    # Set the "encrypted" flag bit in the local and the central headers.
    for offset in (6, archive.rfind(b"PK\x01\x02") + 8):
        archive[offset] |= 0x1
    results = ingest(project, owner, upload("secret.zip", bytes(archive)))
    assert results[0].status == "rejected" and "encrypted" in results[0].message
