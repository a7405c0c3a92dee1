"""Exports of model versions for use outside the app: requested here (by the pages and
the API, without loading torch), built by a worker (`models_app.services.export_build`),
read back as files to download.

An export is one ONNX graph from image to probabilities, the same network as
TorchScript, and a JSON of what a caller needs; `models_app.predictor` runs the ONNX one
on a folder of images without the app.
"""

from __future__ import annotations

from datetime import timedelta
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django_q.tasks import async_task

from labeling import access
from models_app.models import ModelExport, ModelVersion
from models_app.selectors import backbone_key

# What can be downloaded: the field holding its path, the name's ending, the media type.
EXPORT_FILES = {
    "onnx": ("onnx_file", ".onnx", "application/octet-stream"),
    "json": ("manifest_file", ".json", "application/json"),
    "torchscript": ("torchscript_file", ".torchscript.pt", "application/octet-stream"),
}


def model_version_access(
    *, user: AbstractBaseUser, project_id: int, number: int, roles=access.ANY_MEMBER
) -> ModelVersion:
    """Version `number` of a project `user` may reach with `roles` (404 outside the
    project or for no such version, 403 for a role too low)."""
    project = access.project_access(user=user, project_id=project_id, roles=roles)
    version = ModelVersion.objects.filter(project=project, number=number).first()
    if version is None:
        raise Http404("No such model version.")
    return version


def export_blocker(*, version: ModelVersion) -> str | None:
    """Why `version` cannot be exported now, or None."""
    if version.status != ModelVersion.Status.SUCCEEDED or not version.artifact:
        return (
            f"v{version.number} has not finished training successfully: only a trained "
            "version can be exported."
        )
    if version.backbone != backbone_key():
        return (
            f"v{version.number} learned from features of {version.backbone}, and the app "
            f"now embeds with {backbone_key()}: retrain, then export the new version."
        )
    return None


def model_export_request(
    *, version: ModelVersion, user: AbstractBaseUser | None = None
) -> ModelExport:
    """Ask for `version`'s export and enqueue its build on commit.

    One export per version: asking again returns the one ready or on its way. A failed
    build, or one whose worker is gone (running longer than the task timeout), starts
    over. A version that cannot be exported is refused at once with a ValidationError
    saying why. Curators call it (the pages and the API check).
    """
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        blocker = export_blocker(version=version)
        if blocker:
            raise ValidationError(blocker)
        export, created = ModelExport.objects.get_or_create(
            version=version, defaults={"requested_by": user}
        )
        if not created:
            if export.status == ModelExport.Status.SUCCEEDED:
                return export
            if export.is_pending and not _is_lost(export):
                return export
            export.status = ModelExport.Status.QUEUED
            export.requested_by = user
            export.error = export.progress = ""
            export.started_at = export.finished_at = None
            export.save()
        transaction.on_commit(
            lambda: async_task(
                "models_app.export_tasks.build_model_export",
                export.pk,
                task_name=export.task_name,
            )
        )
    return export


def _is_lost(export: ModelExport) -> bool:
    if export.status != ModelExport.Status.RUNNING or export.started_at is None:
        return False
    return export.started_at < timezone.now() - timedelta(seconds=settings.Q_CLUSTER["timeout"])


def model_export_of(*, version: ModelVersion) -> ModelExport | None:
    """The export of `version`, if one was asked for."""
    return ModelExport.objects.filter(version=version).first()


def export_file_name(*, export: ModelExport, kind: str) -> str:
    """The name a download carries; the ONNX file and its JSON share a stem, which is
    where the predictor looks for the JSON."""
    version = export.version
    return f"labelloop-project{version.project_id}-v{version.number}{EXPORT_FILES[kind][1]}"


def export_file_open(*, export: ModelExport, kind: str) -> BinaryIO:
    """One file of a finished export, opened for reading. ValidationError while the
    export is not ready; KeyError for an unknown kind."""
    field = EXPORT_FILES[kind][0]
    if export.status != ModelExport.Status.SUCCEEDED or not getattr(export, field):
        raise ValidationError(
            f"The export of v{export.version.number} is not ready "
            f"({export.get_status_display().lower()})."
        )
    return default_storage.open(getattr(export, field), "rb")
