"""The ways a retrain is asked for (button, admin, API, new labels) and the pages showing it."""

from __future__ import annotations

import threading
from html.parser import HTMLParser

import pytest
from django.db import connections
from django.test import Client

from labeling import services as labeling_services
from models_app import selectors, services, tasks
from models_app.models import Embedding, LearnerSettings, ModelVersion
from tests.conftest import add_images, training_labels
from tests.factories import UserFactory
from tests.fashion import labeled_project

HTMX = {"HTTP_HX_REQUEST": "true"}


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_retrain_button_queues_a_version_and_shows_progress(trainable, project, owner):
    response = logged_in(owner).post(f"/projects/{project.pk}/model/retrain/", **HTMX)
    assert response.status_code == 200
    version = ModelVersion.objects.get(project=project)
    assert (version.trigger, version.status, version.requested_by) == ("button", "queued", owner)
    html = response.content.decode()
    assert "Training v1: queued" in html
    assert 'hx-trigger="every 2s"' in html  # the panel polls until the run is over


def test_a_retrain_that_cannot_succeed_is_refused_at_once_with_the_reason(
    project, owner, reviewer, classes
):
    """No classes, or labels of one class only: refused now, not failed in the worker
    minutes later; nothing is queued."""
    empty = labeling_services.project_create(name="Empty", user=owner)
    response = logged_in(owner).post(f"/projects/{empty.pk}/model/retrain/", **HTMX)
    assert response.status_code == 400
    assert "no classes" in response.content.decode()
    training_labels(project, owner, classes[:1])
    response = logged_in(reviewer).post(f"/api/v1/projects/{project.pk}/model/retrain/")
    assert response.status_code == 400
    assert "at least two classes" in str(response.json()) and "cat: 1" in str(response.json())
    admin = UserFactory(username="support", is_staff=True, is_superuser=True)
    response = logged_in(admin).post(
        "/admin/labeling/project/",
        {"action": "retrain", "_selected_action": [project.pk, empty.pk]},
        follow=True,
    )
    assert "at least two classes" in response.content.decode()
    assert not ModelVersion.objects.exists()
    # Automatic retraining skips such a project instead of failing a version a minute.
    LearnerSettings.objects.create(project=project, retrain_every=1)
    assert selectors.projects_due_for_training() == [project]
    assert tasks.retrain_due_projects() == 0
    assert not ModelVersion.objects.exists()


def test_an_annotator_cannot_retrain(project, annotator):
    assert logged_in(annotator).post(f"/projects/{project.pk}/model/retrain/").status_code == 403
    api = logged_in(annotator)
    assert api.post(f"/api/v1/projects/{project.pk}/model/retrain/").status_code == 403
    assert not ModelVersion.objects.exists()


def test_outsiders_see_nothing_of_the_model(project, outsider):
    client = logged_in(outsider)
    for url in [
        f"/projects/{project.pk}/model/",
        f"/projects/{project.pk}/model/status/",
        f"/api/v1/projects/{project.pk}/model/versions/",
    ]:
        assert client.get(url).status_code == 404, url
    assert client.post(f"/projects/{project.pk}/model/retrain/").status_code == 404
    assert client.post(f"/api/v1/projects/{project.pk}/model/retrain/").status_code == 404


def test_the_api_queues_and_lists_versions(trainable, project, reviewer):
    client = logged_in(reviewer)
    queued = client.post(f"/api/v1/projects/{project.pk}/model/retrain/")
    assert queued.status_code == 202 and queued.json()["trigger"] == "api"
    again = client.post(f"/api/v1/projects/{project.pk}/model/retrain/")
    assert again.json()["id"] == queued.json()["id"]
    listed = client.get(f"/api/v1/projects/{project.pk}/model/versions/").json()
    assert [v["number"] for v in listed] == [1]


def test_the_admin_action_queues_a_retrain(trainable, project, db):
    admin = UserFactory(username="support", is_staff=True, is_superuser=True)
    response = logged_in(admin).post(
        "/admin/labeling/project/", {"action": "retrain", "_selected_action": [project.pk]}
    )
    assert response.status_code == 302
    assert ModelVersion.objects.get(project=project).trigger == "admin"


@pytest.mark.django_db(transaction=True)
def test_the_dashboard_shows_metrics_charts_and_versions(project, owner, fashion):
    labeled_project(project, owner, fashion, ["Trouser", "Bag", "Sneaker"], per_class=10)
    for strategy in ("random", "margin"):
        services.learner_settings_update(project=project, strategy=strategy)
        version = services.model_version_request(project=project, trigger="button", user=owner)
        services.model_version_train(version_id=version.pk)
    page = logged_in(owner).get(f"/projects/{project.pk}/model/").content.decode()
    assert "Active: v2" in page
    assert '<section class="card chart" id="confusion">' in page and "<svg" in page
    start = page.index('id="learning-curve"')
    curve = page[start : page.index("</section>", start)]
    # One line per strategy that chose labels, named in the legend.
    assert "Random" in curve and "Smallest margin" in curve
    for name in ("Trouser", "Bag", "Sneaker"):
        assert f"<td>{name}</td>" in page


def test_retraining_is_due_after_n_new_labels(project, owner, classes):
    LearnerSettings.objects.create(project=project, retrain_every=3)
    images = add_images(project, owner, 6)
    for image in images[:2]:
        labeling_services.annotation_create(image=image, label_class=classes[0], annotator=owner)
    assert selectors.projects_due_for_training() == []
    labeling_services.annotation_create(image=images[2], label_class=classes[1], annotator=owner)
    assert selectors.projects_due_for_training() == [project]
    version = services.model_version_request(project=project, trigger="auto")
    assert selectors.projects_due_for_training() == []  # one is queued already
    ModelVersion.objects.filter(pk=version.pk).update(status="failed")
    assert selectors.projects_due_for_training() == []  # no new labels since it was asked
    for image in images[3:]:
        labeling_services.annotation_create(image=image, label_class=classes[2], annotator=owner)
    assert selectors.projects_due_for_training() == [project]


@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatchers_never_claim_an_image_twice(project, owner):
    add_images(project, owner, 40)
    claims: list[list[int]] = []
    barrier = threading.Barrier(6)

    def claim():
        barrier.wait()
        try:
            while ids := services.embeddings_claim(limit=3, project=project):
                claims.append(ids)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [pk for ids in claims for pk in ids]
    assert len(claimed) == len(set(claimed)) == 40
    assert Embedding.objects.filter(image__project=project).count() == 40


class RenderedForm(HTMLParser):
    """The form `form_id` of a page as a browser sees it: its action, the value each
    field would submit as rendered (a checkbox only when checked, a select its selected
    option), and the options each select offers."""

    def __init__(self, page: str, form_id: str):
        super().__init__()
        self.form_id, self.inside, self.select = form_id, False, None
        self.action, self.fields, self.options, self.checkboxes = None, {}, {}, set()
        self.feed(page)
        assert self.action is not None, f"no form {form_id!r} on the page"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == self.form_id:
            self.inside, self.action = True, attrs.get("action")
        if not self.inside:
            return
        name = attrs.get("name")
        if tag == "input" and name and name != "csrfmiddlewaretoken":
            if attrs.get("type") == "checkbox":
                self.checkboxes.add(name)
                if "checked" in attrs:
                    self.fields[name] = attrs.get("value") or "on"
            else:
                self.fields[name] = attrs.get("value") or ""
        elif tag == "select" and name:
            self.select = name
            self.options[name] = []
        elif tag == "option" and self.select:
            self.options[self.select].append(attrs["value"])
            if "selected" in attrs or self.select not in self.fields:
                self.fields[self.select] = attrs["value"]
        elif tag == "textarea" and name:
            self.fields[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None
        if tag == "form":
            self.inside = False

    @property
    def names(self) -> set[str]:
        return set(self.fields) | self.checkboxes

    def submit(self, **changes) -> dict:
        """What the browser posts after the user changes these fields: only fields the
        form has, a select only to one of its options, a checkbox ticked (True) or not."""
        assert set(changes) <= self.names, set(changes) - self.names
        data = dict(self.fields)
        for name, value in changes.items():
            if name in self.checkboxes:
                data.pop(name, None)
                if value:
                    data[name] = "on"
            else:
                if name in self.options:
                    assert value in self.options[name], (name, value, self.options[name])
                data[name] = value
        return data


def settings_form(client: Client, project) -> RenderedForm:
    page = client.get(f"/projects/{project.pk}/model/")
    assert page.status_code == 200
    return RenderedForm(page.content.decode(), "learner-settings")


def stored_settings(project) -> tuple:
    learner = services.learner_settings(project=project)  # the defaults until saved
    return (
        learner.strategy,
        learner.retrain_every,
        learner.head_kind,
        learner.fine_tune,
        learner.fine_tune_epochs,
    )


def test_the_owner_changes_training_settings(trainable, project, owner, reviewer):
    owner_client = logged_in(owner)
    form = settings_form(owner_client, project)
    assert form.action == f"/projects/{project.pk}/model/settings/"
    # The page shows what is stored (the defaults, so far).
    assert form.fields == {
        "strategy": "auto",
        "retrain_every": "50",
        "head_kind": "linear",
        "fine_tune_epochs": "5",
    }
    assert form.checkboxes == {"fine_tune"}
    changed = form.submit(
        strategy="margin", retrain_every="10", head_kind="mlp", fine_tune=True, fine_tune_epochs="3"
    )
    assert logged_in(reviewer).post(form.action, changed).status_code == 403
    assert stored_settings(project) == ("auto", 50, "linear", False, 5)
    assert owner_client.post(form.action, changed).status_code == 302
    assert stored_settings(project) == ("margin", 10, "mlp", True, 3)
    # The page now shows them, and unticking the box (the browser then sends no field
    # for it) turns fine-tuning off again, the rest kept.
    form = settings_form(owner_client, project)
    assert form.fields == {
        "strategy": "margin",
        "retrain_every": "10",
        "head_kind": "mlp",
        "fine_tune": "on",
        "fine_tune_epochs": "3",
    }
    assert owner_client.post(form.action, form.submit(fine_tune=False)).status_code == 302
    assert stored_settings(project) == ("margin", 10, "mlp", False, 3)
    assert owner_client.post(form.action, form.submit()).status_code == 302
    assert stored_settings(project) == ("margin", 10, "mlp", True, 3)

    # A forged post with the same fields but values no option offers is refused.
    bad = {**form.submit(), "fine_tune_epochs": "0", "head_kind": "svm", "strategy": "psychic"}
    response = owner_client.post(form.action, bad)
    assert response.status_code == 400
    assert b"psychic is not one of the available choices" in response.content
    assert stored_settings(project) == ("margin", 10, "mlp", True, 3)
    version = services.model_version_request(project=project, trigger="button", user=owner)
    assert (version.strategy, version.head_kind, version.fine_tuned) == ("margin", "mlp", True)


def test_a_refused_settings_form_is_shown_on_the_whole_dashboard(trainable, project, owner):
    version = services.model_version_request(project=project, trigger="button", user=owner)
    ModelVersion.objects.filter(pk=version.pk).update(status="succeeded", is_active=True)
    client = logged_in(owner)
    form = settings_form(client, project)
    bad = client.post(form.action, form.submit(strategy="margin", fine_tune_epochs="1000"))
    assert bad.status_code == 400
    page = bad.content.decode()
    assert "less than or equal to 100" in page
    # The refused form keeps what was typed; the versions table and the model card
    # stay as the dashboard shows them.
    shown = RenderedForm(page, "learner-settings")
    assert shown.fields["fine_tune_epochs"] == "1000" and shown.fields["strategy"] == "margin"
    assert "v1 <strong>(active)</strong>" in page
    assert "No versions yet." not in page
    assert stored_settings(project) == ("auto", 50, "linear", False, 5)
