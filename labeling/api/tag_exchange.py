"""The REST API of a multi-label project's tags as a file: export (CSV or JSON lines)
and import of such a file, the same services as the project page."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import access, services
from labeling.api.serializers import validated
from labeling.views.tag_exchange import tags_file_response


class TagsExportApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("type", str, enum=["csv", "jsonl"], description="csv (default)")
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            400: OpenApiResponse(description="A single-label project, or an unknown type."),
        },
        description="Every active image with each tag's state: CSV with one column per tag "
        "(1 present, 0 absent, empty not looked at), or JSON lines "
        '{"image", "sha256", "split", "tags": {name: true/false}}. Any member.',
    )
    def get(self, request: Request, project_id: int):
        project = access.project_access(user=request.user, project_id=project_id)
        return tags_file_response(project, request.query_params.get("type", "csv"))


class TagsImportInput(serializers.Serializer):
    file = serializers.FileField(help_text="CSV or JSON lines as the export writes them.")


class TagsImportOutput(serializers.Serializer):
    images = serializers.IntegerField(help_text="Rows matched to an image of the project.")
    changed = serializers.IntegerField(help_text="Images with a tag state written.")
    rows = serializers.IntegerField(help_text="Tag states written.")
    tagged = serializers.IntegerField(help_text="Images that count as labeled now.")
    missing = serializers.IntegerField(help_text="Rows naming images not in the project.")
    missing_names = serializers.ListField(child=serializers.CharField())


class TagsImportApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": TagsImportInput},
        responses={
            200: TagsImportOutput,
            400: OpenApiResponse(description="The file refused, its bad lines listed."),
        },
        description="Set tags from a CSV or JSON lines file, all or nothing. Rows match "
        "images by sha256 (else by a unique file name); rows of images not in the project "
        "are counted and skipped. Owners and reviewers.",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.CURATORS
        )
        upload = validated(TagsImportInput, {"file": request.FILES.get("file")})["file"]
        result = services.project_tags_import(
            project=project, name=upload.name, content=upload.read(), user=request.user
        )
        return Response(asdict(result))
