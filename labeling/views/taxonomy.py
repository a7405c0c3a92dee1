"""Classes: edit, merge, split, and the taxonomy history."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from labeling import access, selectors, services
from labeling.forms import (
    LabelClassEditForm,
    MergeForm,
    SplitStartForm,
    error_messages,
)
from labeling.models import Project, TaxonomyChange
from labeling.views.responses import partial


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
    template = partial(request, "labeling/classes.html", "classes-content")
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
