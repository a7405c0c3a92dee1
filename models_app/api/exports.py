"""REST API v1 for exports of model versions: ask for one, poll it, download its files."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import access
from models_app.models import ModelExport
from models_app.services import exports


class ExportOutput(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.number")
    files = serializers.SerializerMethodField(
        help_text="Download URLs by kind (onnx, json, torchscript) once the export is ready."
    )

    class Meta:
        model = ModelExport
        fields = [
            "id",
            "version",
            "status",
            "progress",
            "error",
            "files",
            "onnx_bytes",
            "torchscript_bytes",
            "manifest",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_files(self, export: ModelExport) -> dict[str, str]:
        if export.status != ModelExport.Status.SUCCEEDED:
            return {}
        request = self.context.get("request")
        version = export.version
        urls = {}
        for kind in exports.EXPORT_FILES:
            url = reverse("api:model-export-file", args=[version.project_id, version.number, kind])
            urls[kind] = request.build_absolute_uri(url) if request else url
        return urls


class NotReady(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The export is not ready."
    default_code = "not_ready"


class ModelExportApi(APIView):
    @extend_schema(
        responses={200: ExportOutput, 404: OpenApiResponse(description="No export asked for.")},
        description="The export of a version (any member): its status while the worker "
        "builds it, its error if it failed, its files and JSON once ready.",
    )
    def get(self, request: Request, project_id: int, number: int) -> Response:
        version = exports.model_version_access(
            user=request.user, project_id=project_id, number=number
        )
        export = exports.model_export_of(version=version)
        if export is None:
            raise NotFound(f"No export of v{number} was asked for: POST to build one.")
        return Response(ExportOutput(export, context={"request": request}).data)

    @extend_schema(
        request=None,
        responses={
            202: ExportOutput,
            400: OpenApiResponse(description="Refused: the version cannot be exported."),
        },
        description="Build the version's export in the background (owners and reviewers); "
        "returns the export already ready or on its way, or starts a failed one over.",
    )
    def post(self, request: Request, project_id: int, number: int) -> Response:
        version = exports.model_version_access(
            user=request.user, project_id=project_id, number=number, roles=access.CURATORS
        )
        export = exports.model_export_request(version=version, user=request.user)
        data = ExportOutput(export, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED)


class ModelExportFileApi(APIView):
    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            409: OpenApiResponse(description="The export is not ready yet."),
        },
        operation_id="v1_projects_model_versions_export_file",
        description="One file of a ready export (any member): `onnx` (the model), `json` "
        "(what a caller needs: input, classes, thresholds, metrics) or `torchscript`.",
    )
    def get(self, request: Request, project_id: int, number: int, kind: str) -> FileResponse:
        version = exports.model_version_access(
            user=request.user, project_id=project_id, number=number
        )
        export = exports.model_export_of(version=version)
        if kind not in exports.EXPORT_FILES or export is None:
            raise NotFound("No such export file.")
        try:
            handle = exports.export_file_open(export=export, kind=kind)
        except ValidationError as error:
            raise NotReady(" ".join(error.messages)) from None
        return FileResponse(
            handle,
            as_attachment=True,
            filename=exports.export_file_name(export=export, kind=kind),
            content_type=exports.EXPORT_FILES[kind][2],
        )
