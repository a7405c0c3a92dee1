"""The dashboard's export panel: build a version's export, watch it, download its files."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from labeling import access
from models_app.services import exports

PANEL = "models_app/dashboard.html#export-panel"


def export_context(request: HttpRequest, version, **extra) -> dict:
    """What the export panel of `version` shows."""
    role = access.role_of(user=request.user, project=version.project)
    return {
        "project": version.project,
        "export_version": version,
        "export": exports.model_export_of(version=version),
        "can_export": role in access.CURATORS,
        **extra,
    }


@login_required
@require_POST
def export_build(request: HttpRequest, project_id: int, number: int) -> HttpResponse:
    version = exports.model_version_access(
        user=request.user, project_id=project_id, number=number, roles=access.CURATORS
    )
    try:
        exports.model_export_request(version=version, user=request.user)
    except ValidationError as error:
        context = export_context(request, version, export_error=" ".join(error.messages))
        return render(request, PANEL, context, status=400)
    return render(request, PANEL, export_context(request, version))


@login_required
@require_GET
def export_status(request: HttpRequest, project_id: int, number: int) -> HttpResponse:
    version = exports.model_version_access(user=request.user, project_id=project_id, number=number)
    return render(request, PANEL, export_context(request, version))


@login_required
@require_GET
def export_download(request: HttpRequest, project_id: int, number: int, kind: str) -> HttpResponse:
    version = exports.model_version_access(user=request.user, project_id=project_id, number=number)
    export = exports.model_export_of(version=version)
    if kind not in exports.EXPORT_FILES or export is None:
        raise Http404("No such export file.")
    try:
        handle = exports.export_file_open(export=export, kind=kind)
    except ValidationError as error:
        return HttpResponse(" ".join(error.messages), status=409, content_type="text/plain")
    return FileResponse(
        handle,
        as_attachment=True,
        filename=exports.export_file_name(export=export, kind=kind),
        content_type=exports.EXPORT_FILES[kind][2],
    )
