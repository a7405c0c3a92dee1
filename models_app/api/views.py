"""REST API v1 for model versions and retraining."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import access
from labeling.api.views import SplitOutput, split_access, split_output
from models_app import selectors, services
from models_app.models import ModelVersion


class ModelVersionOutput(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "number",
            "status",
            "is_active",
            "trigger",
            "backbone",
            "head_kind",
            "progress",
            "class_ids",
            "label_counts",
            "labels_total",
            "metrics",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
        ]


class ModelVersionListApi(APIView):
    @extend_schema(responses=ModelVersionOutput(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project = access.project_access(user=request.user, project_id=project_id)
        versions = selectors.model_version_list(project=project)
        return Response(ModelVersionOutput(versions, many=True).data)


class RetrainApi(APIView):
    @extend_schema(
        request=None,
        responses={202: ModelVersionOutput},
        description="Queue a training run (or return the one already queued or running).",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.CURATORS
        )
        version = services.model_version_request(
            project=project, trigger=ModelVersion.Trigger.API, user=request.user
        )
        return Response(ModelVersionOutput(version).data, status=status.HTTP_202_ACCEPTED)


class SplitSuggestApi(APIView):
    @extend_schema(
        request=None,
        responses=SplitOutput,
        description="Suggest a new class for every undecided image of the split class, "
        "from a head trained on the expert's choices (one per new class at least).",
    )
    def post(self, request: Request, project_id: int, split_id: int) -> Response:
        split = split_access(user=request.user, project_id=project_id, split_id=split_id)
        services.split_suggest(split=split)
        return Response(split_output(split))
