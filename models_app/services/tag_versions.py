"""Model versions of multi-label projects: one logistic output per tag on the stored
embeddings (`models_app.ml.multilabel`), each tag's threshold chosen on the validation
split, metrics per tag on the test split, and the queue ranked by the tag strategies.

A version's `metrics["kind"]` is "multi"; `class_ids` are its tags in output order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from labeling.models import Image, LabelClass, Project, TagAnnotation
from labeling.services import Suggestion, image_suggestions_write
from models_app.ml.curves import binary_curves
from models_app.ml.multilabel import (
    TAG_MIN_NEGATIVES,
    TAG_MIN_POSITIVES,
    predict_tag_proba,
    tag_head_from_bytes,
    tag_head_to_bytes,
    tag_matrix_untrainable,
    tag_metrics,
    train_tag_head,
)
from models_app.ml.tag_strategies import TAG_STRATEGIES, rank_tags
from models_app.models import ModelVersion
from models_app.services.embeddings import (
    TrainingError,
    backbone_load,
    project_embeddings,
)
from models_app.services.options import learner_settings
from models_app.services.seeds import labels_seed

SPLITS = ("train", "val", "test")


@dataclass
class TagDataset:
    tag_ids: list[int]
    ids: dict[str, list[int]]
    # (images, tags): 1 present, 0 absent, NaN not looked at.
    y: dict[str, np.ndarray]
    counts: dict[str, dict]
    total: int


def tag_dataset(*, project: Project) -> TagDataset:
    """The saved images of `project` (tagged, in the dataset) by split, with each active
    tag's state in force as a matrix, and per tag how many images hold it present and
    absent in each split."""
    tags = list(LabelClass.objects.filter(project=project, is_active=True).order_by("order", "id"))
    column = {t.pk: j for j, t in enumerate(tags)}
    images = list(
        Image.objects.filter(project=project, tagged=True, status=Image.Status.ACTIVE)
        .exclude(split=Image.Split.UNASSIGNED)
        .values_list("id", "split")
        .order_by("id")
    )
    row = {pk: i for i, (pk, _) in enumerate(images)}
    matrix = np.full((len(images), len(tags)), np.nan, dtype=np.float32)
    states = TagAnnotation.objects.filter(
        image__in=[pk for pk, _ in images],
        tag__in=tags,
        is_current=True,
        state__in=(TagAnnotation.State.PRESENT, TagAnnotation.State.ABSENT),
    ).values_list("image_id", "tag_id", "state")
    for image_id, tag_id, state in states.iterator(chunk_size=5000):
        matrix[row[image_id], column[tag_id]] = state == TagAnnotation.State.PRESENT
    splits = np.asarray([split for _, split in images])
    ids = {s: [pk for pk, split in images if split == s] for s in SPLITS}
    y = {s: matrix[splits == s] if len(images) else matrix for s in SPLITS}
    counts = {}
    for j, tag in enumerate(tags):
        entry = {"name": tag.name}
        for s in SPLITS:
            known = y[s][:, j][~np.isnan(y[s][:, j])]
            entry[s] = int(known.sum())
            entry[f"{s}_absent"] = int(len(known) - known.sum())
        counts[str(tag.pk)] = entry
    return TagDataset([t.pk for t in tags], ids, y, counts, len(images))


def tag_training_blocker(*, project: Project) -> str | None:
    """Why a training of a multi-label `project` cannot succeed now, or None: at least
    one tag needs TAG_MIN_POSITIVES training images where it is present and
    TAG_MIN_NEGATIVES where it is absent."""
    return _blocker(tag_dataset(project=project))


def _blocker(data: TagDataset) -> str | None:
    if not data.tag_ids:
        return "Nothing to train yet: the project has no tags. Add tags and tag images."
    untrainable = set(tag_matrix_untrainable(data.y["train"]))
    if len(untrainable) < len(data.tag_ids):
        return None
    have = ", ".join(
        f"{c['name']}: {c['train']} present / {c['train_absent']} absent"
        for c in data.counts.values()
    )
    return (
        f"Training needs at least one tag present on {TAG_MIN_POSITIVES} and absent on "
        f"{TAG_MIN_NEGATIVES} training images (so far: {have}). Tag more images first."
    )


def tag_strategy(strategy: str) -> str:
    """The project's query strategy for tags: the same name where the tag strategies
    have it, else the tags' default ("auto")."""
    return strategy if strategy in TAG_STRATEGIES else "auto"


def tag_version_train(version: ModelVersion, progress) -> dict:
    """Train, evaluate and rank for one version of a multi-label project; returns the
    fields to store on the version. Raises TrainingError when no tag can be trained."""
    project = version.project
    data = tag_dataset(project=project)
    blocker = _blocker(data)
    if blocker:
        raise TrainingError(blocker)
    embeddings = project_embeddings(project=project)
    device = str(backbone_load().device)
    x = {s: embeddings.of(ids) for s, ids in data.ids.items() if ids}
    head = train_tag_head(
        x["train"],
        data.y["train"],
        x_val=x.get("val"),
        y_val=data.y["val"] if "val" in x else None,
        device=device,
    )
    untrainable = [data.tag_ids[j] for j in np.flatnonzero(~np.asarray(head.trainable))]
    metrics: dict = {
        "kind": "multi",
        "tags": data.tag_ids,
        "thresholds": [float(t) for t in head.thresholds],
        "untrainable": untrainable,
        "epochs": head.epochs,
    }
    for split in ("test", "val"):
        if data.ids[split]:
            proba = predict_tag_proba(head, x[split], device=device)
            metrics[split] = tag_metrics(data.y[split], proba, head.thresholds)
            if len(data.tag_ids) == 1:
                # A one-tag project is a yes/no question: its curves, at its threshold.
                known = ~np.isnan(data.y[split][:, 0])
                metrics[split]["binary"] = binary_curves(
                    data.y[split][known, 0] == 1, proba[known, 0], head.thresholds[0]
                )
    artifact = default_storage.save(
        f"models/{project.pk}/v{version.number}-{uuid.uuid4().hex[:8]}.tags.pt",
        ContentFile(tag_head_to_bytes(head)),
    )
    progress("Scoring and ranking unlabeled images")
    _rank(project, embeddings, head, data, device)
    return {
        "class_ids": data.tag_ids,
        "label_counts": data.counts,
        "labels_total": data.total,
        "metrics": metrics,
        "artifact": artifact,
    }


def _rank(project: Project, embeddings, head, data: TagDataset, device: str) -> int:
    """Store every untagged image's queue priority from the tag strategy, and as its
    suggestion the likeliest tag with that tag's probability."""
    tagged = set(Image.objects.filter(project=project, tagged=True).values_list("id", flat=True))
    labeled = np.fromiter((pk in tagged for pk in embeddings.ids.tolist()), bool)
    pool_ids = embeddings.ids[~labeled].tolist()
    if not pool_ids:
        return 0
    proba = predict_tag_proba(head, embeddings.matrix, device=device)
    # The known tags of every labeled row, in the embeddings' row order.
    where = {pk: (s, i) for s in SPLITS for i, pk in enumerate(data.ids[s])}
    rows_y = np.full((len(labeled), len(data.tag_ids)), np.nan, dtype=np.float32)
    for row, pk in enumerate(embeddings.ids.tolist()):
        if pk in where:
            split, i = where[pk]
            rows_y[row] = data.y[split][i]
    learner = learner_settings(project=project)
    hashes = dict(Image.objects.filter(pk__in=list(where)).values_list("id", "content_hash"))
    seed = labels_seed(
        (hashes[pk], ",".join(f"{v:.0f}" if v == v else "-" for v in rows_y[row]))
        for row, pk in enumerate(embeddings.ids.tolist())
        if pk in where
    )
    priority = rank_tags(
        tag_strategy(learner.strategy),
        embeddings=embeddings.matrix,
        labeled=labeled,
        proba=proba,
        thresholds=head.thresholds,
        y_labeled=rows_y,
        batch_size=learner.retrain_every or 50,
        seed=seed,
    )[~labeled]
    pool = proba[~labeled]
    best = pool.argmax(axis=1)
    suggestions = [
        Suggestion(
            image_id=pk,
            class_id=data.tag_ids[int(best[i])],
            confidence=float(pool[i, best[i]]),
            priority=float(priority[i]),
        )
        for i, pk in enumerate(pool_ids)
    ]
    return image_suggestions_write(project=project, suggestions=suggestions)


def tag_queue_rerank(*, version: ModelVersion) -> int:
    """Rank the queue of a multi-label project again with its active `version` (new
    images get its suggestions too). Returns how many images were ranked."""
    with default_storage.open(version.artifact, "rb") as f:
        head = tag_head_from_bytes(f.read())
    project = version.project
    data = tag_dataset(project=project)
    if data.tag_ids != list(version.class_ids):
        return 0  # tags changed since: the next version ranks
    device = str(backbone_load().device)
    return _rank(project, project_embeddings(project=project), head, data, device)
