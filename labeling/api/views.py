"""REST API v1 for the dataset. Views check access, call a service or selector, serialise."""

from __future__ import annotations

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.pagination import Pagination, paginated
from labeling import access, selectors, services
from labeling.api.serializers import (
    AnnotationOutput,
    FileResultOutput,
    ImageOutput,
    LabelClassOutput,
    NumberField,
    validated,
)
from labeling.models import ClassSplit, Image, Membership, Project
from labeling.views import file_response


class ProjectOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    kind = serializers.CharField()
    created_at = serializers.DateTimeField()


class ProjectInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(
        choices=Project.Kind.choices,
        default=Project.Kind.SINGLE,
        help_text="single: one class per image; multi: any number of tags per image. Fixed.",
    )


class ProjectListApi(APIView):
    @extend_schema(responses=ProjectOutput(many=True))
    def get(self, request: Request) -> Response:
        projects = selectors.project_list(user=request.user)
        return Response(ProjectOutput(projects, many=True).data)

    @extend_schema(request=ProjectInput, responses={201: ProjectOutput})
    def post(self, request: Request) -> Response:
        data = validated(ProjectInput, request.data)
        project = services.project_create(user=request.user, **data)
        return Response(ProjectOutput(project).data, status=status.HTTP_201_CREATED)


class ProjectUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.CharField(required=False, help_text="Fixed: refused if sent.")

    def validate_kind(self, value):
        raise serializers.ValidationError("A project's kind is fixed when it is created.")


class ProjectDetailApi(APIView):
    @extend_schema(responses=ProjectOutput)
    def get(self, request: Request, project_id: int) -> Response:
        project = access.project_access(user=request.user, project_id=project_id)
        return Response(ProjectOutput(project).data)

    @extend_schema(request=ProjectUpdateInput, responses=ProjectOutput)
    def patch(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.OWNERS
        )
        project = services.project_update(
            project=project, **validated(ProjectUpdateInput, request.data)
        )
        return Response(ProjectOutput(project).data)


class MemberOutput(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class MemberInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class MemberListApi(APIView):
    @extend_schema(responses=MemberOutput(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project = access.project_access(user=request.user, project_id=project_id)
        return Response(MemberOutput(selectors.membership_list(project=project), many=True).data)

    @extend_schema(request=MemberInput, responses={201: MemberOutput})
    def post(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.OWNERS
        )
        membership = services.membership_set(
            project=project, **validated(MemberInput, request.data)
        )
        return Response(MemberOutput(membership).data, status=status.HTTP_201_CREATED)


class MemberRoleInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class MemberDetailApi(APIView):
    @extend_schema(request=MemberRoleInput, responses=MemberOutput)
    def patch(self, request: Request, project_id: int, member_id: int) -> Response:
        membership = access.membership_access(
            user=request.user, project_id=project_id, membership_id=member_id
        )
        membership = services.membership_set(
            project=membership.project,
            username=membership.user.username,
            **validated(MemberRoleInput, request.data),
        )
        return Response(MemberOutput(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, project_id: int, member_id: int) -> Response:
        membership = access.membership_access(
            user=request.user, project_id=project_id, membership_id=member_id
        )
        services.membership_remove(membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ClassInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False)
    key = serializers.RegexField(r"^[0-9a-zA-Z]$", required=False)


class ClassListApi(APIView):
    @extend_schema(responses=LabelClassOutput(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project = access.project_access(user=request.user, project_id=project_id)
        classes = selectors.label_class_list(project=project)
        return Response(LabelClassOutput(classes, many=True).data)

    @extend_schema(request=ClassInput, responses={201: LabelClassOutput})
    def post(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.CURATORS
        )
        label_class = services.label_class_create(
            project=project, actor=request.user, **validated(ClassInput, request.data)
        )
        return Response(LabelClassOutput(label_class).data, status=status.HTTP_201_CREATED)


class ClassUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False)
    key = serializers.RegexField(r"^[0-9a-zA-Z]?$", required=False, allow_blank=True)
    order = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False)
    is_active = serializers.BooleanField(required=False)
    parent = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, help_text="A class id, or null."
    )


class ClassDetailApi(APIView):
    @extend_schema(responses=LabelClassOutput)
    def get(self, request: Request, project_id: int, class_id: int) -> Response:
        label_class = access.label_class_access(
            user=request.user, project_id=project_id, class_id=class_id
        )
        return Response(LabelClassOutput(label_class).data)

    @extend_schema(request=ClassUpdateInput, responses=LabelClassOutput)
    def patch(self, request: Request, project_id: int, class_id: int) -> Response:
        label_class = access.label_class_access(
            user=request.user, project_id=project_id, class_id=class_id, roles=access.CURATORS
        )
        changes = validated(ClassUpdateInput, request.data)
        if changes.get("parent"):
            changes["parent"] = access.label_class_access(
                user=request.user, project_id=project_id, class_id=changes["parent"]
            )
        label_class = services.label_class_update(
            label_class=label_class, actor=request.user, **changes
        )
        return Response(LabelClassOutput(label_class).data)


class TaxonomyChangeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    summary = serializers.CharField()
    details = serializers.JSONField()
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class TaxonomyHistoryApi(APIView):
    @extend_schema(
        responses=paginated(TaxonomyChangeOutput), operation_id="v1_projects_classes_history_list"
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = access.project_access(user=request.user, project_id=project_id)
        paginator = Pagination()
        page = paginator.paginate_queryset(
            selectors.taxonomy_change_list(project=project), request, view=self
        )
        return paginator.get_paginated_response(TaxonomyChangeOutput(page, many=True).data)


class MergeInput(serializers.Serializer):
    classes = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=2)
    name = serializers.CharField(max_length=100, help_text="One of theirs, or a new name.")


class MergeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    target = LabelClassOutput()
    source_ids = serializers.ListField(child=serializers.IntegerField())
    moved = serializers.IntegerField(source="moves.count")
    created_at = serializers.DateTimeField()
    undone_at = serializers.DateTimeField(allow_null=True)


class MergeApi(APIView):
    @extend_schema(request=MergeInput, responses={201: MergeOutput})
    def post(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.CURATORS
        )
        data = validated(MergeInput, request.data)
        classes = [
            access.label_class_access(user=request.user, project_id=project_id, class_id=pk)
            for pk in data["classes"]
        ]
        merge = services.label_class_merge(
            project=project, classes=classes, name=data["name"], actor=request.user
        )
        return Response(MergeOutput(merge).data, status=status.HTTP_201_CREATED)


class MergeUndoApi(APIView):
    @extend_schema(request=None, responses=MergeOutput)
    def post(self, request: Request, project_id: int, merge_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.CURATORS
        )
        merge = get_object_or_404(selectors.class_merge_list(project=project), pk=merge_id)
        services.label_class_merge_undo(merge=merge, actor=request.user)
        merge.refresh_from_db()
        return Response(MergeOutput(merge).data)


class SplitStartInput(serializers.Serializer):
    names = serializers.ListField(child=serializers.CharField(max_length=100), min_length=2)


class SplitOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    source = LabelClassOutput()
    targets = LabelClassOutput(many=True)
    images = serializers.IntegerField()
    decided = serializers.IntegerField()
    suggested = serializers.IntegerField()


def split_output(split) -> dict:
    progress = selectors.split_progress(split=split)
    return SplitOutput(
        {
            "id": split.pk,
            "status": split.status,
            "source": split.source,
            "targets": split.targets.all(),
            "images": progress.images,
            "decided": progress.decided,
            "suggested": progress.suggested,
        }
    ).data


def split_access(*, user, project_id: int, split_id: int):
    project = access.project_access(user=user, project_id=project_id, roles=access.CURATORS)
    return get_object_or_404(ClassSplit.objects.filter(project=project), pk=split_id)


class SplitStartApi(APIView):
    @extend_schema(request=SplitStartInput, responses={201: SplitOutput})
    def post(self, request: Request, project_id: int, class_id: int) -> Response:
        label_class = access.label_class_access(
            user=request.user, project_id=project_id, class_id=class_id, roles=access.CURATORS
        )
        split = services.label_class_split_start(
            label_class=label_class,
            names=validated(SplitStartInput, request.data)["names"],
            actor=request.user,
        )
        return Response(split_output(split), status=status.HTTP_201_CREATED)


class SplitDetailApi(APIView):
    @extend_schema(responses=SplitOutput)
    def get(self, request: Request, project_id: int, split_id: int) -> Response:
        split = split_access(user=request.user, project_id=project_id, split_id=split_id)
        return Response(split_output(split))


class SplitAssignInput(serializers.Serializer):
    images = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1)
    label_class = serializers.IntegerField(min_value=1)


class SplitAssignApi(APIView):
    @extend_schema(
        request=SplitAssignInput,
        responses=SplitOutput,
        description="The expert's choice of new class for images (seeds, or fixes).",
    )
    def post(self, request: Request, project_id: int, split_id: int) -> Response:
        split = split_access(user=request.user, project_id=project_id, split_id=split_id)
        data = validated(SplitAssignInput, request.data)
        label_class = access.label_class_access(
            user=request.user, project_id=project_id, class_id=data["label_class"]
        )
        services.split_assign(split=split, image_ids=data["images"], label_class=label_class)
        return Response(split_output(split))


class SplitAcceptInput(serializers.Serializer):
    min_confidence = NumberField(min_value=0.0, max_value=1.0, default=0.0)
    images = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, min_length=1
    )


class SplitAcceptApi(APIView):
    @extend_schema(request=SplitAcceptInput, responses=SplitOutput)
    def post(self, request: Request, project_id: int, split_id: int) -> Response:
        split = split_access(user=request.user, project_id=project_id, split_id=split_id)
        data = validated(SplitAcceptInput, request.data)
        services.split_accept(
            split=split, min_confidence=data["min_confidence"], image_ids=data.get("images")
        )
        return Response(split_output(split))


class SplitFinishApi(APIView):
    @extend_schema(request=None, responses=SplitOutput)
    def post(self, request: Request, project_id: int, split_id: int) -> Response:
        split = split_access(user=request.user, project_id=project_id, split_id=split_id)
        services.label_class_split_finish(split=split, actor=request.user)
        split.refresh_from_db()
        return Response(split_output(split))


class SplitCancelApi(APIView):
    @extend_schema(request=None, responses=SplitOutput)
    def post(self, request: Request, project_id: int, split_id: int) -> Response:
        split = split_access(user=request.user, project_id=project_id, split_id=split_id)
        services.label_class_split_cancel(split=split, actor=request.user)
        split.refresh_from_db()
        return Response(split_output(split))


class UploadInput(serializers.Serializer):
    # An empty file is refused by the ingest service, by name, like any other bad file:
    # a field error here would cost the whole batch its good files.
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True), allow_empty=False
    )


class UploadOutput(serializers.Serializer):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = FileResultOutput(many=True)


_image_filters = [
    OpenApiParameter("label", str, description='A class id, "labeled" or "unlabeled".'),
    OpenApiParameter("split", str, enum=Image.Split.values),
    OpenApiParameter("source", str, enum=Image.Source.values),
]


class ImageListApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        parameters=[
            *_image_filters,
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int, description="At most 500."),
        ],
        responses=paginated(ImageOutput),
        operation_id="v1_projects_images_list",
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = access.project_access(user=request.user, project_id=project_id)
        images = selectors.image_list(project=project, filters=request.query_params)
        paginator = Pagination()
        page = paginator.paginate_queryset(images, request, view=self)
        return paginator.get_paginated_response(
            ImageOutput(page, many=True, context={"request": request}).data
        )

    @extend_schema(
        request={"multipart/form-data": UploadInput},
        responses={
            201: UploadOutput,
            200: UploadOutput,
            400: OpenApiResponse(
                description="No file given (field errors), or every file refused (UploadOutput)."
            ),
        },
        description="Upload images or zips (folders are class names). Every file is "
        "reported on; good files are kept even when others in the batch are refused.",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.CURATORS
        )
        files = validated(UploadInput, {"files": request.FILES.getlist("files")})["files"]
        results = services.images_ingest(project=project, files=files, user=request.user)
        tally = {
            s: sum(r.status == s for r in results) for s in ("created", "duplicate", "rejected")
        }
        body = UploadOutput(
            {
                "created": tally["created"],
                "duplicates": tally["duplicate"],
                "rejected": tally["rejected"],
                "results": results,
            }
        ).data
        if tally["created"]:
            code = status.HTTP_201_CREATED
        elif tally["rejected"]:
            code = status.HTTP_400_BAD_REQUEST
        else:
            code = status.HTTP_200_OK
        return Response(body, status=code)


class ImageDetailApi(APIView):
    @extend_schema(responses=ImageOutput)
    def get(self, request: Request, project_id: int, image_id: int) -> Response:
        image = access.image_access(user=request.user, project_id=project_id, image_id=image_id)
        return Response(ImageOutput(image, context={"request": request}).data)


class ImageFileApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("variant", str, enum=["original", "thumbnail"])],
        responses={(200, "image/*"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request, project_id: int, image_id: int) -> FileResponse:
        image = access.image_access(user=request.user, project_id=project_id, image_id=image_id)
        variant = request.query_params.get("variant", "original")
        if variant not in ("original", "thumbnail"):
            raise serializers.ValidationError({"variant": 'Use "original" or "thumbnail".'})
        return file_response(image.thumbnail if variant == "thumbnail" else image.file)


class AnnotationInput(serializers.Serializer):
    label_class = serializers.IntegerField(min_value=1)


class AnnotationListApi(APIView):
    @extend_schema(responses=AnnotationOutput(many=True), description="Full label history.")
    def get(self, request: Request, project_id: int, image_id: int) -> Response:
        image = access.image_access(user=request.user, project_id=project_id, image_id=image_id)
        return Response(AnnotationOutput(selectors.annotation_history(image=image), many=True).data)

    @extend_schema(request=AnnotationInput, responses={201: AnnotationOutput})
    def post(self, request: Request, project_id: int, image_id: int) -> Response:
        image = access.image_access(
            user=request.user, project_id=project_id, image_id=image_id, roles=access.LABELERS
        )
        class_id = validated(AnnotationInput, request.data)["label_class"]
        label_class = access.label_class_access(
            user=request.user, project_id=project_id, class_id=class_id
        )
        annotation = services.annotation_create(
            image=image, label_class=label_class, annotator=request.user
        )
        return Response(AnnotationOutput(annotation).data, status=status.HTTP_201_CREATED)


class AnnotationUndoApi(APIView):
    @extend_schema(
        request=None,
        responses={200: ImageOutput, 204: OpenApiResponse(description="Nothing to undo.")},
        description="Undo your newest label (or, in a multi-label project, your newest save "
        "of tags) still in force; returns the image it applied to.",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.LABELERS
        )
        image = services.label_undo_last(project=project, annotator=request.user)
        if image is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ImageOutput(image, context={"request": request}).data)


class QueueNextApi(APIView):
    @extend_schema(
        request=None,
        responses={200: ImageOutput, 204: OpenApiResponse(description="The queue is empty.")},
        description="Reserve the next image to label for the caller (for a few minutes).",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.LABELERS
        )
        images = services.queue_reserve(project=project, user=request.user, count=1)
        if not images:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ImageOutput(images[0], context={"request": request}).data)
