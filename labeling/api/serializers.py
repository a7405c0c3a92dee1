"""Output serializers shared by several API views."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from labeling.models import Annotation, Image, LabelClass


class NumberField(serializers.FloatField):
    """A number: a JSON true or false is not one (Python would take it for 1 or 0)."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


def validated(serializer_class: type[serializers.Serializer], data) -> dict:
    """The input validated by `serializer_class`; a 400 with field errors otherwise."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class LabelClassOutput(serializers.ModelSerializer):
    class Meta:
        model = LabelClass
        fields = ["id", "name", "color", "key", "order", "is_active", "parent"]


class ImageOutput(serializers.ModelSerializer):
    label_name = serializers.CharField(source="label.name", allow_null=True, default=None)
    file_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = [
            "id",
            "original_name",
            "width",
            "height",
            "content_hash",
            "source",
            "split",
            "status",
            "in_queue",
            "label",
            "label_name",
            "tagged",
            "suggested_class",
            "confidence",
            "suggested_by",
            "created_at",
            "file_url",
            "thumbnail_url",
        ]

    def _url(self, image: Image, variant: str) -> str:
        path = reverse("api:image-file", args=[image.project_id, image.pk])
        if variant == "thumbnail":
            path += "?variant=thumbnail"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_file_url(self, image: Image) -> str:
        return self._url(image, "original")

    def get_thumbnail_url(self, image: Image) -> str:
        return self._url(image, "thumbnail")


class AnnotationOutput(serializers.ModelSerializer):
    label_name = serializers.CharField(source="label_class.name", allow_null=True, default=None)
    annotator = serializers.CharField(source="annotator.username", allow_null=True, default=None)

    class Meta:
        model = Annotation
        fields = [
            "id",
            "image",
            "label_class",
            "label_name",
            "annotator",
            "created_at",
            "action",
            "is_current",
            "reverts",
            "origin",
            "suggested_by",
            "suggestion_confidence",
        ]


class FileResultOutput(serializers.Serializer):
    """What became of one uploaded file (see `labeling.services.FileResult`)."""

    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["created", "duplicate", "rejected"])
    message = serializers.CharField()
    image_id = serializers.IntegerField(allow_null=True)
