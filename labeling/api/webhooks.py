"""REST API of a project's webhooks, for its owners (members of other roles get 403,
everyone else 404). The secret is in the answer that creates it (or makes a new one)
and nowhere else."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.pagination import Pagination, paginated
from labeling import access, selectors, services
from labeling.api.serializers import validated
from labeling.models import Webhook, WebhookAttempt, WebhookDelivery

EVENTS_HELP = "Any of: " + ", ".join(Webhook.Event.values)


class WebhookOutput(serializers.ModelSerializer):
    secret_hint = serializers.CharField(help_text="The secret's first and last characters.")

    class Meta:
        model = Webhook
        fields = [
            "id",
            "url",
            "events",
            "is_active",
            "description",
            "secret_hint",
            "created_at",
            "updated_at",
        ]


class WebhookWithSecretOutput(WebhookOutput):
    secret = serializers.CharField(help_text="Shown in this answer only: keep it.")

    class Meta(WebhookOutput.Meta):
        fields = [*WebhookOutput.Meta.fields, "secret"]


class WebhookInput(serializers.Serializer):
    # Checked by the service, whose messages say what to write.
    url = serializers.CharField(max_length=2000, allow_blank=True, trim_whitespace=False)
    events = serializers.ListField(child=serializers.CharField(), help_text=EVENTS_HELP)
    is_active = serializers.BooleanField(default=True)
    description = serializers.CharField(max_length=200, required=False, default="")


class WebhookUpdateInput(serializers.Serializer):
    url = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, trim_whitespace=False
    )
    events = serializers.ListField(
        child=serializers.CharField(), required=False, help_text=EVENTS_HELP
    )
    is_active = serializers.BooleanField(required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    rotate_secret = serializers.BooleanField(
        required=False, default=False, help_text="Make a new secret (in this answer only)."
    )


class AttemptOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "started_at", "duration_ms", "status_code", "error", "next_retry_at"]


class DeliveryOutput(serializers.ModelSerializer):
    delivery_id = serializers.UUIDField(source="uid")
    attempt_log = AttemptOutput(many=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "delivery_id",
            "webhook",
            "event",
            "status",
            "attempts",
            "status_code",
            "error",
            "next_attempt_at",
            "created_at",
            "finished_at",
            "attempt_log",
        ]


class WebhookListApi(APIView):
    @extend_schema(responses=WebhookOutput(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.OWNERS
        )
        return Response(WebhookOutput(selectors.webhook_list(project=project), many=True).data)

    @extend_schema(request=WebhookInput, responses={201: WebhookWithSecretOutput})
    def post(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.OWNERS
        )
        webhook = services.webhook_create(
            project=project, user=request.user, **validated(WebhookInput, request.data)
        )
        return Response(WebhookWithSecretOutput(webhook).data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(APIView):
    @extend_schema(responses=WebhookOutput)
    def get(self, request: Request, project_id: int, webhook_id: int) -> Response:
        webhook = access.webhook_access(
            user=request.user, project_id=project_id, webhook_id=webhook_id
        )
        return Response(WebhookOutput(webhook).data)

    @extend_schema(request=WebhookUpdateInput, responses=WebhookWithSecretOutput)
    def patch(self, request: Request, project_id: int, webhook_id: int) -> Response:
        webhook = access.webhook_access(
            user=request.user, project_id=project_id, webhook_id=webhook_id
        )
        changes = validated(WebhookUpdateInput, request.data)
        webhook = services.webhook_update(webhook=webhook, **changes)
        output = WebhookWithSecretOutput if changes["rotate_secret"] else WebhookOutput
        return Response(output(webhook).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, project_id: int, webhook_id: int) -> Response:
        webhook = access.webhook_access(
            user=request.user, project_id=project_id, webhook_id=webhook_id
        )
        services.webhook_delete(webhook=webhook)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookPingApi(APIView):
    @extend_schema(request=None, responses={202: DeliveryOutput})
    def post(self, request: Request, project_id: int, webhook_id: int) -> Response:
        webhook = access.webhook_access(
            user=request.user, project_id=project_id, webhook_id=webhook_id
        )
        delivery = services.webhook_ping(webhook=webhook)
        return Response(DeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryListApi(APIView):
    @extend_schema(responses=paginated(DeliveryOutput))
    def get(self, request: Request, project_id: int, webhook_id: int) -> Response:
        """The webhook's deliveries, newest first, each with every attempt."""
        webhook = access.webhook_access(
            user=request.user, project_id=project_id, webhook_id=webhook_id
        )
        paginator = Pagination()
        rows = selectors.webhook_deliveries(project=webhook.project, webhook=webhook)
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(DeliveryOutput(page, many=True).data)
