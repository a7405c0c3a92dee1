"""The learner's side of class evolution: split suggestions from embeddings, retraining
after a merge, metrics one level up the hierarchy, and the dashboard's advice."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from labeling import services as labeling_services
from labeling.models import Image
from models_app import selectors, services
from tests.fashion import labeled_project

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_split_suggests_from_a_few_seeds_and_recovers_the_classes(project, owner, fashion):
    classes = labeled_project(project, owner, fashion, ["Trouser", "Bag"], per_class=25)
    truth = dict(Image.objects.filter(project=project).values_list("id", "label__name"))
    services.embeddings_ensure(project=project)
    merge = labeling_services.label_class_merge(
        project=project, classes=list(classes.values()), name="Things", actor=owner
    )
    split = labeling_services.label_class_split_start(
        label_class=merge.target, names=["Trouser again", "Bag again"], actor=owner
    )
    trouser, bag = split.targets.order_by("id")
    with pytest.raises(ValidationError, match="at least one image for each new class"):
        services.split_suggest(split=split)
    for target, name in ((trouser, "Trouser"), (bag, "Bag")):
        seeds = [pk for pk, n in sorted(truth.items()) if n == name][:3]
        labeling_services.split_assign(split=split, image_ids=seeds, label_class=target)
    assert services.split_suggest(split=split) == 44
    labeling_services.split_accept(split=split)
    labeling_services.label_class_split_finish(split=split, actor=owner)
    final = dict(Image.objects.filter(project=project).values_list("id", "label__name"))
    recovered = sum(final[pk] == f"{truth[pk]} again" for pk in truth) / len(truth)
    assert recovered >= 0.9, recovered


def test_a_merge_makes_the_project_due_for_retraining_and_hierarchy_metrics_appear(
    project, owner, fashion
):
    classes = labeled_project(project, owner, fashion, ["Trouser", "Bag", "Sneaker"], per_class=15)
    wear = labeling_services.label_class_create(project=project, name="Wear", actor=owner)
    for name in ("Trouser", "Sneaker"):
        labeling_services.label_class_update(label_class=classes[name], parent=wear, actor=owner)
    first = services.model_version_train(
        version_id=services.model_version_request(project=project, trigger="api").pk
    )
    assert first.status == "succeeded", first.error
    parents = first.metrics["test_parents"]
    assert parents["classes"] == [wear.pk, classes["Bag"].pk]
    assert parents["n"] == first.metrics["test"]["n"]
    assert parents["accuracy"] >= first.metrics["test"]["accuracy"]
    page = Client()
    page.force_login(owner)
    assert "Wear" in page.get(f"/projects/{project.pk}/model/").content.decode()

    assert project not in selectors.projects_due_for_training()
    services.learner_settings_update(project=project, retrain_every=0)  # automatic off
    labeling_services.label_class_merge(
        project=project, classes=[classes["Bag"], classes["Sneaker"]], name="Bag", actor=owner
    )
    assert project in selectors.projects_due_for_training()


def test_the_dashboard_advises_merges_and_more_examples(project, owner, fashion):
    assert selectors.labels_needed(2) == 20
    assert selectors.labels_needed(20) == 50 and selectors.labels_needed(40) == 50
    assert 20 < selectors.labels_needed(10) < 50
    labeled_project(project, owner, fashion, ["T-shirt/top", "Shirt", "Bag"], per_class=12)
    version = services.model_version_train(
        version_id=services.model_version_request(project=project, trigger="api").pk
    )
    hints = selectors.merge_hints(version=version, min_rate=0.0)
    assert {hints[0].first, hints[0].second} == {"T-shirt/top", "Shirt"}
    thin = {c.name for c in selectors.thin_classes(project=project)}
    assert thin == {"T-shirt/top", "Shirt", "Bag"}  # 12 < 25 needed for three classes
    client = Client()
    client.force_login(owner)
    page = client.get(f"/projects/{project.pk}/model/").content.decode()
    assert "needs more examples" in page
