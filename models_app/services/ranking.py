"""The queue's order: every unlabeled image's priority from the project's query strategy,
and with a model its suggested class and confidence."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from labeling.models import Image, Project
from labeling.selectors import project_counts, suggestion_rejections
from labeling.services import Suggestion, image_suggestions_write
from models_app.ml.head import (
    predict_proba,
)
from models_app.ml.strategies import rank
from models_app.models import ModelVersion
from models_app.services.embeddings import ProjectEmbeddings, backbone_load, project_embeddings
from models_app.services.options import learner_settings
from models_app.services.predictions import _head_of
from models_app.services.seeds import labels_seed
from models_app.services.tag_versions import tag_queue_rerank


def queue_rank(
    *,
    project: Project,
    embeddings: ProjectEmbeddings | None = None,
    proba_for: Callable[[list[int]], np.ndarray] | None = None,
    class_ids: list[int] | None = None,
    seed: int | None = None,
    version_id: int | None = None,
) -> int:
    """Rank the unlabeled, embedded images of `project` with its query strategy and
    store each one's queue priority, and, given a model (`proba_for` and the classes
    its outputs are, `version_id` the version it is), its suggested class and
    confidence. A class rejected for an image on the bulk page is evidence: its
    probability is set to zero and the rest renormalised before ranking and suggesting.
    Without a model this is the cold start: typical, diverse images first (or random,
    as the strategy says). Returns how many images were ranked."""
    embeddings = embeddings or project_embeddings(project=project)
    learner = learner_settings(project=project)
    labeled_ids = set(
        Image.objects.filter(~Image.UNLABELED, project=project).values_list("id", flat=True)
    )
    labeled = np.fromiter((pk in labeled_ids for pk in embeddings.ids.tolist()), bool)
    pool_ids = embeddings.ids[~labeled].tolist()
    if not pool_ids:
        return 0
    proba = class_counts = None
    if proba_for is not None:
        proba = np.zeros((len(labeled), len(class_ids)), dtype=np.float32)
        proba[~labeled] = proba_for(pool_ids)
        rejections_apply(proba, embeddings.ids.tolist(), class_ids, project=project)
        class_counts = label_counts(project=project, class_ids=class_ids)
    priority = rank(
        learner.strategy,
        embeddings=embeddings.matrix,
        labeled=labeled,
        proba=proba,
        n_classes=len(class_ids) if class_ids else project.classes.filter(is_active=True).count(),
        batch_size=learner.retrain_every or 50,
        seed=seed,
        class_counts=class_counts,
    )[~labeled]
    if proba is None:
        suggestions = [
            Suggestion(image_id=pk, class_id=None, confidence=None, priority=float(p))
            for pk, p in zip(pool_ids, priority, strict=True)
        ]
    else:
        pool_proba = proba[~labeled]
        best = pool_proba.argmax(axis=1)
        confidence = pool_proba.max(axis=1)
        suggestions = [
            Suggestion(
                image_id=pk,
                class_id=class_ids[int(best[i])],
                confidence=float(confidence[i]),
                priority=float(priority[i]),
                version_id=version_id,
            )
            for i, pk in enumerate(pool_ids)
        ]
    return image_suggestions_write(project=project, suggestions=suggestions)


def rejections_apply(
    proba: np.ndarray, image_ids: list[int], class_ids: list[int], *, project: Project
) -> None:
    """Condition each row of `proba` (one per image of `image_ids`, columns
    `class_ids`) on the classes rejected for its image, in place: those are set to
    zero and the row renormalised. A row left with nothing (every class rejected) is
    spread evenly over its classes, the model having nothing left to say."""
    row_of = {pk: i for i, pk in enumerate(image_ids)}
    column_of = {pk: j for j, pk in enumerate(class_ids)}
    pairs = [
        (row_of[image], column_of[label_class])
        for image, label_class in suggestion_rejections(project=project)
        if image in row_of and label_class in column_of
    ]
    if not pairs:
        return
    rows, columns = np.asarray(pairs).T
    proba[rows, columns] = 0.0
    touched = np.unique(rows)
    totals = proba[touched].sum(axis=1, keepdims=True)
    empty = totals[:, 0] <= 0
    proba[touched] = np.where(totals > 0, proba[touched] / np.maximum(totals, 1e-12), 0.0)
    if empty.any():
        proba[touched[empty]] = 1.0 / proba.shape[1]


def label_counts(*, project: Project, class_ids: list[int]) -> np.ndarray:
    """How many images of `project` carry each of `class_ids`, in that order (the
    project's own per-class counts): what a class-aware strategy reads as the classes
    with few labels."""
    counts = {c.label_class.pk: c.count for c in project_counts(project=project).per_class}
    return np.asarray([counts.get(pk, 0) for pk in class_ids], dtype=np.int64)


def ranking_seed(*, project: Project) -> int:
    """The seed of `project`'s ranking now: `labels_seed` of its labeled images. Never a
    database id or the clock, which would make the same labels rank differently from
    one database (or one run of a benchmark) to the next."""
    return labels_seed(
        Image.objects.filter(project=project, label__isnull=False).values_list(
            "content_hash", "label__name"
        )
    )


def queue_rerank(*, project: Project, seed: int | None = None) -> int:
    """Rank the queue again now, with the active model if there is one (new images get
    its suggestions too) or as a cold start. A fine-tuned model runs over image files,
    too slow to repeat here: its queue keeps its ranking until the next version."""
    active = ModelVersion.objects.filter(project=project, is_active=True).first()
    if active is None:
        return queue_rank(project=project, seed=seed)
    if active.fine_tuned or not active.artifact:
        return 0
    if active.is_multi_label:
        return tag_queue_rerank(version=active)
    head = _head_of(active.artifact)
    embeddings = project_embeddings(project=project)
    device = str(backbone_load().device)
    return queue_rank(
        project=project,
        embeddings=embeddings,
        proba_for=lambda ids: predict_proba(head, embeddings.of(ids), device=device),
        class_ids=active.class_ids,
        seed=seed,
        version_id=active.pk,
    )
