"""REST API v1 for model versions and retraining."""

from __future__ import annotations

import tempfile

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import access
from labeling.api.views import SplitOutput, split_access, split_output
from models_app import archive, selectors, services
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
        responses={
            202: ModelVersionOutput,
            400: OpenApiResponse(
                description="Refused: the project cannot train yet (no classes, or training "
                "labels of fewer than two classes); the message says which."
            ),
        },
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


class ProjectExportApi(APIView):
    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
        description="The whole project as one zip: project.json (everything), labels.csv, "
        "coco.json and the images in ImageFolder layout.",
    )
    def get(self, request: Request, project_id: int) -> FileResponse:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.CURATORS
        )
        return export_response(project)


def export_response(project) -> FileResponse:
    out = tempfile.TemporaryFile()  # noqa: SIM115 - the FileResponse closes it
    archive.project_export(project=project, out=out)
    out.seek(0)
    return FileResponse(
        out,
        as_attachment=True,
        filename=f"project-{project.pk}.zip",
        content_type="application/zip",
    )


class ImportInput(serializers.Serializer):
    file = serializers.FileField()
    name = serializers.CharField(max_length=200, required=False)


class ImportOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ProjectImportApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": ImportInput},
        responses={201: ImportOutput},
        description="Create a project, owned by the caller, from a zip the export wrote.",
    )
    def post(self, request: Request) -> Response:
        serializer = ImportInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = archive.project_import(
            archive=serializer.validated_data["file"],
            user=request.user,
            name=serializer.validated_data.get("name"),
        )
        return Response(ImportOutput(project).data, status=status.HTTP_201_CREATED)
