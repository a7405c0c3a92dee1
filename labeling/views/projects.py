"""Projects: the list, a project's page, its classes, members and uploads."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import (
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
    LabelClassForm,
    MemberForm,
    ProjectForm,
)
from labeling.models import LabelClass, Project
from labeling.views.responses import form_errors, partial


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(user=request.user, **form.cleaned_data)
            return redirect("labeling:project-detail", project_id=project.pk)
        except ValidationError as error:
            form_errors(form, error)
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
            form_errors(form, error)
    context = _project_context(request, project, class_form=form)
    status = 200 if not form.errors else 400
    template = partial(request, "labeling/project_detail.html", "class-section")
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
            form_errors(form, error)
    context = _project_context(request, project, member_form=form)
    template = partial(request, "labeling/project_detail.html", "member-section")
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
        template = partial(request, "labeling/project_detail.html", "member-section")
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
    template = partial(request, "labeling/project_detail.html", "upload-results")
    return render(request, template, context)
