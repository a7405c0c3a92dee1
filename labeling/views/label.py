"""The labeling page: one image at a time from the queue, by keyboard."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import (
    HttpRequest,
    HttpResponse,
)
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from labeling import access, selectors, services
from labeling.models import Annotation, Image, Project
from labeling.views.responses import error_message, partial

_SKIPPED = "skipped-{}"


def _skipped(request: HttpRequest, project: Project) -> list[int]:
    return request.session.get(_SKIPPED.format(project.pk), [])


def _panel(request: HttpRequest, project: Project, *, first: Image | None = None) -> dict:
    """The image to label now and the one to prefetch, both reserved for this user."""
    skipped = _skipped(request, project)
    exclude = skipped + ([first.pk] if first else [])
    queued = services.queue_reserve(project=project, user=request.user, exclude_ids=exclude)
    revisiting = False
    if not queued and not first and skipped:
        # Everything left was skipped: offer the skipped images again rather than stop.
        request.session[_SKIPPED.format(project.pk)] = []
        queued = services.queue_reserve(project=project, user=request.user)
        revisiting = bool(queued)
    images = ([first] if first else []) + queued
    image = images[0] if images else None
    classes = list(selectors.label_class_list(project=project, active_only=True))
    # Enter accepts the model's suggestion, when it is a class one may label with now.
    suggested = next((c for c in classes if image and c.pk == image.suggested_class_id), None)
    multi = project.kind == Project.Kind.MULTI
    states = selectors.image_tag_states(image=image) if image and multi else {}
    return {
        "project": project,
        "image": image,
        "next_image": images[1] if len(images) > 1 else None,
        "classes": classes,
        # Multi-label: each tag with its state in force on the image.
        "tags": [(c, states.get(c.pk, "unset")) for c in classes],
        "suggested": suggested,
        "counts": selectors.project_counts(project=project),
        "revisiting": revisiting,
        "queue_order": selectors.queue_order(project=project),
    }


def _render_panel(request: HttpRequest, project: Project, **kwargs) -> HttpResponse:
    template = partial(request, "labeling/label.html", "annotation-panel")
    return render(request, template, _panel(request, project, **kwargs))


@login_required
@require_GET
def label_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.LABELERS)
    return _render_panel(request, project)


@login_required
@require_POST
def label_image(request: HttpRequest, project_id: int, image_id: int) -> HttpResponse:
    image = access.image_access(
        user=request.user, project_id=project_id, image_id=image_id, roles=access.LABELERS
    )
    try:
        label_class = access.label_class_access(
            user=request.user,
            project_id=project_id,
            class_id=int(request.POST.get("label_class", "")),
        )
        # The page showed the model's suggestion: choosing it is accepting it.
        accepted = label_class.pk == image.suggested_class_id
        services.annotation_create(
            image=image,
            label_class=label_class,
            annotator=request.user,
            origin=Annotation.Origin.SUGGESTION if accepted else Annotation.Origin.CHOSEN,
        )
    except (ValueError, ValidationError) as error:
        messages.error(request, error_message(error))
    return _render_panel(request, image.project)


@login_required
@require_POST
def label_tags(request: HttpRequest, project_id: int, image_id: int) -> HttpResponse:
    """Save the tags of a multi-label image: the ticked ones present, the rest absent."""
    image = access.image_access(
        user=request.user, project_id=project_id, image_id=image_id, roles=access.LABELERS
    )
    try:
        services.image_tags_set(
            image=image, present=request.POST.getlist("present"), annotator=request.user
        )
    except ValidationError as error:
        messages.error(request, error_message(error))
    return _render_panel(request, image.project)


@login_required
@require_POST
def label_skip(request: HttpRequest, project_id: int, image_id: int) -> HttpResponse:
    image = access.image_access(
        user=request.user, project_id=project_id, image_id=image_id, roles=access.LABELERS
    )
    services.queue_release(image=image, user=request.user)
    key = _SKIPPED.format(project_id)
    request.session[key] = [*request.session.get(key, [])[-499:], image.pk]
    return _render_panel(request, image.project)


@login_required
@require_POST
def label_undo(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.LABELERS)
    image = services.label_undo_last(project=project, annotator=request.user)
    if image is None:
        messages.info(request, "Nothing to undo.")
    return _render_panel(request, project, first=image)
