"""The image grid: filter, select, assign a class; and the image files."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
)
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from labeling import access, selectors, services
from labeling.forms import (
    AssignForm,
    error_messages,
)
from labeling.models import Project
from labeling.views.responses import error_message, file_response, partial

GRID_PAGE_SIZE = 60


def _grid_context(request: HttpRequest, project: Project, **extra) -> dict:
    filters = {key: request.GET.get(key, "") for key in ("label", "suggested", "order")}
    try:
        images = selectors.image_list(project=project, filters=filters)
    except ValidationError:
        filters = dict.fromkeys(filters, "")
        images = selectors.image_list(project=project)
    page = Paginator(images, GRID_PAGE_SIZE).get_page(request.GET.get("page"))
    return {
        "project": project,
        "page": page,
        "filters": filters,
        "query": urlencode({k: v for k, v in filters.items() if v}),
        "classes": selectors.label_class_list(project=project),
        # Only the classes one may label with: parents are labeled through their children.
        "assignable": selectors.label_class_list(project=project, active_only=True),
        "counts": selectors.project_counts(project=project),
        "selected": set(),
        "chosen": "",
        **extra,
    }


@login_required
@require_GET
def image_grid(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id)
    template = partial(request, "labeling/grid.html", "image-grid")
    return render(request, template, _grid_context(request, project))


@login_required
@require_POST
def grid_assign(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.LABELERS)
    form = AssignForm(request.POST)
    status = 200
    if form.is_valid():
        try:
            label_class = access.label_class_access(
                user=request.user, project_id=project_id, class_id=form.cleaned_data["label_class"]
            )
            if project.kind == Project.Kind.MULTI:
                present = form.cleaned_data["tag_action"] != "remove"
                count = services.images_tag_set(
                    project=project,
                    image_ids=form.cleaned_data["images"],
                    tag=label_class,
                    present=present,
                    annotator=request.user,
                )
                done = "added to" if present else "removed from"
                messages.success(request, f"Tag {label_class.name} {done} {count} image(s).")
            else:
                count = services.annotations_bulk_create(
                    project=project,
                    image_ids=form.cleaned_data["images"],
                    label_class=label_class,
                    annotator=request.user,
                )
                messages.success(request, f"Labeled {count} image(s) {label_class.name}.")
        except ValidationError as error:
            messages.error(request, error_message(error))
            status = 400
    else:
        messages.error(request, " ".join(error_messages(form)))
        status = 400
    extra = {}
    if status == 400:
        # Keep the selection and the class chosen, so the user can fix and send again.
        extra = {
            "selected": set(request.POST.getlist("images")),
            "chosen": request.POST.get("label_class", ""),
            "tag_action": request.POST.get("tag_action", ""),
        }
    template = partial(request, "labeling/grid.html", "image-grid")
    return render(request, template, _grid_context(request, project, **extra), status=status)


# --- media ---------------------------------------------------------------------------


@login_required
@require_GET
def image_file(request: HttpRequest, project_id: int, image_id: int) -> FileResponse:
    image = access.image_access(user=request.user, project_id=project_id, image_id=image_id)
    # A TIFF is shown through its JPEG preview: browsers cannot display TIFF.
    return file_response(image.preview or image.file)


@login_required
@require_GET
def image_thumbnail(request: HttpRequest, project_id: int, image_id: int) -> FileResponse:
    image = access.image_access(user=request.user, project_id=project_id, image_id=image_id)
    return file_response(image.thumbnail)
