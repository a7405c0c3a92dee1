"""The REST API of verifying suggestions: the model's suggestions for a class, most
confident first, and a checked batch of them accepted or rejected."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.pagination import Pagination, paginated
from labeling import access, selectors, services
from labeling.api.serializers import ImageOutput, validated


class SuggestionsQuery(serializers.Serializer):
    label_class = serializers.IntegerField(min_value=1)


class SuggestionListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("label_class", int, required=True, description="A class id."),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int, description="At most 500."),
        ],
        responses=paginated(ImageOutput),
        description="Unlabeled images the active model suggests `label_class` for, most "
        "confident first (each with `confidence` and `suggested_by`, the version), less "
        "those another annotator's labeling page holds.",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = access.project_access(user=request.user, project_id=project_id)
        query = validated(SuggestionsQuery, request.query_params)
        label_class = access.label_class_access(
            user=request.user, project_id=project_id, class_id=query["label_class"]
        )
        images = selectors.suggestion_list(
            project=project, label_class=label_class, user=request.user
        )
        paginator = Pagination()
        page = paginator.paginate_queryset(images, request, view=self)
        return paginator.get_paginated_response(
            ImageOutput(page, many=True, context={"request": request}).data
        )


def _ids() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.IntegerField(min_value=1), default=list, max_length=services.VERIFY_MAX
    )


class VerifyInput(serializers.Serializer):
    label_class = serializers.IntegerField(min_value=1)
    accepted = _ids()
    rejected = _ids()


class VerifyOutput(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Labeled with the class.")
    rejected = serializers.IntegerField(help_text="Recorded as not of it, back in the queue.")
    skipped = serializers.IntegerField(help_text="Labeled or removed meanwhile: left as is.")


class VerifyApi(APIView):
    @extend_schema(
        request=VerifyInput,
        responses=VerifyOutput,
        description="Accept the suggestion of `label_class` for the `accepted` images (a "
        "label with origin `verified`, the suggestion's version and confidence) and reject "
        "it for the `rejected` ones (they are recorded as not of it and get their next most "
        f"likely class), all or nothing; at most {services.VERIFY_MAX} images in all.",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.LABELERS
        )
        data = validated(VerifyInput, request.data)
        label_class = access.label_class_access(
            user=request.user, project_id=project_id, class_id=data["label_class"]
        )
        result = services.suggestions_verify(
            project=project,
            label_class=label_class,
            accepted_ids=data["accepted"],
            rejected_ids=data["rejected"],
            annotator=request.user,
        )
        return Response(VerifyOutput(result).data)
