from __future__ import annotations

import django_filters
from django.core.validators import RegexValidator

from labeling.models import Image


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
    split = django_filters.ChoiceFilter(choices=Image.Split.choices)
    source = django_filters.ChoiceFilter(choices=Image.Source.choices)

    class Meta:
        model = Image
        fields = ["label", "split", "source"]

    def filter_label(self, queryset, name, value):
        if value == "unlabeled":
            return queryset.filter(label__isnull=True)
        if value == "labeled":
            return queryset.filter(label__isnull=False)
        return queryset.filter(label_id=int(value))
