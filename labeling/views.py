"""HTML pages. Each view checks access, calls one service or selector and renders;
htmx requests get the named partial of the same template."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
)
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labeling import access, selectors, services
from labeling.forms import (
    AssignForm,
    LabelClassEditForm,
    LabelClassForm,
    MemberForm,
    MergeForm,
    ProjectForm,
    SplitStartForm,
)
from labeling.models import Image, Project

GRID_PAGE_SIZE = 60


def _form_errors(form, error: ValidationError) -> None:
    """Show a service's refusal on the form: on its field where it names one."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for field, errors in error.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def _partial(request: HttpRequest, template: str, partial: str) -> str:
    return f"{template}#{partial}" if request.htmx else template


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = services.project_create(user=request.user, **form.cleaned_data)
        return redirect("labeling:project-detail", project_id=project.pk)
    projects = selectors.project_list(user=request.user)
    return render(request, "labeling/project_list.html", {"projects": projects, "form": form})


def _project_context(request: HttpRequest, project: Project, **extra) -> dict:
    return {
        "project": project,
        "role": access.role_of(user=request.user, project=project),
        "classes": selectors.label_class_list(project=project),
        "counts": selectors.project_counts(project=project),
        "members": selectors.membership_list(project=project),
        "class_form": LabelClassForm(),
        "member_form": MemberForm(),
        "max_files": settings.DATA_UPLOAD_MAX_NUMBER_FILES,
        **extra,
    }


@login_required
@require_GET
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id)
    return render(request, "labeling/project_detail.html", _project_context(request, project))


@login_required
@require_POST
def label_class_create(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    form = LabelClassForm(request.POST)
    if form.is_valid():
        try:
            services.label_class_create(
                project=project,
                name=form.cleaned_data["name"],
                color=form.cleaned_data["color"] or None,
                key=form.cleaned_data["key"] or None,
                actor=request.user,
            )
            form = LabelClassForm()
        except ValidationError as error:
            _form_errors(form, error)
    context = _project_context(request, project, class_form=form)
    status = 200 if not form.errors else 400
    template = _partial(request, "labeling/project_detail.html", "class-section")
    return render(request, template, context, status=status)


@login_required
@require_POST
def member_set(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.OWNERS)
    form = MemberForm(request.POST)
    if form.is_valid():
        try:
            services.membership_set(project=project, **form.cleaned_data)
            form = MemberForm()
        except ValidationError as error:
            _form_errors(form, error)
    context = _project_context(request, project, member_form=form)
    template = _partial(request, "labeling/project_detail.html", "member-section")
    return render(request, template, context, status=400 if form.errors else 200)


@login_required
@require_POST
def images_upload(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    files = request.FILES.getlist("files")
    if not files:
        return HttpResponseBadRequest("Choose one or more image files or a zip.")
    results = services.images_ingest(project=project, files=files, user=request.user)
    context = _project_context(request, project, results=results)
    template = _partial(request, "labeling/project_detail.html", "upload-results")
    return render(request, template, context)


# --- labeling ------------------------------------------------------------------------

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
    return {
        "project": project,
        "image": images[0] if images else None,
        "next_image": images[1] if len(images) > 1 else None,
        "classes": selectors.label_class_list(project=project, active_only=True),
        "counts": selectors.project_counts(project=project),
        "revisiting": revisiting,
    }


def _render_panel(request: HttpRequest, project: Project, **kwargs) -> HttpResponse:
    template = _partial(request, "labeling/label.html", "annotation-panel")
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
        services.annotation_create(image=image, label_class=label_class, annotator=request.user)
    except (ValueError, ValidationError) as error:
        messages.error(request, _message(error))
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
    image = services.annotation_undo_last(project=project, annotator=request.user)
    if image is None:
        messages.info(request, "Nothing to undo.")
    return _render_panel(request, project, first=image)


def _message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return "Choose a class."


# --- grid ----------------------------------------------------------------------------


def _grid_context(request: HttpRequest, project: Project) -> dict:
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
        "counts": selectors.project_counts(project=project),
    }


@login_required
@require_GET
def image_grid(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id)
    template = _partial(request, "labeling/grid.html", "image-grid")
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
            count = services.annotations_bulk_create(
                project=project,
                image_ids=form.cleaned_data["images"],
                label_class=label_class,
                annotator=request.user,
            )
            messages.success(request, f"Labeled {count} image(s) {label_class.name}.")
        except ValidationError as error:
            messages.error(request, _message(error))
            status = 400
    else:
        messages.error(request, " ".join(form.non_field_errors()) or "Choose a class.")
        status = 400
    template = _partial(request, "labeling/grid.html", "image-grid")
    return render(request, template, _grid_context(request, project), status=status)


# --- media ---------------------------------------------------------------------------


@login_required
@require_GET
def image_file(request: HttpRequest, project_id: int, image_id: int) -> FileResponse:
    image = access.image_access(user=request.user, project_id=project_id, image_id=image_id)
    return file_response(image.file)


@login_required
@require_GET
def image_thumbnail(request: HttpRequest, project_id: int, image_id: int) -> FileResponse:
    image = access.image_access(user=request.user, project_id=project_id, image_id=image_id)
    return file_response(image.thumbnail)


def file_response(field) -> FileResponse:
    response = FileResponse(field.open("rb"))
    # Members only: browsers may keep it, shared caches may not.
    response["Cache-Control"] = "private, max-age=86400"
    return response


# --- classes: edit, merge, split, history ----------------------------------------------


def _classes_context(request: HttpRequest, project: Project) -> dict:
    return {
        "project": project,
        "can_edit": access.role_of(user=request.user, project=project) in access.CURATORS,
        "classes": selectors.label_class_list(project=project),
        "counts": selectors.project_counts(project=project),
        "merges": selectors.class_merge_list(project=project)[:20],
        "splits": selectors.class_split_open(project=project).select_related("source"),
    }


@login_required
@require_GET
def classes_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id)
    return render(request, "labeling/classes.html", _classes_context(request, project))


def _done(request: HttpRequest, action, success: str) -> object | None:
    """Run a service call, turning its refusal into a message; returns its result."""
    try:
        result = action()
    except ValidationError as error:
        messages.error(request, _message(error))
        return None
    messages.success(request, success.format(result=result))
    return result


@login_required
@require_POST
def class_update(request: HttpRequest, project_id: int, class_id: int) -> HttpResponse:
    label_class = access.label_class_access(
        user=request.user, project_id=project_id, class_id=class_id, roles=access.CURATORS
    )
    form = LabelClassEditForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect("labeling:classes", project_id=project_id)
    changes = dict(form.cleaned_data)
    parent_id = changes.pop("parent")
    parent = None
    if parent_id:
        parent = access.label_class_access(
            user=request.user, project_id=project_id, class_id=parent_id
        )
    _done(
        request,
        lambda: services.label_class_update(
            label_class=label_class, actor=request.user, parent=parent, **changes
        ),
        "Saved {result.name}.",
    )
    return redirect("labeling:classes", project_id=project_id)


@login_required
@require_POST
def classes_merge(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    form = MergeForm(request.POST)
    if form.is_valid():
        classes = [
            access.label_class_access(user=request.user, project_id=project_id, class_id=pk)
            for pk in form.cleaned_data["classes"]
        ]
        _done(
            request,
            lambda: services.label_class_merge(
                project=project, classes=classes, name=form.cleaned_data["name"], actor=request.user
            ),
            "Merged into {result.target.name}; the model retrains.",
        )
    else:
        messages.error(request, "Choose the classes and name the merged one.")
    return redirect("labeling:classes", project_id=project_id)


@login_required
@require_POST
def merge_undo(request: HttpRequest, project_id: int, merge_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    merge = selectors.class_merge_list(project=project).filter(pk=merge_id).first()
    if merge is None:
        raise Http404("No such merge.")
    _done(
        request,
        lambda: services.label_class_merge_undo(merge=merge, actor=request.user),
        "Merge undone: {result} labels restored.",
    )
    return redirect("labeling:classes", project_id=project_id)


@login_required
@require_POST
def split_start(request: HttpRequest, project_id: int) -> HttpResponse:
    access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    form = SplitStartForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a class and name the new classes.")
        return redirect("labeling:classes", project_id=project_id)
    label_class = access.label_class_access(
        user=request.user, project_id=project_id, class_id=form.cleaned_data["label_class"]
    )
    split = _done(
        request,
        lambda: services.label_class_split_start(
            label_class=label_class,
            names=form.cleaned_data["names"].split(","),
            actor=request.user,
        ),
        "Label a few images of each new class, then ask for suggestions.",
    )
    if split is None:
        return redirect("labeling:classes", project_id=project_id)
    return redirect("models_app:split", project_id=project_id, split_id=split.pk)


@login_required
@require_GET
def taxonomy_history(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id)
    page = Paginator(selectors.taxonomy_change_list(project=project), 100).get_page(
        request.GET.get("page")
    )
    return render(request, "labeling/class_history.html", {"project": project, "page": page})
