"""The model dashboard, the Retrain button and the learner's status partial."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling import access
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import ClassSplit, LabelClass
from models_app import archive, charts, export_views, selectors, services
from models_app.api.views import export_response
from models_app.models import LearnerSettings, ModelVersion

TEMPLATE = "models_app/dashboard.html"


def _status_context(request: HttpRequest, project) -> dict:
    role = access.role_of(user=request.user, project=project)
    return {
        "project": project,
        "is_owner": role == access.Role.OWNER,
        "status": selectors.learner_status(project=project),
        "can_retrain": role in access.CURATORS,
        "imported_model_missing": archive.imported_model_missing(project=project),
    }


def _dashboard_context(request: HttpRequest, project, settings_form=None) -> dict:
    """Everything the dashboard shows; a refused settings form is shown with its errors
    on the same full page (not on one stripped of the versions and metrics)."""
    context = _status_context(request, project)
    active = context["status"].active
    if active and active.is_multi_label:
        names = selectors.class_names(version=active)
        test = active.metrics.get("test") or {}
        context["per_tag"] = list(zip(names, test.get("tags", []), strict=False))
        untrainable = selectors.class_names_of(class_ids=active.metrics.get("untrainable", []))
        context["untrainable_tags"] = untrainable
    elif active and active.metrics.get("test"):
        names = selectors.class_names(version=active)
        context["class_names"] = names
        per_class = active.metrics["test"]["per_class"]
        context["per_class"] = zip(names, per_class, strict=True)
        # Macro-F1 is over the classes the test split holds: say which it lacks, whose
        # rows have no recall or F1 (the table showed 0.00 beside a higher mean).
        context["absent_classes"] = [
            n for n, row in zip(names, per_class, strict=True) if not row["support"]
        ]
        context["confusion_svg"] = charts.confusion_svg(active.metrics["test"]["confusion"], names)
    if active and not active.is_multi_label:
        context["merge_hints"] = selectors.merge_hints(version=active)
        parents = active.metrics.get("test_parents")
        if parents:
            names = selectors.class_names_of(class_ids=parents["classes"])
            context["parents"] = parents
            context["parent_confusion_svg"] = charts.confusion_svg(parents["confusion"], names)
    binary = selectors.binary_view(version=active)
    if binary:
        context["binary"] = binary
        if binary.curves:
            context["binary_svg"] = charts.binary_curves_svg(binary.curves, binary.positive)
    if active:
        context.update(export_views.export_context(request, active))
    context["thin_classes"] = selectors.thin_classes(project=project)
    points = selectors.learning_curve(project=project)
    if points:
        measure = "test mean AP" if project.kind == project.Kind.MULTI else "test accuracy"
        context["curve_svg"] = charts.learning_curve_svg(points, measure)
    context["versions"] = selectors.model_version_list(project=project)[:50]
    if settings_form is None:
        settings_form = LearnerSettingsForm(instance=services.learner_settings(project=project))
    context["settings_form"] = settings_form
    return context


@login_required
@require_GET
def dashboard(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id)
    return render(request, TEMPLATE, _dashboard_context(request, project))


class LearnerSettingsForm(forms.ModelForm):
    class Meta:
        model = LearnerSettings
        fields = ["strategy", "retrain_every", "head_kind", "fine_tune", "fine_tune_epochs"]
        labels = {
            "strategy": "Queue order",
            "retrain_every": "Retrain after N new labels",
            "head_kind": "Head",
            "fine_tune_epochs": "Fine-tuning epochs",
        }


@login_required
@require_POST
def settings_update(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.OWNERS)
    form = LearnerSettingsForm(request.POST, instance=services.learner_settings(project=project))
    if form.is_valid():
        services.learner_settings_update(project=project, **form.cleaned_data)
        messages.success(request, "Saved; the next version uses these settings.")
        return redirect("models_app:dashboard", project_id=project.pk)
    return render(request, TEMPLATE, _dashboard_context(request, project, form), status=400)


@login_required
@require_GET
def learner_status(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id)
    return render(request, f"{TEMPLATE}#learner-status", _status_context(request, project))


@login_required
@require_POST
def retrain(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    try:
        services.model_version_request(
            project=project, trigger=ModelVersion.Trigger.BUTTON, user=request.user
        )
    except ValidationError as error:
        context = {**_status_context(request, project), "retrain_error": " ".join(error.messages)}
        return render(request, f"{TEMPLATE}#learner-status", context, status=400)
    return render(request, f"{TEMPLATE}#learner-status", _status_context(request, project))


# --- class splits: seeds, suggestions, acceptance --------------------------------------

SPLIT_SHOWN = 300


def _split(request: HttpRequest, project_id: int, split_id: int) -> ClassSplit:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    split = ClassSplit.objects.filter(project=project, pk=split_id).select_related("source").first()
    if split is None:
        raise Http404("No such split.")
    return split


@login_required
@require_GET
def split_page(request: HttpRequest, project_id: int, split_id: int) -> HttpResponse:
    split = _split(request, project_id, split_id)
    assigned = labeling_selectors.split_assignment_list(split=split)
    unassigned = split.source_images().exclude(pk__in=assigned.values("image_id")).order_by("id")
    context = {
        "project": split.project,
        "split": split,
        "targets": list(split.targets.order_by("order", "id")),
        "progress": labeling_selectors.split_progress(split=split),
        "assigned": assigned[:SPLIT_SHOWN],
        "unassigned": unassigned[:SPLIT_SHOWN],
    }
    return render(request, "models_app/split.html", context)


def _split_step(request: HttpRequest, action, success: str) -> None:
    try:
        result = action()
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, success.format(result=result))


@login_required
@require_POST
def split_step(request: HttpRequest, project_id: int, split_id: int, step: str) -> HttpResponse:
    split = _split(request, project_id, split_id)
    if step == "assign":
        try:
            image_ids = [int(v) for v in request.POST.getlist("images")]
            target = split.targets.get(pk=int(request.POST.get("label_class", "")))
        except (ValueError, LabelClass.DoesNotExist):
            messages.error(request, "Select images and one of the new classes.")
        else:
            _split_step(
                request,
                lambda: labeling_services.split_assign(
                    split=split, image_ids=image_ids, label_class=target
                ),
                "{result} image(s) assigned.",
            )
    elif step == "suggest":
        _split_step(
            request, lambda: services.split_suggest(split=split), "{result} suggestions made."
        )
    elif step == "accept":
        try:
            minimum = float(request.POST.get("min_confidence", "0")) / 100
        except ValueError:
            minimum = -1.0
        _split_step(
            request,
            lambda: labeling_services.split_accept(split=split, min_confidence=minimum),
            "{result} suggestion(s) accepted.",
        )
    elif step == "finish":
        _split_step(
            request,
            lambda: labeling_services.label_class_split_finish(split=split, actor=request.user),
            "Split finished: {result[moved]} moved, {result[to_relabel]} to re-label first.",
        )
        return redirect("labeling:classes", project_id=project_id)
    elif step == "cancel":
        _split_step(
            request,
            lambda: labeling_services.label_class_split_cancel(split=split, actor=request.user),
            "Split cancelled.",
        )
        return redirect("labeling:classes", project_id=project_id)
    else:
        raise Http404("No such step.")
    return redirect("models_app:split", project_id=project_id, split_id=split_id)


# --- export and import -----------------------------------------------------------------


@login_required
@require_GET
def project_export(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    try:
        return export_response(project)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("labeling:project-detail", project_id=project.pk)


@login_required
@require_POST
def project_import(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose a zip that labelloop exported.")
        return redirect("labeling:project-list")
    try:
        project = archive.project_import(
            archive=upload, user=request.user, name=request.POST.get("name") or None
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("labeling:project-list")
    if archive.imported_model_missing(project=project):
        messages.warning(
            request,
            f"Imported {project.name}. Its model did not come with it: press Retrain on the "
            "Model page to train one from its labels.",
        )
    else:
        messages.success(request, f"Imported {project.name}.")
    return redirect("labeling:project-detail", project_id=project.pk)
