"""A multi-label project's zip in a real browser: downloaded from the project page,
a damaged copy of it refused by the import form (nothing made), the real one imported
(every tag state and the trained tag head with it: the copy predicts as the original)."""

from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pytest
from playwright.sync_api import expect

from labeling import services as labeling_services
from labeling.models import Image, Project, TagAnnotation
from models_app import services
from tests.e2e.test_labeling_flow import log_in
from tests.models_app.test_mutants_archive_tags import states_in_force, stored
from tests.models_app.test_tag_training import tagged_images

pytestmark = pytest.mark.e2e


def test_a_tag_project_is_downloaded_and_imported_through_the_pages(page, owner, fashion, tmp_path):
    project = labeling_services.project_create(name="Wardrobe", user=owner, kind="multi")
    tagged_images(project, owner, fashion, per_class=8, untagged=1)
    version = services.model_version_train(
        version_id=services.model_version_request(project=project, trigger="api", user=owner).pk
    )
    assert version.status == "succeeded" and version.is_multi_label, version.error

    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export (zip)").click()
    exported = tmp_path / "wardrobe.zip"
    download.value.save_as(exported)
    with zipfile.ZipFile(exported) as archive:
        document = json.loads(archive.read("project.json"))
        assert {"tags.csv", "models/v1.pt"} <= set(archive.namelist())
    assert document["kind"] == "multi"

    # A state of an image the archive does not hold: refused by name, nothing made.
    document["tags"]["states"][0]["image"] = 999
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(exported) as source, zipfile.ZipFile(damaged, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, json.dumps(document) if info.filename == "project.json" else data)
    page.get_by_role("link", name="labelloop").click()
    form = page.locator("#project-import")
    form.get_by_label("Export zip").set_input_files(damaged)
    form.get_by_role("button", name="Import").click()
    expect(
        page.get_by_text(re.compile("refers to image 999, which it does not define"))
    ).to_be_visible()
    assert Project.objects.count() == 1

    form = page.locator("#project-import")
    form.get_by_label("Export zip").set_input_files(exported)
    form.get_by_label("Title of the copy (optional)").fill("Wardrobe (copy)")
    form.get_by_role("button", name="Import").click()
    expect(page.get_by_role("heading", name="Wardrobe (copy)")).to_be_visible()
    expect(page.get_by_text("Imported Wardrobe (copy).")).to_be_visible()
    expect(page.get_by_test_id("project-kind")).to_contain_text("Multi-label")
    copy = Project.objects.get(name="Wardrobe (copy)")
    original = stored(project)
    original["project"][0]["name"] = "Wardrobe (copy)"
    assert stored(copy) == original
    assert states_in_force(copy) == states_in_force(project)
    assert TagAnnotation.objects.filter(image__project=copy).count() == 3 * 32

    # The tag head came with it: the same probabilities for the same images.
    first = list(Image.objects.filter(project=project).order_by("id")[:6])
    twins = [Image.objects.get(project=copy, content_hash=i.content_hash) for i in first]
    theirs, ours = services.active_model(project=project), services.active_model(project=copy)
    assert ours is not None and ours.thresholds == theirs.thresholds
    assert np.allclose(
        theirs.proba([i.pk for i in first]), ours.proba([i.pk for i in twins]), atol=1e-5
    )
    # And its dashboard shows the imported version's tag metrics.
    page.get_by_role("link", name="Model dashboard").click()
    expect(page.locator("#tag-metrics")).to_contain_text("footwear")
