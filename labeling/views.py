"""HTML pages. Each view checks access, calls one service or selector and renders;
htmx requests get the named partial of the same template. A refused form answers 400
with that same partial, its errors beside the form and the values typed kept
(static/js/errors.js has htmx swap 400s in like 200s)."""

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
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from labeling import access, selectors, services
from labeling.forms import (
    AssignForm,
    LabelClassEditForm,
    LabelClassForm,
    MemberForm,
    MergeForm,
    ProjectForm,
    SplitStartForm,
    error_messages,
)
from labeling.models import Image, LabelClass, Project, TaxonomyChange

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
        try:
            project = services.project_create(user=request.user, **form.cleaned_data)
            return redirect("labeling:project-detail", project_id=project.pk)
        except ValidationError as error:
            _form_errors(form, error)
    projects = selectors.project_list(user=request.user)
    return render(
        request,
        "labeling/project_list.html",
        {"projects": projects, "form": form},
        status=400 if form.errors else 200,
    )


def _class_form(project: Project) -> LabelClassForm:
    """An empty class form whose colour is the one the palette gives the next class (a
    colour input cannot be left empty: it would send black)."""
    count = LabelClass.objects.filter(project=project).count()
    return LabelClassForm(
        initial={"color": services.CLASS_COLOURS[count % len(services.CLASS_COLOURS)]}
    )


def _project_context(request: HttpRequest, project: Project, **extra) -> dict:
    return {
        "project": project,
        "role": access.role_of(user=request.user, project=project),
        "classes": selectors.label_class_list(project=project),
        "counts": selectors.project_counts(project=project),
        "members": selectors.membership_list(project=project),
        "class_form": _class_form(project),
        "member_form": MemberForm(),
        "member_errors": [],
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
            form = _class_form(project)
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
def member_remove(request: HttpRequest, project_id: int, member_id: int) -> HttpResponse:
    membership = access.membership_access(
        user=request.user, project_id=project_id, membership_id=member_id
    )
    project = membership.project
    try:
        services.membership_remove(membership=membership)
    except ValidationError as error:
        context = _project_context(request, project, member_errors=error.messages)
        template = _partial(request, "labeling/project_detail.html", "member-section")
        return render(request, template, context, status=400)
    if membership.user_id == request.user.pk:
        # Whoever leaves a project can no longer see it.
        url = reverse("labeling:project-list")
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    if not request.htmx:
        return redirect("labeling:project-detail", project_id=project.pk)
    context = _project_context(request, project)
    return render(request, "labeling/project_detail.html#member-section", context)


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
    image = images[0] if images else None
    classes = list(selectors.label_class_list(project=project, active_only=True))
    # Enter accepts the model's suggestion, when it is a class one may label with now.
    suggested = next((c for c in classes if image and c.pk == image.suggested_class_id), None)
    return {
        "project": project,
        "image": image,
        "next_image": images[1] if len(images) > 1 else None,
        "classes": classes,
        "suggested": suggested,
        "counts": selectors.project_counts(project=project),
        "revisiting": revisiting,
        "queue_order": selectors.queue_order(project=project),
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
        messages.error(request, " ".join(error_messages(form)))
        status = 400
    extra = {}
    if status == 400:
        # Keep the selection and the class chosen, so the user can fix and send again.
        extra = {
            "selected": set(request.POST.getlist("images")),
            "chosen": request.POST.get("label_class", ""),
        }
    template = _partial(request, "labeling/grid.html", "image-grid")
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


def file_response(field) -> FileResponse:
    response = FileResponse(field.open("rb"))
    # Members only: browsers may keep it, shared caches may not.
    response["Cache-Control"] = "private, max-age=86400"
    return response


# --- classes: edit, merge, split, history ----------------------------------------------


def _class_rows(counts, edit: dict | None) -> list[dict]:
    """The class table's rows; the row just refused shows what was typed and why."""
    rows = []
    for row in counts.per_class:
        c = row.label_class
        values = {
            "name": c.name,
            "color": c.color,
            "key": c.key,
            "order": c.order,
            "is_active": c.is_active,
            "parent": str(c.parent_id or ""),
        }
        errors: list[str] = []
        if edit and edit["class_id"] == c.pk:
            values, errors = edit["values"], edit["errors"]
        rows.append({"label_class": c, "count": row.count, "values": values, "errors": errors})
    return rows


def _classes_context(
    request: HttpRequest,
    project: Project,
    *,
    edit: dict | None = None,
    merge_form: dict | None = None,
    split_form: dict | None = None,
    undo: dict | None = None,
) -> dict:
    counts = selectors.project_counts(project=project)
    return {
        "project": project,
        "can_edit": access.role_of(user=request.user, project=project) in access.CURATORS,
        "classes": selectors.label_class_list(project=project),
        "counts": counts,
        "rows": _class_rows(counts, edit),
        "merges": selectors.class_merge_list(project=project)[:20],
        "splits": selectors.class_split_open(project=project).select_related("source"),
        "merge_form": merge_form or {"values": {"name": "", "classes": []}, "errors": []},
        "split_form": split_form or {"values": {"label_class": "", "names": ""}, "errors": []},
        "undo": undo or {"merge_id": None, "errors": []},
    }


def _classes_render(request: HttpRequest, project: Project, *, status: int = 200, **forms):
    template = _partial(request, "labeling/classes.html", "classes-content")
    return render(request, template, _classes_context(request, project, **forms), status=status)


def _classes_done(request: HttpRequest, project: Project, success: str) -> HttpResponse:
    messages.success(request, success)
    if request.htmx:
        return _classes_render(request, project)
    return redirect("labeling:classes", project_id=project.pk)


@login_required
@require_GET
def classes_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id)
    return render(request, "labeling/classes.html", _classes_context(request, project))


@login_required
@require_POST
def class_update(request: HttpRequest, project_id: int, class_id: int) -> HttpResponse:
    label_class = access.label_class_access(
        user=request.user, project_id=project_id, class_id=class_id, roles=access.CURATORS
    )
    project = label_class.project
    form = LabelClassEditForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(error_messages(form))
        changes = dict(form.cleaned_data)
        parent_id = changes.pop("parent")
        parent = None
        if parent_id:
            parent = access.label_class_access(
                user=request.user, project_id=project_id, class_id=parent_id
            )
        label_class = services.label_class_update(
            label_class=label_class, actor=request.user, parent=parent, **changes
        )
    except ValidationError as error:
        typed = {
            "name": request.POST.get("name", ""),
            "color": request.POST.get("color", ""),
            "key": request.POST.get("key", ""),
            "order": request.POST.get("order", ""),
            "is_active": "is_active" in request.POST,
            "parent": request.POST.get("parent", ""),
        }
        edit = {"class_id": label_class.pk, "values": typed, "errors": error.messages}
        return _classes_render(request, project, status=400, edit=edit)
    return _classes_done(request, project, f"Saved {label_class.name}.")


@login_required
@require_POST
def classes_merge(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    form = MergeForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(error_messages(form))
        classes = [
            access.label_class_access(user=request.user, project_id=project_id, class_id=pk)
            for pk in form.cleaned_data["classes"]
        ]
        merge = services.label_class_merge(
            project=project, classes=classes, name=form.cleaned_data["name"], actor=request.user
        )
    except ValidationError as error:
        typed = {"name": request.POST.get("name", ""), "classes": request.POST.getlist("classes")}
        merge_form = {"values": typed, "errors": error.messages}
        return _classes_render(request, project, status=400, merge_form=merge_form)
    return _classes_done(
        request, project, f"Merged into {merge.target.name}; a trained model retrains on its own."
    )


@login_required
@require_POST
def merge_undo(request: HttpRequest, project_id: int, merge_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    merge = selectors.class_merge_list(project=project).filter(pk=merge_id).first()
    if merge is None:
        raise Http404("No such merge.")
    try:
        restored = services.label_class_merge_undo(merge=merge, actor=request.user)
    except ValidationError as error:
        undo = {"merge_id": merge.pk, "errors": error.messages}
        return _classes_render(request, project, status=400, undo=undo)
    return _classes_done(request, project, f"Merge undone: {restored} labels restored.")


@login_required
@require_POST
def split_start(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    form = SplitStartForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(error_messages(form))
        label_class = access.label_class_access(
            user=request.user, project_id=project_id, class_id=form.cleaned_data["label_class"]
        )
        split = services.label_class_split_start(
            label_class=label_class,
            names=form.cleaned_data["names"].split(","),
            actor=request.user,
        )
    except ValidationError as error:
        typed = {
            "label_class": request.POST.get("label_class", ""),
            "names": request.POST.get("names", ""),
        }
        split_form = {"values": typed, "errors": error.messages}
        return _classes_render(request, project, status=400, split_form=split_form)
    messages.success(request, "Label a few images of each new class, then ask for suggestions.")
    url = reverse("models_app:split", kwargs={"project_id": project_id, "split_id": split.pk})
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


# --- the taxonomy history ----------------------------------------------------------------

_FIELD_WORDS = {
    "name": "name",
    "color": "colour",
    "key": "key",
    "order": "order",
    "is_active": "active",
    "parent": "parent",
}


def _history_value(field: str, value, names: dict[int, str]) -> str:
    if value is None or value == "":
        return "none"
    if field == "parent":
        return repr(names[value]) if value in names else "a deleted class"
    if field == "is_active":
        return "yes" if value else "no"
    return repr(value)


def _history_summary(change: TaxonomyChange, names: dict[int, str]) -> str:
    """A class change in words: the log stores a parent as a class id, so the text is
    rebuilt from the stored details with the names of the classes."""
    changes = change.details.get("changes") if change.kind == TaxonomyChange.Kind.UPDATE else None
    if not isinstance(changes, dict) or not changes:
        return change.summary
    # The summary starts with the class's name at the time ("Class 'cat': ").
    starts = [
        change.summary.find(f": {field} {old!r} → ")
        for field, (old, _new) in changes.items()
        if f": {field} {old!r} → " in change.summary
    ]
    if starts:
        prefix = change.summary[: min(starts) + 2]
    else:
        name = names.get(change.details.get("class"))
        prefix = f"Class {name!r}: " if name else "Class: "
    order = list(_FIELD_WORDS)
    parts = [
        f"{_FIELD_WORDS.get(field, field)} {_history_value(field, old, names)}"
        f" → {_history_value(field, new, names)}"
        for field, (old, new) in sorted(
            changes.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99
        )
    ]
    return prefix + ", ".join(parts) + "."


@login_required
@require_GET
def taxonomy_history(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id)
    page = Paginator(selectors.taxonomy_change_list(project=project), 100).get_page(
        request.GET.get("page")
    )
    names = {c.pk: c.name for c in selectors.label_class_list(project=project)}
    rows = [(change, _history_summary(change, names)) for change in page]
    return render(
        request, "labeling/class_history.html", {"project": project, "page": page, "rows": rows}
    )
