"""A multi-label project's tags as a file: the download (CSV or JSON lines) and the
upload form that sets tags from such a file."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from labeling import access, services

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def tags_file_response(project, file_format: str) -> HttpResponse:
    """The export as a download named after the project; shared with the API."""
    text = services.project_tags_export(project=project, file_format=file_format)
    response = HttpResponse(text, content_type=CONTENT_TYPES[file_format])
    response["Content-Disposition"] = (
        f'attachment; filename="project-{project.pk}-tags.{file_format}"'
    )
    response["Cache-Control"] = "private, no-store"
    return response


def import_summary(result: services.TagImportResult) -> str:
    text = (
        f"Read {result.images} image{'s' if result.images != 1 else ''}: "
        f"{result.rows} tag state{'s' if result.rows != 1 else ''} written on {result.changed}, "
        f"{result.tagged} newly tagged."
    )
    if result.missing:
        text += (
            f" {result.missing} row{'s' if result.missing != 1 else ''} named images not in "
            f"this project ({', '.join(result.missing_names)}"
            f"{', …' if result.missing > len(result.missing_names) else ''}): skipped."
        )
    return text


@login_required
@require_GET
def tags_export(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id)
    try:
        return tags_file_response(project, request.GET.get("type", "csv"))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("labeling:project-detail", project_id=project.pk)


@login_required
@require_POST
def tags_import(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose a CSV or JSON lines file of tags.")
        return redirect("labeling:project-detail", project_id=project.pk)
    try:
        result = services.project_tags_import(
            project=project, name=upload.name, content=upload.read(), user=request.user
        )
    except ValidationError as error:
        messages.error(request, f"Nothing was imported from {upload.name}:")
        for message in error.messages:
            messages.error(request, message)
        return redirect("labeling:project-detail", project_id=project.pk)
    messages.success(request, import_summary(result))
    return redirect("labeling:project-detail", project_id=project.pk)
