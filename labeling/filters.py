from __future__ import annotations

import django_filters
from django.core.validators import RegexValidator
from django.db.models import Exists, OuterRef, Q

from labeling.models import Image, TagAnnotation


class ImageFilter(django_filters.FilterSet):
    label = django_filters.CharFilter(
        method="filter_label",
        validators=[
            RegexValidator(
                r"^(\d+|labeled|unlabeled)$", 'Use a class id, "labeled" or "unlabeled".'
            )
        ],
        help_text='A class id, "labeled" or "unlabeled".',
    )
    suggested = django_filters.NumberFilter(field_name="suggested_class_id")
    order = django_filters.OrderingFilter(
        fields=[("created_at", "created"), ("confidence", "confidence")],
        help_text='"created" (default), "confidence" or "-confidence".',
    )
    split = django_filters.ChoiceFilter(choices=Image.Split.choices)
    source = django_filters.ChoiceFilter(choices=Image.Source.choices)

    class Meta:
        model = Image
        fields = ["label", "suggested", "split", "source"]

    def filter_label(self, queryset, name, value):
        if value == "unlabeled":
            return queryset.filter(Image.UNLABELED)
        if value == "labeled":
            return queryset.filter(~Image.UNLABELED)
        # A class id: the images of that class, or (multi-label) with that tag present.
        tagged = TagAnnotation.objects.filter(
            image=OuterRef("pk"),
            tag_id=int(value),
            is_current=True,
            state=TagAnnotation.State.PRESENT,
        )
        return queryset.filter(Q(label_id=int(value)) | Q(Exists(tagged)))
