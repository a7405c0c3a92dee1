"""Class splits: suggestions for the images of a class being split, from the expert's
seeds."""

from __future__ import annotations

import numpy as np
from django.core.exceptions import ValidationError

from labeling.models import ClassSplit, LabelClass, SplitAssignment
from labeling.services import split_suggestions_write
from models_app.ml.head import (
    predict_proba,
    train_head_self,
)
from models_app.services.embeddings import TrainingError, backbone_load, project_embeddings


def split_suggest(*, split: ClassSplit) -> int:
    """Suggest a new class, with its confidence, for every image of a split class the
    expert has not decided: a head trained on the expert's choices (at least one per
    new class) and self-trained on the rest of the class's images, on their stored
    embeddings. Returns how many suggestions were written."""
    decided = dict(
        split.assignments.filter(
            kind__in=SplitAssignment.DECIDED, image__in=split.source_images()
        ).values_list("image_id", "label_class_id")
    )
    targets = list(split.targets.order_by("order", "id").values_list("id", flat=True))
    missing = [t for t in targets if t not in set(decided.values())]
    if missing:
        names = ", ".join(LabelClass.objects.filter(pk__in=missing).values_list("name", flat=True))
        raise ValidationError(f"Choose at least one image for each new class (none yet: {names}).")
    ids = list(split.source_images().order_by("id").values_list("id", flat=True))
    rest = [pk for pk in ids if pk not in decided]
    embeddings = project_embeddings(project=split.project)
    try:
        x_seed = embeddings.of(list(decided))
        x_rest = embeddings.of(rest)
    except TrainingError as error:
        raise ValidationError(f"{error} Wait for the worker to embed them.") from None
    index = {t: i for i, t in enumerate(targets)}
    y_seed = np.asarray([index[c] for c in decided.values()], dtype=np.int64)
    device = str(backbone_load().device)
    head = train_head_self(x_seed, y_seed, len(targets), x_pool=x_rest, device=device)
    proba = predict_proba(head, x_rest, device=device) if rest else np.zeros((0, len(targets)))
    return split_suggestions_write(
        split=split,
        suggestions=[
            (pk, targets[int(p.argmax())], float(p.max()))
            for pk, p in zip(rest, proba, strict=True)
        ],
    )
