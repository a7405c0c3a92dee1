"""REST API of the active model's monitoring in use (the predict page's figures)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedback import selectors
from labeling import access


class ShareOutput(serializers.Serializer):
    count = serializers.IntegerField()
    n = serializers.IntegerField()
    value = serializers.FloatField(allow_null=True)
    interval = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, help_text="95% Wilson interval."
    )
    few = serializers.BooleanField(help_text="Rests on fewer than 30 predictions.")


class WeekOutput(serializers.Serializer):
    start = serializers.DateField(help_text="The week's Monday.")
    predictions = serializers.IntegerField()
    few = serializers.BooleanField(help_text="Fewer than 30 predictions.")
    mean_confidence = serializers.FloatField()
    mean_confidence_interval = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, help_text="95% interval of the mean."
    )
    percentiles = serializers.ListField(
        child=serializers.FloatField(), help_text="Confidence at the 10/25/50/75/90th percentile."
    )
    histogram = serializers.ListField(
        child=serializers.IntegerField(), help_text="Predictions per tenth of confidence."
    )
    uncertain = ShareOutput(help_text="Predictions sent to the queue as uncertain.")
    accuracy = ShareOutput(help_text="Confirmed among those confirmed or corrected.")
    warnings = serializers.ListField(child=serializers.CharField())


class HeldOutOutput(serializers.Serializer):
    n = serializers.IntegerField()
    accuracy = serializers.FloatField()
    accuracy_interval = serializers.ListField(child=serializers.FloatField())
    calibration_error = serializers.FloatField()
    confidence_floor = serializers.FloatField(
        help_text="The least mean confidence the held-out figures lead one to expect."
    )


class MonitoringOutput(serializers.Serializer):
    model_version = serializers.IntegerField(source="version.number", allow_null=True, default=None)
    held_out = HeldOutOutput(allow_null=True)
    weeks = WeekOutput(many=True)
    warnings = serializers.ListField(
        child=serializers.CharField(), help_text="Every week's warnings, newest week first."
    )


class MonitoringApi(APIView):
    @extend_schema(responses=MonitoringOutput)
    def get(self, request: Request, project_id: int) -> Response:
        """The active version's predictions by week (the last 12): confidence, uncertain
        share, accuracy on confirmed or corrected ones, each with its count and 95%
        interval, and the warnings of docs/monitoring.md. Any member."""
        project = access.project_access(user=request.user, project_id=project_id)
        report = selectors.monitoring_report(project=project)
        return Response(MonitoringOutput(report).data)
