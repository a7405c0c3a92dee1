"""Findings of a new user's walk through tag projects, each with the test that failed
before its fix: a two-class headline macro-F1 beside a table of 0.00 when the test split
holds one class; the review summary's "0 flagged" beside its disputed images; "class"
where a tag project means a tag; retired tags offered as filters."""

from __future__ import annotations

import re

import numpy as np
import pytest
from django.test import Client

from feedback.models import ReviewScan, TagLabelScore, TagSuspect
from labeling import services as labeling_services
from labeling.models import Image, Project
from models_app.ml.metrics import evaluate
from models_app.models import ModelVersion
from tests.conftest import add_images
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def client_of(user) -> Client:
    client = Client()
    client.login(username=user.username, password=PASSWORD)
    return client


def test_macro_f1_says_it_is_over_the_classes_the_test_split_holds(project, owner):
    bag = labeling_services.label_class_create(project=project, name="Bag")
    shoe = labeling_services.label_class_create(project=project, name="Shoe")
    # Four bags in the test split, one taken for a shoe: F1 of bags 2*3/(2*3+1) = 6/7.
    proba = np.array([[0.9, 0.1]] * 3 + [[0.2, 0.8]])
    test = evaluate(np.zeros(4, dtype=int), proba, 2)
    assert test["macro_f1"] == pytest.approx(6 / 7)
    ModelVersion.objects.create(
        project=project,
        number=1,
        status="succeeded",
        is_active=True,
        trigger="api",
        backbone="x",
        class_ids=[bag.pk, shoe.pk],
        metrics={"test": test, "temperature": 1.0},
    )
    page = client_of(owner).get(f"/projects/{project.pk}/model/").content.decode()
    assert "macro-F1 0.857" in page
    assert "(over the classes the test split holds; it has no Shoe)" in page
    # The shoe row has no recall or F1 to show (none in the split), not 0.00.
    shoe_row = re.search(r"<tr><td>Shoe</td>(.*?)</tr>", page).group(1)
    assert shoe_row == "<td>0.00</td><td>–</td><td>–</td><td>0</td>"
    bag_row = re.search(r"<tr><td>Bag</td>(.*?)</tr>", page).group(1)
    assert bag_row == "<td>1.00</td><td>0.75</td><td>0.86</td><td>4</td>"


def test_with_every_class_in_the_split_macro_f1_says_nothing_more(project, owner):
    bag = labeling_services.label_class_create(project=project, name="Bag")
    shoe = labeling_services.label_class_create(project=project, name="Shoe")
    test = evaluate(np.array([0, 1]), np.array([[0.9, 0.1], [0.3, 0.7]]), 2)
    ModelVersion.objects.create(
        project=project,
        number=1,
        status="succeeded",
        is_active=True,
        trigger="api",
        backbone="x",
        class_ids=[bag.pk, shoe.pk],
        metrics={"test": test, "temperature": 1.0},
    )
    page = client_of(owner).get(f"/projects/{project.pk}/model/").content.decode()
    assert "macro-F1 1.000" in page and "macro-f1-over" not in page


@pytest.fixture
def shop(owner):
    project = labeling_services.project_create(name="Shop", user=owner, kind=Project.Kind.MULTI)
    tags = [
        labeling_services.label_class_create(project=project, name=n)
        for n in ("striped", "leather")
    ]
    retired = labeling_services.label_class_create(project=project, name="retired-tag")
    labeling_services.label_class_update(label_class=retired, is_active=False)
    return project, tags


def test_the_tag_review_summary_counts_the_disputed_images_it_lists(shop, owner):
    project, (striped, _) = shop
    images = add_images(project, owner, 3)
    for image in images:
        labeling_services.image_tags_set(image=image, present=[striped.pk], annotator=owner)
    scan = ReviewScan.objects.create(project=project, status="succeeded", labeled=3, issues=0)
    for image in images[:2]:
        score = TagLabelScore.objects.create(image=image, scan=scan, quality=0.2, is_issue=False)
        TagSuspect.objects.create(
            score=score, image=image, tag=striped, state="present", probability=0.1, quality=0.1
        )
    page = client_of(owner).get(f"/projects/{project.pk}/review/").content.decode()
    assert "Tags the model disputes (2)" in page
    summary = " ".join(re.search(r"Last scan:(.*?)</p>", page, re.S).group(1).split())
    assert "3 tagged images scored out of sample: 2 with a tag the model disputes" in summary
    assert "of all scored 0 flagged as label issues by confident learning" in summary
    assert "0 flagged by confident learning," not in summary


def test_tag_project_pages_say_tag_and_offer_no_retired_tag(shop, owner):
    project, (striped, leather) = shop
    client = client_of(owner)
    detail = client.get(f"/projects/{project.pk}/").content.decode()
    assert ">Add tag</button>" in detail and ">Add class</button>" not in detail
    assert ">Tags</a>" in detail and ">Classes</a>" not in detail
    classes = client.get(f"/projects/{project.pk}/taxonomy/").content.decode()
    for heading in ("<h2>Tags</h2>", "<h2>Merge tags</h2>", "<h2>Split a tag</h2>"):
        assert heading in classes
    assert "<h2>Merge classes</h2>" not in classes and "<label>Tag <select" in classes
    dashboard = client.get(f"/projects/{project.pk}/model/").content.decode()
    assert "Advice on the classes" not in dashboard

    add_images(project, owner, 1)
    Image.objects.filter(project=project).update(suggested_class=striped)
    grid = client.get(f"/projects/{project.pk}/images/").content.decode()
    assert '<option value="">any tag</option>' in grid and "any class" not in grid
    assert "a class key assigns" not in grid
    # Filters offer the active tags only: as a link and as the model's suggestion.
    assert "retired-tag" not in grid
    for tag in (striped, leather):
        assert f'?label={tag.pk}"' in grid and f'<option value="{tag.pk}"' in grid


def test_a_single_label_project_keeps_its_class_words_and_retired_classes(project, owner):
    cat = labeling_services.label_class_create(project=project, name="cat")
    old = labeling_services.label_class_create(project=project, name="old-class")
    labeling_services.label_class_update(label_class=old, is_active=False)
    client = client_of(owner)
    detail = client.get(f"/projects/{project.pk}/").content.decode()
    assert ">Add class</button>" in detail and ">Classes</a>" in detail
    grid = client.get(f"/projects/{project.pk}/images/").content.decode()
    assert '<option value="">any class</option>' in grid and "old-class" in grid
    assert f'?label={cat.pk}"' in grid
