"""How a project learns: its learner settings (strategy, retraining interval, head,
fine-tuning)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django_q.tasks import async_task

from labeling.models import Project
from models_app.models import LearnerSettings


def learner_settings(*, project: Project) -> LearnerSettings:
    return LearnerSettings.objects.get_or_create(project=project)[0]


@transaction.atomic
def learner_settings_update(*, project: Project, **changes) -> LearnerSettings:
    """Change how `project` trains (retrain_every, head_kind, fine_tune,
    fine_tune_epochs) and ranks its queue (strategy); the next version uses them, and a
    new strategy re-ranks the queue in the background at once."""
    allowed = {"retrain_every", "head_kind", "fine_tune", "fine_tune_epochs", "strategy"}
    if set(changes) - allowed:
        raise ValidationError(f"Unknown settings: {', '.join(sorted(set(changes) - allowed))}.")
    learner = LearnerSettings.objects.select_for_update().get(
        pk=learner_settings(project=project).pk
    )
    strategy_changed = "strategy" in changes and changes["strategy"] != learner.strategy
    for field, value in changes.items():
        setattr(learner, field, value)
    learner.full_clean()
    learner.save()
    if strategy_changed:
        transaction.on_commit(
            lambda: async_task(
                "models_app.tasks.rerank_project", project.pk, task_name=f"rank {project.pk}"
            )
        )
    return learner
