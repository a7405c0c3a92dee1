"""A project's webhooks page, for its owners: add, edit, delete, ping, and the recent
deliveries with every attempt."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from labeling import access, selectors, services
from labeling.forms import WebhookEditForm, WebhookForm
from labeling.models import Project, Webhook
from labeling.views.responses import form_errors, partial

TEMPLATE = "labeling/webhooks.html"
RECENT_DELIVERIES = 30


def _edit_form(webhook: Webhook) -> WebhookEditForm:
    return WebhookEditForm(
        initial={
            "url": webhook.url,
            "events": webhook.events,
            "is_active": webhook.is_active,
            "description": webhook.description,
        },
        prefix=f"hook{webhook.pk}",
    )


def _context(project: Project, *, create_form=None, edited=None, **extra) -> dict:
    webhooks = list(selectors.webhook_list(project=project))
    for webhook in webhooks:
        webhook.form = edited if edited is not None and edited.webhook_id == webhook.pk else None
        webhook.form = webhook.form or _edit_form(webhook)
    return {
        "project": project,
        "webhooks": webhooks,
        "deliveries": selectors.webhook_deliveries(project=project)[:RECENT_DELIVERIES],
        "form": create_form or WebhookForm(initial={"is_active": True}),
        "new_secret": None,
        **extra,
    }


def _render(request: HttpRequest, context: dict, status: int = 200) -> HttpResponse:
    return render(request, partial(request, TEMPLATE, "webhooks-body"), context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def webhooks_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = access.project_access(user=request.user, project_id=project_id, roles=access.OWNERS)
    if request.method == "GET":
        return render(request, TEMPLATE, _context(project))
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            webhook = services.webhook_create(
                project=project, user=request.user, **form.cleaned_data
            )
        except ValidationError as error:
            form_errors(form, error)
        else:
            # The only time the secret is shown in full.
            return _render(request, _context(project, new_secret=webhook))
    return _render(request, _context(project, create_form=form), status=400)


@login_required
@require_POST
def webhook_update(request: HttpRequest, project_id: int, webhook_id: int) -> HttpResponse:
    webhook = access.webhook_access(user=request.user, project_id=project_id, webhook_id=webhook_id)
    form = WebhookEditForm(request.POST, prefix=f"hook{webhook.pk}")
    form.webhook_id = webhook.pk
    if form.is_valid():
        try:
            webhook = services.webhook_update(webhook=webhook, **form.cleaned_data)
        except ValidationError as error:
            form_errors(form, error)
        else:
            rotated = form.cleaned_data["rotate_secret"]
            messages.success(request, f"Webhook {webhook.pk} saved.")
            return _render(
                request, _context(webhook.project, new_secret=webhook if rotated else None)
            )
    return _render(request, _context(webhook.project, edited=form), status=400)


@login_required
@require_POST
def webhook_delete(request: HttpRequest, project_id: int, webhook_id: int) -> HttpResponse:
    webhook = access.webhook_access(user=request.user, project_id=project_id, webhook_id=webhook_id)
    services.webhook_delete(webhook=webhook)
    messages.success(request, f"Webhook {webhook_id} deleted, with its deliveries.")
    return _render(request, _context(webhook.project))


@login_required
@require_POST
def webhook_ping(request: HttpRequest, project_id: int, webhook_id: int) -> HttpResponse:
    webhook = access.webhook_access(user=request.user, project_id=project_id, webhook_id=webhook_id)
    services.webhook_ping(webhook=webhook)
    messages.success(
        request, f"Ping queued for {webhook.url}: the worker sends it; reload to see the answer."
    )
    return _render(request, _context(webhook.project))
