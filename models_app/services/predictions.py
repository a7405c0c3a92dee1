"""The model a project serves: the active version's head, fine-tuned network or tag head
(multi-label projects), loaded from its artifact (cached by name: artifacts are never
rewritten)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage

from labeling.models import Project
from models_app.ml.finetune import finetuned_from_bytes, predictor
from models_app.ml.head import (
    TrainedHead,
    head_from_bytes,
    predict_proba,
)
from models_app.ml.multilabel import TrainedTagHead, predict_tag_proba, tag_head_from_bytes
from models_app.models import ModelVersion
from models_app.services.embeddings import backbone_load, embeddings_of_images, image_sources


@lru_cache(maxsize=8)
def _head_of(artifact: str) -> TrainedHead:
    # Artifacts are never rewritten (each name is unique), so caching by name is safe.
    with default_storage.open(artifact, "rb") as f:
        return head_from_bytes(f.read())


@lru_cache(maxsize=8)
def _tag_head_of(artifact: str) -> TrainedTagHead:
    with default_storage.open(artifact, "rb") as f:
        return tag_head_from_bytes(f.read())


@lru_cache(maxsize=2)
def _network_of(artifact: str) -> Callable[[list], np.ndarray]:
    config = settings.LEARNER
    with default_storage.open(artifact, "rb") as f:
        tuned, probe = finetuned_from_bytes(f.read())
    weights = Path(config["BACKBONE_WEIGHTS"]) if config["BACKBONE_WEIGHTS"] else None
    return predictor(
        tuned, probe, backbone_name=config["BACKBONE"], weights=weights, device=config["DEVICE"]
    )


@dataclass
class ActiveModel:
    """The model a project serves predictions with, loaded from its artifact."""

    version: ModelVersion

    def proba(self, image_ids: list[int]) -> np.ndarray:
        """Calibrated class probabilities of these images (columns: version.class_ids);
        for a multi-label version, each tag's probability of being present."""
        if not image_ids:
            return np.zeros((0, len(self.version.class_ids)), np.float32)
        if self.version.is_multi_label:
            x = embeddings_of_images(image_ids=image_ids)
            head = _tag_head_of(self.version.artifact)
            return predict_tag_proba(head, x, device=str(backbone_load().device))
        if self.version.fine_tuned:
            return _network_of(self.version.artifact)(image_sources(image_ids))
        x = embeddings_of_images(image_ids=image_ids)
        head = _head_of(self.version.artifact)
        return predict_proba(head, x, device=str(backbone_load().device))

    @property
    def thresholds(self) -> list[float]:
        """A multi-label version's per-tag thresholds (present when the probability is
        at least its tag's), chosen on the validation split and stored in its metrics;
        empty for a single-label version."""
        return [float(t) for t in self.version.metrics.get("thresholds", [])]


def active_model(*, project: Project) -> ActiveModel | None:
    version = ModelVersion.objects.filter(project=project, is_active=True).first()
    if version is None or not version.artifact:
        return None
    return ActiveModel(version=version)
