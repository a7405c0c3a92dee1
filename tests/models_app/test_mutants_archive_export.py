"""What an export writes, beyond the round trip: the files' exact form, the COCO ids, which
model files go in, the taxonomy log's order and what of it stays behind, and the version
a tag project is written as. Quick enough for every mutant of models_app/archive.py (`make
mutation`); the project and helpers are test_mutants_archive.py's.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from labeling import services as labeling_services
from labeling.models import Project, TaxonomyChange
from models_app.models import ModelVersion
from models_app.selectors import backbone_key
from tests.conftest import no_index_scans
from tests.models_app import test_mutants_archive as base
from tests.models_app.test_mutants_archive import exported

small_project = base.small_project  # the same hand-made project (a fixture)


def _zip(project) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(exported(project)))


@pytest.mark.django_db
def test_the_files_are_compressed_and_their_json_sorted_and_indented(small_project):
    archive = _zip(small_project)
    assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    # Sorted keys and one space of indent: the same project gives the same bytes.
    text = archive.read("project.json").decode()
    assert text == json.dumps(json.loads(text), indent=1, sort_keys=True)
    coco = archive.read("coco.json").decode()
    assert coco == json.dumps(json.loads(coco), indent=1)


@pytest.mark.django_db
def test_coco_counts_from_one_and_names_its_version(small_project):
    coco = json.loads(_zip(small_project).read("coco.json"))
    assert coco["info"] == {"description": small_project.name, "version": "2"}
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
    assert [i["id"] for i in coco["images"]] == list(range(1, len(coco["images"]) + 1))


@pytest.mark.django_db
def test_only_this_projects_active_model_file_goes_in(small_project, owner):
    def version(project, number, is_active, content):
        ModelVersion.objects.create(
            project=project,
            number=number,
            status=ModelVersion.Status.SUCCEEDED,
            is_active=is_active,
            trigger="api",
            backbone=backbone_key(),
            artifact=default_storage.save(f"models/x/v{number}.pt", ContentFile(content)),
        )

    version(small_project, 7, False, b"an older model of this project")
    other = labeling_services.project_create(name="Other", user=owner)
    version(other, 5, True, b"another project's model")
    archive = _zip(small_project)
    assert [n for n in archive.namelist() if n.startswith("models/")] == ["models/v2.pt"]
    document = json.loads(archive.read("project.json"))
    artifacts = {v["number"]: v["artifact"] for v in document["model_versions"]}
    assert artifacts == {1: None, 2: "models/v2.pt", 7: None}


@pytest.mark.django_db
def test_the_taxonomy_log_in_time_order_without_what_stays_behind(small_project):
    changes = list(TaxonomyChange.objects.filter(project=small_project).order_by("id"))
    first, second, third = changes[:3]
    # The first made is dated last; the second and third at one moment (ties by id),
    # the second's row rewritten last (an update moves a row to the table's end, where a
    # table scan meets it after the third's).
    TaxonomyChange.objects.filter(pk=first.pk).update(
        created_at=third.created_at + timedelta(days=1),
        details={**first.details, "merge": 3, "split": 4},
    )
    TaxonomyChange.objects.filter(pk=third.pk).update(summary=third.summary + ".")
    TaxonomyChange.objects.filter(pk=second.pk).update(created_at=third.created_at)
    no_index_scans()
    log = json.loads(_zip(small_project).read("project.json"))["taxonomy"]
    expected = [second, third, *changes[3:], first]
    assert [row["summary"] for row in log] == [
        c.summary + ("." if c == third else "") for c in expected
    ]
    # Merge and split records do not travel, so their ids stay behind.
    assert "merge" not in log[-1]["details"] and "split" not in log[-1]["details"]


@pytest.mark.django_db
def test_a_tag_project_is_written_as_a_version_3_tag_archive(owner):
    # Tag projects were refused here until archive version 3 (models_app/archive_tags.py);
    # a single-label project keeps writing the version before it.
    shop = labeling_services.project_create(name="Shop", user=owner, kind=Project.Kind.MULTI)
    document = json.loads(_zip(shop).read("project.json"))
    assert (document["version"], document["kind"]) == (3, "multi")
    assert document["project"]["name"] == "Shop"
