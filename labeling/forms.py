from __future__ import annotations

from django import forms

from labeling.models import Membership


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class LabelClassForm(forms.Form):
    name = forms.CharField(max_length=100)
    color = forms.RegexField(
        regex=r"^#[0-9a-fA-F]{6}$",
        required=False,
        widget=forms.TextInput(attrs={"type": "color"}),
    )
    key = forms.RegexField(regex=r"^[0-9a-zA-Z]$", required=False, max_length=1)


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices)


class AssignForm(forms.Form):
    label_class = forms.IntegerField()

    def clean(self):
        cleaned = super().clean()
        raw = self.data.getlist("images") if hasattr(self.data, "getlist") else []
        try:
            cleaned["images"] = sorted({int(value) for value in raw})
        except ValueError:
            raise forms.ValidationError("Image ids must be whole numbers.") from None
        if not cleaned["images"]:
            raise forms.ValidationError("Select at least one image.")
        return cleaned


class LabelClassEditForm(forms.Form):
    name = forms.CharField(max_length=100)
    color = forms.RegexField(
        regex=r"^#[0-9a-fA-F]{6}$", widget=forms.TextInput(attrs={"type": "color"})
    )
    key = forms.RegexField(regex=r"^[0-9a-zA-Z]?$", required=False, max_length=1)
    order = forms.IntegerField(min_value=0, max_value=2**31 - 1)
    is_active = forms.BooleanField(required=False)
    parent = forms.IntegerField(required=False, min_value=1)


class MergeForm(forms.Form):
    name = forms.CharField(max_length=100)

    def clean(self):
        cleaned = super().clean()
        raw = self.data.getlist("classes") if hasattr(self.data, "getlist") else []
        try:
            cleaned["classes"] = sorted({int(value) for value in raw})
        except ValueError:
            raise forms.ValidationError("Class ids must be whole numbers.") from None
        return cleaned


class SplitStartForm(forms.Form):
    label_class = forms.IntegerField(min_value=1)
    names = forms.CharField(max_length=500, help_text="New class names, comma-separated.")
