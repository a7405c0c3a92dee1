"""The model dashboard, the Retrain button and the learner's status partial."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling import access
from models_app import charts, selectors, services
from models_app.models import LearnerSettings, ModelVersion

TEMPLATE = "models_app/dashboard.html"


def _status_context(request: HttpRequest, project) -> dict:
    role = access.role_of(user=request.user, project=project)
    return {
        "project": project,
        "is_owner": role == access.Role.OWNER,
        "status": selectors.learner_status(project=project),
        "can_retrain": role in access.CURATORS,
    }


@login_required
@require_GET
def dashboard(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id)
    context = _status_context(request, project)
    active = context["status"].active
    if active and active.metrics.get("test"):
        names = selectors.class_names(version=active)
        context["class_names"] = names
        context["per_class"] = zip(names, active.metrics["test"]["per_class"], strict=True)
        context["confusion_svg"] = charts.confusion_svg(active.metrics["test"]["confusion"], names)
    points = selectors.learning_curve(project=project)
    if points:
        context["curve_svg"] = charts.learning_curve_svg(points)
    context["versions"] = selectors.model_version_list(project=project)[:50]
    context["settings_form"] = LearnerSettingsForm(
        instance=services.learner_settings(project=project)
    )
    return render(request, TEMPLATE, context)


class LearnerSettingsForm(forms.ModelForm):
    class Meta:
        model = LearnerSettings
        fields = ["strategy", "retrain_every", "head_kind", "fine_tune", "fine_tune_epochs"]


@login_required
@require_POST
def settings_update(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.OWNERS)
    form = LearnerSettingsForm(request.POST, instance=services.learner_settings(project=project))
    if form.is_valid():
        services.learner_settings_update(project=project, **form.cleaned_data)
        messages.success(request, "Saved; the next version uses these settings.")
        return redirect("models_app:dashboard", project_id=project.pk)
    context = _status_context(request, project)
    context["settings_form"] = form
    return render(request, TEMPLATE, context, status=400)


@login_required
@require_GET
def learner_status(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id)
    return render(request, f"{TEMPLATE}#learner-status", _status_context(request, project))


@login_required
@require_POST
def retrain(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.CURATORS)
    services.model_version_request(
        project=project, trigger=ModelVersion.Trigger.BUTTON, user=request.user
    )
    return render(request, f"{TEMPLATE}#learner-status", _status_context(request, project))
