"""Writes of the learner, one module per domain: embeddings, options (a project's
learner settings), versions (request, train, evaluate, activate), ranking (the queue's
order and suggestions), predictions (the active model), splits (suggestions for a class
being split) and quality (label scores and near-duplicates for the review).

The heavy work (embedding, training) runs in django-q2 workers through `tasks.py`; the
web process only requests it. The public names are importable from here.
"""

from __future__ import annotations

from models_app.services.embeddings import (
    ProjectEmbeddings,
    TrainingError,
    backbone_key,
    backbone_load,
    embeddings_claim,
    embeddings_compute,
    embeddings_continue,
    embeddings_dispatch,
    embeddings_ensure,
    embeddings_in_flight,
    embeddings_of_images,
    image_sources,
    project_embeddings,
)
from models_app.services.options import learner_settings, learner_settings_update
from models_app.services.predictions import ActiveModel, active_model
from models_app.services.quality import label_scores, near_duplicates, nearest_neighbours
from models_app.services.ranking import queue_rank, queue_rerank
from models_app.services.splits import split_suggest
from models_app.services.versions import (
    model_version_request,
    model_version_train,
    training_blocker,
)

__all__ = [
    "ActiveModel",
    "ProjectEmbeddings",
    "TrainingError",
    "active_model",
    "backbone_key",
    "backbone_load",
    "embeddings_claim",
    "embeddings_compute",
    "embeddings_continue",
    "embeddings_dispatch",
    "embeddings_ensure",
    "embeddings_in_flight",
    "embeddings_of_images",
    "image_sources",
    "label_scores",
    "learner_settings",
    "learner_settings_update",
    "model_version_request",
    "model_version_train",
    "near_duplicates",
    "nearest_neighbours",
    "project_embeddings",
    "queue_rank",
    "queue_rerank",
    "split_suggest",
    "training_blocker",
]
