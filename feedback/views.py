"""HTML pages of the feedback loop: predict and confirm or correct, and the review."""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget

from feedback import charts, selectors, services
from feedback.access import prediction_access
from labeling import access
from labeling import selectors as labeling_selectors
from labeling.models import LabelClass, Project
from models_app import selectors as learner_selectors

RECENT = 30
REVIEW_PAGE = 50


def _class_from(request: HttpRequest, project: Project) -> LabelClass | None:
    class_id = request.POST.get("label_class", "")
    if not class_id:
        return None
    if not class_id.isdigit():
        raise ValidationError("Choose a class of this project.")
    return access.label_class_access(
        user=request.user, project_id=project.pk, class_id=int(class_id)
    )


def _tags_from(request: HttpRequest) -> list[str] | None:
    """The tags ticked present on the page's form (which starts with the predicted ones
    ticked, so Enter after changing a tick saves the change, as on the labeling page);
    None (as predicted) for a bare "Confirm" without the form. The service checks the
    ids."""
    if request.POST.get("ticked") or request.POST.get("decision") != "confirm":
        return request.POST.getlist("present")
    return None


def _tag_from(request: HttpRequest, project: Project) -> LabelClass | None:
    tag_id = request.POST.get("tag", "")
    if not tag_id:
        return None
    if not tag_id.isdigit():
        raise ValidationError("Choose a tag of this project.")
    return access.label_class_access(user=request.user, project_id=project.pk, class_id=int(tag_id))


def _predict_context(request: HttpRequest, project: Project, **extra) -> dict:
    # Computed only where the template shows them (the whole page, not a card's partial).
    report = functools.cache(lambda: selectors.monitoring_report(project=project))
    return {
        "monitoring": report,
        "monitoring_chart": functools.cache(
            lambda: charts.monitoring_svg(report()) if report().weeks else ""
        ),
        "project": project,
        "role": access.role_of(user=request.user, project=project),
        "classes": labeling_selectors.label_class_list(project=project, active_only=True),
        "all_classes": labeling_selectors.label_class_list(project=project),
        "active": learner_selectors.model_version_active(project=project),
        "settings": services.feedback_settings(project=project),
        "in_use": selectors.accuracy_in_use(project=project),
        "recent": selectors.prediction_list(project=project)[:RECENT],
        "predict_errors": [],
        "threshold_typed": None,
        "threshold_errors": [],
        **extra,
    }


@login_required
@require_http_methods(["GET", "POST"])
def predict_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id)
    if request.method == "GET":
        return render(request, "feedback/predict.html", _predict_context(request, project))
    files = request.FILES.getlist("files")
    try:
        if not files:
            raise ValidationError("Choose one or more images.")
        batch = services.predictions_request(project=project, files=files, user=request.user)
    except ValidationError as error:
        if request.htmx:
            # Beside the form, which keeps the files chosen.
            context = {"predict_errors": error.messages}
            response = render(request, "feedback/predict.html#predict-errors", context, status=400)
            return reswap(retarget(response, "#predict-errors"), "outerHTML")
        context = _predict_context(request, project, predict_errors=error.messages)
        return render(request, "feedback/predict.html", context, status=400)
    results = selectors.predictions_wait(
        prediction_ids=[p.pk for p in batch.predictions],
        timeout=settings.FEEDBACK["PREDICT_WAIT_SECONDS"],
    )
    context = _predict_context(request, project, results=results, files=batch.files)
    template = "feedback/predict.html#results" if request.htmx else "feedback/predict.html"
    return render(request, template, context)


@login_required
@require_POST
def prediction_resolve(request: HttpRequest, project_id: int, prediction_id: int) -> HttpResponse:
    prediction = prediction_access(
        user=request.user, project_id=project_id, prediction_id=prediction_id
    )
    project = prediction.project
    status = 200
    try:
        if project.kind == Project.Kind.MULTI:
            decision = {"present": _tags_from(request)}
        else:
            decision = {"label_class": _class_from(request, project)}
        prediction = services.prediction_resolve(
            prediction=prediction, user=request.user, **decision
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        status = 400
    if not request.htmx:
        return redirect("feedback:predict", project_id=project.pk)
    context = _predict_context(request, project, prediction=prediction)
    return render(request, "feedback/predict.html#prediction-card", context, status=status)


@login_required
@require_POST
def settings_update(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    typed = request.POST.get("uncertain_below", "")
    try:
        percent = float(typed)
        services.feedback_settings_update(project=project, uncertain_below=percent / 100)
    except (ValueError, ValidationError):
        errors = ["The threshold is a number of percent, from 0 to 100."]
        if not request.htmx:
            messages.error(request, errors[0])
            return redirect("feedback:predict", project_id=project.pk)
        context = _predict_context(request, project, threshold_typed=typed, threshold_errors=errors)
        return render(request, "feedback/predict.html#threshold-form", context, status=400)
    messages.success(request, f"Predictions under {percent:g}% now enter the queue.")
    if not request.htmx:
        return redirect("feedback:predict", project_id=project.pk)
    return render(
        request, "feedback/predict.html#threshold-form", _predict_context(request, project)
    )


def _review_context(request: HttpRequest, project: Project, **extra) -> dict:
    if project.kind == Project.Kind.MULTI:
        mistakes = selectors.tag_mistakes_list(project=project)
    else:
        mistakes = selectors.mistakes_list(project=project)
    return {
        "project": project,
        "classes": labeling_selectors.label_class_list(project=project, active_only=True),
        "all_classes": labeling_selectors.label_class_list(project=project),
        "scan": selectors.review_scan_latest(project=project),
        "mistakes": mistakes[:REVIEW_PAGE],
        "mistakes_total": mistakes.count(),
        "corrected": selectors.corrected_predictions(project=project)[:RECENT],
        "conflicts": selectors.duplicate_conflicts(project=project),
        "leaks": selectors.split_leaks(project=project),
        **extra,
    }


@login_required
@require_GET
def review_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    return render(request, "feedback/review.html", _review_context(request, project))


@login_required
@require_POST
def review_scan(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    services.review_scan_request(project=project, user=request.user)
    messages.success(request, "Scoring every label in the background; reload in a minute.")
    return redirect("feedback:review", project_id=project.pk)


@login_required
@require_POST
def review_decide(request: HttpRequest, project_id: int, image_id: int) -> HttpResponse:
    image = access.image_access(
        user=request.user, project_id=project_id, image_id=image_id, roles=access.CURATORS
    )
    refused = False
    try:
        image = services.review_decide(
            image=image,
            action=request.POST.get("action", ""),
            reviewer=request.user,
            label_class=_class_from(request, image.project),
            tag=_tag_from(request, image.project),
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        refused = True
    if not request.htmx:
        return redirect("feedback:review", project_id=project_id)
    context = _review_context(request, image.project, decided=image, refused=refused)
    status = 400 if refused else 200
    if image.project.kind == Project.Kind.MULTI:
        # The card again while the image still has disputed tags, else what it is now.
        context["score"] = (
            selectors.tag_mistakes_list(project=image.project).filter(image=image).first()
        )
        context["present_now"] = selectors.tags_present(image=image)
        return render(request, "feedback/review.html#tag-card", context, status=status)
    return render(request, "feedback/review.html#decided", context, status=status)
