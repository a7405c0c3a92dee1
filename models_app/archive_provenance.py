"""The archive's record of where suggested labels came from: each image's suggestion
version, each label's origin (chosen, accepted, verified in bulk) with the suggestion's
version and confidence, and the suggestions annotators rejected. Versions travel by
their number (ids change on import); a version the archive does not carry is none."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from labeling.models import Annotation, Image, SuggestionRejection
from models_app.models import ModelVersion


def provenance_document(*, project, versions, images, annotations, refs) -> dict:
    """`refs`: the archive's image, annotation and class refs by id."""
    image_ref, annotation_ref, class_ref = refs
    number = {v.pk: v.number for v in versions}.get
    rejections = SuggestionRejection.objects.filter(image__project=project).order_by("id")
    return {
        "suggested_by": [[image_ref[i.pk], number(i.suggested_by)] for i in images],
        "label_origins": [
            [annotation_ref[a.pk], a.origin, number(a.suggested_by), a.suggestion_confidence]
            for a in annotations
            if a.origin != Annotation.Origin.CHOSEN
        ],
        "rejections": [
            [
                image_ref[r.image_id],
                class_ref[r.label_class_id],
                r.annotator.get_username() if r.annotator else None,
                number(r.suggested_by),
                r.confidence,
                r.created_at.isoformat(),
            ]
            for r in rejections.select_related("annotator")
        ],
    }


def _confidence(value, what: str) -> float | None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if value is not None and (not number or not 0 <= value <= 1):
        raise ValidationError(f"{what}: a confidence is a number from 0 to 1.")
    return value


def provenance_import(document, project, images, annotations, classes, users, *, time) -> None:
    """Restore what `provenance_document` wrote; archives before it have none of it."""
    document = document.get("provenance", {})
    versions = dict(ModelVersion.objects.filter(project=project).values_list("number", "pk"))

    def version(value, what: str) -> int | None:
        if value is not None and value not in versions:
            raise ValidationError(f"{what} names model version {value!r}, which it does not hold.")
        return versions.get(value)

    for ref, number in document.get("suggested_by", []):
        Image.objects.filter(pk=images[ref].pk).update(
            suggested_by=version(number, f"Image {ref!r}")
        )
    origins = set(Annotation.Origin.values) - {Annotation.Origin.CHOSEN}
    for ref, origin, number, confidence in document.get("label_origins", []):
        what = f"Label {ref!r}"
        if origin not in origins:
            raise ValidationError(f"{what}: unknown origin {origin!r}.")
        Annotation.objects.filter(pk=annotations[ref].pk).update(
            origin=origin,
            suggested_by=version(number, what),
            suggestion_confidence=_confidence(confidence, what),
        )
    for image, label_class, annotator, number, confidence, created in document.get(
        "rejections", []
    ):
        what = f"The rejection of image {image!r}"
        rejection = SuggestionRejection.objects.create(
            image=images[image],
            label_class=classes[label_class],
            annotator=users.get(annotator),
            suggested_by=version(number, what),
            confidence=_confidence(confidence, what),
        )
        SuggestionRejection.objects.filter(pk=rejection.pk).update(created_at=time(created, what))
