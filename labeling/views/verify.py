"""Verify, don't label: a page of the model's suggestions for one class, most confident
first; the person unticks the wrong ones and accepts the rest with one key."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from labeling import access, selectors, services
from labeling.forms import VerifyForm, error_messages
from labeling.models import Project
from labeling.views.responses import error_message, partial

VERIFY_PAGE_SIZE = 48


def _context(request: HttpRequest, project: Project, chosen: str) -> dict:
    classes = list(selectors.label_class_list(project=project, active_only=True))
    counts = selectors.suggestion_counts(project=project, user=request.user)
    rows = [(c, counts.get(c.pk, 0)) for c in classes]
    label_class = next((c for c in classes if str(c.pk) == chosen), None)
    if label_class is None and any(n for _, n in rows):
        # The class with the most suggestions waiting, so the page opens on work.
        label_class = max(rows, key=lambda row: row[1])[0]
    images = []
    if label_class is not None:
        waiting = selectors.suggestion_list(
            project=project, label_class=label_class, user=request.user
        )
        images = list(waiting[:VERIFY_PAGE_SIZE])
    return {
        "project": project,
        "rows": rows,
        "label_class": label_class,
        "images": images,
        "waiting": counts.get(label_class.pk, 0) if label_class else 0,
        "total_waiting": sum(counts.values()),
        "counts": selectors.project_counts(project=project),
    }


def _render(request: HttpRequest, project: Project, chosen: str, status: int = 200) -> HttpResponse:
    template = partial(request, "labeling/verify.html", "verify-panel")
    return render(request, template, _context(request, project, chosen), status=status)


@login_required
@require_GET
def verify_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.LABELERS)
    return _render(request, project, request.GET.get("class", ""))


@login_required
@require_POST
def verify_accept(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.LABELERS)
    form = VerifyForm(request.POST)
    status = 400
    if not form.is_valid():
        messages.error(request, " ".join(error_messages(form)))
        return _render(request, project, request.POST.get("label_class", ""), status)
    try:
        label_class = access.label_class_access(
            user=request.user, project_id=project_id, class_id=form.cleaned_data["label_class"]
        )
        result = services.suggestions_verify(
            project=project,
            label_class=label_class,
            accepted_ids=form.cleaned_data["accepted"],
            rejected_ids=form.cleaned_data["rejected"],
            annotator=request.user,
        )
    except ValidationError as error:
        messages.error(request, error_message(error))
    else:
        status = 200
        text = f"Accepted {result.accepted} as {label_class.name}; "
        text += f"{result.rejected} back to the queue."
        if result.skipped:
            text += (
                f" {result.skipped} were labeled by someone else meanwhile and left as they are."
            )
        messages.success(request, text)
    return _render(request, project, str(form.cleaned_data["label_class"]), status)
