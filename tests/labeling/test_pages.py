from __future__ import annotations

import hashlib
import re

import pytest
from django.test import Client

from labeling import services
from labeling.models import Annotation, Image, LabelClass, Membership, Project
from tests.factories import image_bytes, image_upload, upload

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def as_owner(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def as_annotator(annotator):
    client = Client()
    client.force_login(annotator)
    return client


def shown_image(response) -> int | None:
    match = re.search(rb'id="current-image"[^>]*data-image-id="(\d+)"', response.content)
    return int(match.group(1)) if match else None


def prefetched_image(response) -> int | None:
    match = re.search(rb'id="prefetch-next" data-image-id="(\d+)"', response.content)
    return int(match.group(1)) if match else None


def test_pages_need_login(client, project):
    response = client.get(f"/projects/{project.pk}/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_create_a_project_from_the_list_page(as_owner, owner):
    response = as_owner.post("/", {"name": "  Birds ", "description": "Garden birds"})
    project = Project.objects.get()
    assert (project.name, project.description, project.created_by, project.kind) == (
        "Birds",
        "Garden birds",
        owner,
        "single",
    )
    # Its creator is its one member, as owner.
    assert list(Membership.objects.filter(project=project).values_list("user", "role")) == [
        (owner.pk, "owner")
    ]
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.pk}/"
    assert "Birds" in as_owner.get(response["Location"]).content.decode()


def test_the_list_page_creates_a_multi_label_project_and_refuses_an_unknown_kind(as_owner):
    response = as_owner.post("/", {"name": "Defects", "kind": "multi"})
    project = Project.objects.get()
    assert (project.name, project.kind) == ("Defects", "multi")
    assert response.status_code == 302
    page = as_owner.get(response["Location"]).content.decode()
    assert "Multi-label: any number of tags per image" in page
    refused = as_owner.post("/", {"name": "Odd", "kind": "several"})
    assert refused.status_code == 400
    assert "Choose one of the two kinds of project." in refused.content.decode()
    assert list(Project.objects.values_list("name", flat=True)) == ["Defects"]


def test_a_project_without_a_name_is_refused_and_nothing_is_stored(as_owner):
    response = as_owner.post("/", {"name": "   ", "description": "no name"})
    assert response.status_code == 400 and "Give it a name." in response.content.decode()
    assert not Project.objects.exists() and not Membership.objects.exists()


def test_add_a_class_returns_the_class_section(as_owner, project):
    response = as_owner.post(f"/projects/{project.pk}/classes/", {"name": "cat", "key": ""}, **HTMX)
    assert response.status_code == 200
    assert b'id="class-section"' in response.content and b"<html" not in response.content
    assert LabelClass.objects.filter(project=project, name="cat", key="1").exists()
    again = as_owner.post(f"/projects/{project.pk}/classes/", {"name": "Cat"}, **HTMX)
    assert again.status_code == 400 and b"already exists" in again.content


def test_an_annotator_cannot_add_classes_or_upload(as_annotator, project):
    assert as_annotator.post(f"/projects/{project.pk}/classes/", {"name": "x"}).status_code == 403
    response = as_annotator.post(f"/projects/{project.pk}/upload/", {"files": [image_upload(1)]})
    assert response.status_code == 403
    assert not Image.objects.exists() and not LabelClass.objects.exists()


def test_upload_page_reports_each_file(as_owner, project):
    response = as_owner.post(
        f"/projects/{project.pk}/upload/",
        {"files": [image_upload(1), upload("bad.png", b"\x89PNG broken")]},
        **HTMX,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-status="created"' in html and 'data-status="rejected"' in html
    assert "Not an image we can read" in html
    stored = Image.objects.filter(project=project).values_list("original_name", "content_hash")
    assert list(stored) == [("img1.png", hashlib.sha256(image_bytes(1)).hexdigest())]


def test_upload_without_files_is_a_clear_400(as_owner, project):
    response = as_owner.post(f"/projects/{project.pk}/upload/", {})
    assert response.status_code == 400 and b"Choose one or more" in response.content


def test_labeling_flow_through_the_page(as_annotator, annotator, project, images, classes):
    # The queue serves images in hash-draw order, not upload order.
    page = as_annotator.get(f"/projects/{project.pk}/label/")
    first, second = shown_image(page), prefetched_image(page)
    assert {first, second} <= {i.pk for i in images} and first != second
    assert b'data-key="1"' in page.content

    labeled = as_annotator.post(
        f"/projects/{project.pk}/label/{first}/", {"label_class": classes[1].pk}, **HTMX
    )
    assert b"<html" not in labeled.content
    assert Image.objects.get(pk=first).label == classes[1]
    assert Annotation.objects.get(image_id=first).annotator == annotator
    assert shown_image(labeled) == second  # the prefetched image is next
    third = prefetched_image(labeled)
    assert third not in (None, first, second)
    assert b'data-testid="count-labeled">1<' in labeled.content

    skipped = as_annotator.post(f"/projects/{project.pk}/label/{second}/skip/", **HTMX)
    assert shown_image(skipped) == third
    assert second not in (shown_image(skipped), prefetched_image(skipped))

    undone = as_annotator.post(f"/projects/{project.pk}/label/undo/", **HTMX)
    assert shown_image(undone) == first  # back to the image whose label was undone
    assert b'data-testid="count-labeled">0<' in undone.content
    assert Annotation.objects.filter(image_id=first).count() == 2
    assert Image.objects.get(pk=first).label is None
    assert not Annotation.objects.filter(image_id=second).exists()  # a skip labels nothing


def test_labeling_with_a_bad_class_shows_a_message(as_annotator, project, images, classes):
    response = as_annotator.post(
        f"/projects/{project.pk}/label/{images[0].pk}/", {"label_class": "nope"}, **HTMX
    )
    assert b"Choose a class" in response.content
    assert not Annotation.objects.exists()


def test_when_only_skipped_images_are_left_they_come_back(
    as_annotator, project, images, classes, annotator
):
    services.annotations_bulk_create(
        project=project,
        image_ids=[i.pk for i in images[1:]],
        label_class=classes[0],
        annotator=annotator,
    )
    skipped = as_annotator.post(f"/projects/{project.pk}/label/{images[0].pk}/skip/", **HTMX)
    assert shown_image(skipped) == images[0].pk
    assert b"Only images you skipped are left" in skipped.content


def test_an_empty_queue_says_so(as_annotator, project, classes):
    assert b'id="queue-empty"' in as_annotator.get(f"/projects/{project.pk}/label/").content


def test_grid_filters_and_assigns(as_annotator, annotator, project, images, classes):
    grid = as_annotator.get(f"/projects/{project.pk}/images/?label=unlabeled")
    assert grid.content.count(b'class="tile"') == 6
    response = as_annotator.post(
        f"/projects/{project.pk}/images/assign/?label=unlabeled",
        {"images": [images[0].pk, images[3].pk], "label_class": classes[2].pk},
        **HTMX,
    )
    assert response.status_code == 200
    assert response.content.count(b'class="tile"') == 4
    assert b"Labeled 2 image(s) bird" in response.content
    bird = as_annotator.get(f"/projects/{project.pk}/images/?label={classes[2].pk}")
    assert bird.content.count(b'class="tile"') == 2
    labeled = Image.objects.filter(project=project, label__isnull=False)
    assert dict(labeled.values_list("id", "label")) == {
        images[0].pk: classes[2].pk,
        images[3].pk: classes[2].pk,
    }
    assert set(Annotation.objects.values_list("image", "label_class", "annotator")) == {
        (images[0].pk, classes[2].pk, annotator.pk),
        (images[3].pk, classes[2].pk, annotator.pk),
    }


def test_grid_assign_refuses_bad_input(as_annotator, project, images, classes):
    url = f"/projects/{project.pk}/images/assign/"
    none_selected = as_annotator.post(url, {"label_class": classes[0].pk}, **HTMX)
    assert (
        none_selected.status_code == 400 and b"Select at least one image" in none_selected.content
    )
    garbage = as_annotator.post(url, {"images": ["x"], "label_class": classes[0].pk}, **HTMX)
    assert garbage.status_code == 400
    assert not Annotation.objects.exists()


def test_htmx_posts_need_the_csrf_token(annotator, project, images, classes):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(annotator)
    response = strict.post(
        f"/projects/{project.pk}/label/{images[0].pk}/", {"label_class": classes[0].pk}, **HTMX
    )
    assert response.status_code == 403
    assert not Annotation.objects.exists()
    page = strict.get(f"/projects/{project.pk}/label/")
    token = re.search(rb'"X-CSRFToken": "([^"]+)"', page.content).group(1).decode()
    ok = strict.post(
        f"/projects/{project.pk}/label/{images[0].pk}/",
        {"label_class": classes[0].pk},
        HTTP_X_CSRFTOKEN=token,
        **HTMX,
    )
    assert ok.status_code == 200 and Annotation.objects.count() == 1


def test_media_is_served_to_members_only(as_annotator, client, outsider, project, images):
    url = f"/projects/{project.pk}/images/{images[0].pk}/file"
    response = as_annotator.get(url)
    assert response.status_code == 200 and response["Cache-Control"].startswith("private")
    client.force_login(outsider)
    assert client.get(url).status_code == 404


def test_the_owner_adds_a_member_on_the_page(as_owner, project, outsider, annotator, as_annotator):
    url = f"/projects/{project.pk}/members/"
    before = set(Membership.objects.values_list("project", "user", "role"))
    denied = as_annotator.post(url, {"username": outsider.username, "role": "owner"})
    assert denied.status_code == 403
    assert set(Membership.objects.values_list("project", "user", "role")) == before

    response = as_owner.post(url, {"username": outsider.username, "role": "reviewer"}, **HTMX)
    assert response.status_code == 200 and b"oscar-outsider" in response.content
    assert set(Membership.objects.values_list("project", "user", "role")) == before | {
        (project.pk, outsider.pk, "reviewer")
    }

    # The same form changes a member's role.
    changed = as_owner.post(url, {"username": annotator.username, "role": "reviewer"}, **HTMX)
    assert changed.status_code == 200
    assert Membership.objects.get(project=project, user=annotator).role == "reviewer"


def test_a_member_the_page_cannot_add_is_refused_and_not_stored(as_owner, project):
    url = f"/projects/{project.pk}/members/"
    before = set(Membership.objects.values_list("project", "user", "role"))
    ghost = as_owner.post(url, {"username": "ghost", "role": "annotator"}, **HTMX)
    assert ghost.status_code == 400 and "No user named &#x27;ghost&#x27;." in ghost.content.decode()
    bad_role = as_owner.post(url, {"username": "oscar-outsider", "role": "boss"}, **HTMX)
    assert bad_role.status_code == 400
    assert "Choose one of the roles in the list." in bad_role.content.decode()
    assert set(Membership.objects.values_list("project", "user", "role")) == before


def test_the_new_class_form_offers_the_next_palette_colour(as_owner, project, classes):
    page = as_owner.get(f"/projects/{project.pk}/").content.decode()
    # Three classes exist: the fourth colour of the palette, never a colour input's black.
    assert 'type="color" name="color" value="#d62728"' in page
    assert 'value="#000000"' not in page


def test_the_member_form_starts_at_annotator(as_owner, project):
    page = as_owner.get(f"/projects/{project.pk}/").content.decode()
    assert '<option value="annotator" selected>' in page


def test_a_refused_member_change_returns_the_form_with_the_message(as_owner, project, owner):
    response = as_owner.post(
        f"/projects/{project.pk}/members/",
        {"username": owner.username, "role": "reviewer"},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 400 and "<html" not in html
    assert "A project must keep at least one owner." in html
    assert f'value="{owner.username}"' in html
    assert '<option value="reviewer" selected>' in html
    assert Membership.objects.get(project=project, user=owner).role == "owner"


def test_removing_a_member_on_the_page(as_owner, project, owner, annotator):

    only_owner = Membership.objects.get(project=project, user=owner)
    refused = as_owner.post(f"/projects/{project.pk}/members/{only_owner.pk}/remove/", **HTMX)
    assert refused.status_code == 400
    assert b"A project must keep at least one owner." in refused.content
    only_owner.refresh_from_db()
    assert only_owner.role == "owner"
    member = Membership.objects.get(project=project, user=annotator)
    removed = as_owner.post(f"/projects/{project.pk}/members/{member.pk}/remove/", **HTMX)
    assert removed.status_code == 200 and b"anna-annotator" not in removed.content
    assert not Membership.objects.filter(pk=member.pk).exists()


def test_the_grid_offers_only_classes_one_may_label_with(as_owner, project, images, classes):
    cat, dog, _ = classes
    services.label_class_update(label_class=dog, parent=cat)
    html = as_owner.get(f"/projects/{project.pk}/images/").content.decode()
    assign = html[
        html.index('id="assign-class"') : html.index("</select>", html.index("assign-class"))
    ]
    assert f'value="{dog.pk}"' in assign and f'value="{cat.pk}"' not in assign


def test_a_refused_grid_assign_keeps_the_selection(as_owner, project, images, classes):
    response = as_owner.post(
        f"/projects/{project.pk}/images/assign/",
        {"images": [images[0].pk], "label_class": classes[0].pk},
        **HTMX,
    )
    assert response.status_code == 200
    services.label_class_update(label_class=classes[1], is_active=False)
    refused = as_owner.post(
        f"/projects/{project.pk}/images/assign/",
        {"images": [images[2].pk], "label_class": classes[1].pk},
        **HTMX,
    )
    html = refused.content.decode()
    assert refused.status_code == 400 and "Class &#x27;dog&#x27; is deactivated." in html
    assert f'value="{images[2].pk}" checked' in html
    assert f'value="{images[3].pk}" checked' not in html
    images[2].refresh_from_db()
    assert images[2].label is None and not Annotation.objects.filter(image=images[2]).exists()


def test_a_refused_class_change_keeps_what_was_typed(as_owner, project, classes):
    cat, dog, _ = classes
    response = as_owner.post(
        f"/projects/{project.pk}/taxonomy/{dog.pk}/",
        {"name": "Cat", "color": "#123456", "key": "7", "order": "4", "parent": ""},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 400 and 'id="classes-content"' in html and "<html" not in html
    assert "A class named &#x27;Cat&#x27; already exists." in html
    assert 'value="Cat"' in html and 'value="#123456"' in html and 'value="7"' in html
    # Plain sentences: no field names in front of the messages.
    bad = as_owner.post(
        f"/projects/{project.pk}/taxonomy/{dog.pk}/",
        {"name": "dog", "color": "red", "key": "!!", "order": "-1"},
    )
    text = bad.content.decode()
    assert bad.status_code == 400
    assert "Choose a colour such as #1f77b4." in text and "single letter or digit" in text
    assert "color:" not in text and "key:" not in text
    dog.refresh_from_db()
    assert (dog.name, dog.key, dog.is_active) == ("dog", "2", True)


def test_the_history_names_classes_instead_of_ids(as_owner, project, classes, owner):
    cat, dog, _ = classes
    services.label_class_update(label_class=dog, parent=cat, actor=owner)
    services.label_class_update(label_class=dog, parent=None, is_active=False, actor=owner)
    html = as_owner.get(f"/projects/{project.pk}/taxonomy/history/").content.decode()
    assert "Class &#x27;dog&#x27;: parent none → &#x27;cat&#x27;." in html
    assert "Class &#x27;dog&#x27;: active yes → no, parent &#x27;cat&#x27; → none." in html
    assert "None" not in html and f"→ {cat.pk}" not in html


def test_error_pages_say_why_and_lead_back(as_annotator, project):
    forbidden = as_annotator.get(f"/projects/{project.pk}/review/")
    html = forbidden.content.decode()
    assert forbidden.status_code == 403
    assert "Your role (annotator) may not do this." in html and 'href="/"' in html
    missing = as_annotator.get("/projects/987654/")
    assert missing.status_code == 404 and "Back to your projects" in missing.content.decode()
