"""django-q2 tasks: thin, idempotent, taking ids and calling a service."""

from __future__ import annotations

from labeling.models import Project
from models_app import selectors, services
from models_app.models import ModelVersion


def embed_chunk(embedding_ids: list[int]) -> int:
    """Embed a chunk, then enqueue the next one; a project whose images are now all
    embedded has its queue ranked again, so new images take their place in it (the cold
    start while no model exists)."""
    try:
        computed = services.embeddings_compute(embedding_ids=embedding_ids)
    finally:
        services.embeddings_continue()
    for project in selectors.projects_fully_embedded(embedding_ids=embedding_ids):
        services.queue_rerank(project=project)
    return computed


def embed_project(project_id: int) -> int:
    """Enqueued on an upload's commit: start embedding its images now."""
    project = Project.objects.filter(pk=project_id).first()
    return services.embeddings_dispatch(project=project) if project else 0


def rerank_project(project_id: int) -> int:
    project = Project.objects.filter(pk=project_id).first()
    return services.queue_rerank(project=project) if project else 0


def dispatch_embeddings() -> int:
    return services.embeddings_dispatch()


def train_model_version(version_id: int) -> str:
    return services.model_version_train(version_id=version_id).status


def retrain_due_projects() -> int:
    """Request a version for every project due for one, with the trigger that says why
    (a class change, or new labels). Projects that cannot train yet are left alone
    rather than given a failed version every minute."""
    reshaped = set(selectors.projects_reshaped_since_last_version())
    requested = 0
    for project in selectors.projects_due_for_training():
        if services.training_blocker(project=project):
            continue
        trigger = (
            ModelVersion.Trigger.TAXONOMY if project in reshaped else ModelVersion.Trigger.AUTO
        )
        services.model_version_request(project=project, trigger=trigger)
        requested += 1
    return requested
