"""Verifying the model's suggestions in bulk: a page of images the model says are of one
class, the wrong ones unticked, the rest accepted with one key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from labeling.models import Annotation, Image, LabelClass, Project, SuggestionRejection
from labeling.services.annotations import annotation_create
from labeling.services.projects import project_require_kind

# A page shows at most this many images, so one request never asks for more.
VERIFY_MAX = 200


@dataclass(frozen=True)
class VerifyResult:
    accepted: int  # labeled with the class
    rejected: int  # recorded as not of the class, back in the queue
    skipped: int  # labeled by someone else (or taken out of the dataset) meanwhile


@transaction.atomic
def suggestions_verify(
    *,
    project: Project,
    label_class: LabelClass,
    accepted_ids: Sequence[int],
    rejected_ids: Sequence[int],
    annotator: AbstractBaseUser,
) -> VerifyResult:
    """Record a checked page of suggestions for `label_class`, all or nothing: the
    accepted images get the class as a label whose origin says it was verified in bulk
    (with the suggestion's version and confidence); the rejected ones are recorded as
    not of the class, lose that suggestion and go back to the labeling queue. Images
    labeled or taken out of the dataset since the page was shown are left as they are
    and counted as skipped; sending the same page twice adds nothing."""
    project_require_kind(project=project, kind=Project.Kind.SINGLE)
    accepted, rejected = list(dict.fromkeys(accepted_ids)), list(dict.fromkeys(rejected_ids))
    if not accepted and not rejected:
        raise ValidationError({"images": "Send at least one image, accepted or rejected."})
    if len(accepted) + len(rejected) > VERIFY_MAX:
        raise ValidationError({"images": f"Send at most {VERIFY_MAX} images at once."})
    if set(accepted) & set(rejected):
        raise ValidationError({"images": "An image cannot be both accepted and rejected."})
    if label_class.project_id != project.pk:
        raise ValidationError({"label_class": "That class belongs to another project."})
    images = {
        image.pk: image
        for image in Image.objects.select_for_update()
        .filter(project=project, pk__in=accepted + rejected)
        .order_by("pk")
    }
    if len(images) != len(accepted) + len(rejected):
        raise ValidationError({"images": "Some images do not exist in this project."})
    waiting = {
        pk
        for pk, image in images.items()
        if image.label_id is None and image.status == Image.Status.ACTIVE
    }
    done = 0
    for pk in accepted:
        if pk in waiting:
            # Refuses a deactivated class or a parent, with the whole page left unsaved.
            annotation_create(
                image=images[pk],
                label_class=label_class,
                annotator=annotator,
                origin=Annotation.Origin.VERIFIED,
            )
            done += 1
    refused = [images[pk] for pk in rejected if pk in waiting]
    SuggestionRejection.objects.bulk_create(
        [
            SuggestionRejection(
                image=image,
                label_class=label_class,
                annotator=annotator,
                suggested_by=image.suggested_by
                if image.suggested_class_id == label_class.pk
                else None,
                confidence=image.confidence if image.suggested_class_id == label_class.pk else None,
            )
            for image in refused
        ],
        ignore_conflicts=True,
    )
    # The image leaves this class's pages now; the next ranking gives it its next most
    # likely class.
    Image.objects.filter(pk__in=[i.pk for i in refused], suggested_class=label_class).update(
        suggested_class=None, confidence=None, suggested_by=None, in_queue=True
    )
    Image.objects.filter(pk__in=[i.pk for i in refused]).update(in_queue=True)
    return VerifyResult(
        accepted=done, rejected=len(refused), skipped=len(images) - done - len(refused)
    )
