"""The optional full fine-tuning mode: backbone unfrozen, starting from the probe."""

from __future__ import annotations

import io

import pytest
import torch
from django.core.files.storage import default_storage

from labeling.models import Image
from models_app import services
from models_app.ml.backbone import load_backbone
from models_app.models import LearnerSettings
from tests.fashion import labeled_project


@pytest.mark.django_db(transaction=True)
def test_a_fine_tuned_version_trains_the_backbone_and_scores_from_files(project, owner, fashion):
    labeled_project(
        project, owner, fashion, ["Trouser", "Bag"], per_class=10, unlabeled_per_class=3
    )
    LearnerSettings.objects.create(project=project, fine_tune=True, fine_tune_epochs=2)
    version = services.model_version_request(project=project, trigger="button", user=owner)
    services.model_version_train(version_id=version.pk)
    version.refresh_from_db()
    assert version.status == "succeeded", version.error
    assert version.fine_tuned and version.is_active
    assert 1 <= version.metrics["fine_tune_epochs"] <= 2
    assert version.metrics["test"]["accuracy"] is not None

    with default_storage.open(version.artifact, "rb") as f:
        saved = torch.load(io.BytesIO(f.read()), weights_only=True)
    pretrained = load_backbone().model.state_dict()
    tuned = {k.removeprefix("backbone."): v for k, v in saved["state"].items()}
    changed = [
        k for k, v in pretrained.items() if v.is_floating_point() and not torch.equal(v, tuned[k])
    ]
    assert len(changed) > 100, "the backbone was not trained"

    unlabeled = Image.objects.filter(project=project, label__isnull=True)
    assert unlabeled.count() == 6
    assert not unlabeled.filter(suggested_class__isnull=True).exists()
