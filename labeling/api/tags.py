"""The REST API of multi-label projects: an image's tags, and one tag set on many."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import access, selectors, services
from labeling.api.serializers import validated
from labeling.models import TagAnnotation


class TagStateOutput(serializers.Serializer):
    tag = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=TagAnnotation.State.choices)


class ImageTagsOutput(serializers.Serializer):
    image = serializers.IntegerField()
    tagged = serializers.BooleanField(help_text="Its tags were saved: it counts as labeled.")
    tags = TagStateOutput(many=True)


class ImageTagsInput(serializers.Serializer):
    present = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        allow_empty=True,
        help_text="Ids of the tags present; every other active tag is saved as absent.",
    )


def image_tags_output(image) -> dict:
    states = selectors.image_tag_states(image=image)
    tags = selectors.label_class_list(project=image.project, active_only=True)
    return {
        "image": image.pk,
        "tagged": image.tagged,
        "tags": [{"tag": t.pk, "name": t.name, "state": states.get(t.pk, "unset")} for t in tags],
    }


class ImageTagsApi(APIView):
    @extend_schema(responses=ImageTagsOutput, description="Each active tag's state on the image.")
    def get(self, request: Request, project_id: int, image_id: int) -> Response:
        image = access.image_access(user=request.user, project_id=project_id, image_id=image_id)
        return Response(image_tags_output(image))

    @extend_schema(
        request=ImageTagsInput,
        responses=ImageTagsOutput,
        description="Save the image's tags: those listed present, every other active tag "
        "absent. Idempotent. Multi-label projects only.",
    )
    def put(self, request: Request, project_id: int, image_id: int) -> Response:
        image = access.image_access(
            user=request.user, project_id=project_id, image_id=image_id, roles=access.LABELERS
        )
        present = validated(ImageTagsInput, request.data)["present"]
        services.image_tags_set(image=image, present=present, annotator=request.user)
        image.refresh_from_db()
        return Response(image_tags_output(image))


class TagAssignInput(serializers.Serializer):
    images = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1)
    tag = serializers.IntegerField(min_value=1)
    present = serializers.BooleanField()


class TagAssignOutput(serializers.Serializer):
    changed = serializers.IntegerField(help_text="Images whose state of the tag changed.")


class TagAssignApi(APIView):
    @extend_schema(
        request=TagAssignInput,
        responses={200: TagAssignOutput},
        description="Mark one tag present or absent on several images, all or none; "
        "their other tags are left as they are.",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = access.project_access(
            user=request.user, project_id=project_id, roles=access.LABELERS
        )
        data = validated(TagAssignInput, request.data)
        tag = access.label_class_access(
            user=request.user, project_id=project_id, class_id=data["tag"]
        )
        changed = services.images_tag_set(
            project=project,
            image_ids=data["images"],
            tag=tag,
            present=data["present"],
            annotator=request.user,
        )
        return Response({"changed": changed}, status=status.HTTP_200_OK)
