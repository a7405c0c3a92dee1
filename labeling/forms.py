"""The pages' forms. Their messages are sentences a person reads next to the field, so
each says what to do rather than naming a field."""

from __future__ import annotations

from django import forms

from labeling.models import Membership, Project, Webhook

COLOUR = r"^#[0-9a-fA-F]{6}$"
NAME_MESSAGES = {
    "required": "Give it a name.",
    "max_length": "Keep the name under %(limit_value)d characters.",
}
COLOUR_MESSAGES = {"invalid": "Choose a colour such as #1f77b4.", "required": "Choose a colour."}
KEY_MESSAGES = {
    "invalid": "A key is a single letter or digit.",
    "max_length": "A key is a single letter or digit.",
}


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=200, error_messages=NAME_MESSAGES)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    kind = forms.ChoiceField(
        choices=Project.Kind.choices,
        initial=Project.Kind.SINGLE,
        widget=forms.RadioSelect,
        # Not sent (a script posting name and description only): single-label, as before.
        required=False,
        error_messages={"invalid_choice": "Choose one of the two kinds of project."},
    )

    def clean_kind(self) -> str:
        return self.cleaned_data["kind"] or Project.Kind.SINGLE


class LabelClassForm(forms.Form):
    name = forms.CharField(max_length=100, error_messages=NAME_MESSAGES)
    # A colour input always submits a value (black when nobody set one), so the page
    # fills it with the next colour of the palette.
    color = forms.RegexField(
        regex=COLOUR,
        required=False,
        widget=forms.TextInput(attrs={"type": "color"}),
        error_messages=COLOUR_MESSAGES,
    )
    key = forms.RegexField(
        regex=r"^[0-9a-zA-Z]$",
        required=False,
        max_length=1,
        error_messages=KEY_MESSAGES,
        widget=forms.TextInput(attrs={"size": 2, "placeholder": "auto"}),
    )


class MemberForm(forms.Form):
    username = forms.CharField(
        max_length=150, error_messages={"required": "Give the username of the person to add."}
    )
    role = forms.ChoiceField(
        choices=Membership.Role.choices,
        initial=Membership.Role.ANNOTATOR,
        error_messages={"invalid_choice": "Choose one of the roles in the list."},
    )


class AssignForm(forms.Form):
    label_class = forms.IntegerField(
        error_messages={
            "required": "Choose a class to assign.",
            "invalid": "Choose a class to assign.",
        }
    )
    # Multi-label projects: whether the chosen tag is added to or removed from the images.
    tag_action = forms.ChoiceField(
        choices=[("add", "Add tag"), ("remove", "Remove tag")],
        required=False,
        error_messages={"invalid_choice": "Choose to add or to remove the tag."},
    )

    def clean(self):
        cleaned = super().clean()
        raw = self.data.getlist("images") if hasattr(self.data, "getlist") else []
        try:
            cleaned["images"] = sorted({int(value) for value in raw})
        except ValueError:
            raise forms.ValidationError("Image ids must be whole numbers.") from None
        if not cleaned["images"]:
            raise forms.ValidationError("Select at least one image, then assign a class.")
        return cleaned


class LabelClassEditForm(forms.Form):
    name = forms.CharField(max_length=100, error_messages=NAME_MESSAGES)
    color = forms.RegexField(regex=COLOUR, error_messages=COLOUR_MESSAGES)
    key = forms.RegexField(
        regex=r"^[0-9a-zA-Z]?$", required=False, max_length=1, error_messages=KEY_MESSAGES
    )
    order = forms.IntegerField(
        min_value=0,
        max_value=2**31 - 1,
        error_messages={
            "required": "Give the order as a whole number, 0 or more.",
            "invalid": "Give the order as a whole number, 0 or more.",
            "min_value": "Give the order as a whole number, 0 or more.",
            "max_value": "That order is too large.",
        },
    )
    is_active = forms.BooleanField(required=False)
    parent = forms.IntegerField(
        required=False,
        min_value=1,
        error_messages={
            "invalid": "Choose a parent class from the list.",
            "min_value": "Choose a parent class from the list.",
        },
    )


class MergeForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        error_messages={
            "required": "Name the merged class.",
            "max_length": "Keep the name under %(limit_value)d characters.",
        },
    )

    def clean(self):
        cleaned = super().clean()
        raw = self.data.getlist("classes") if hasattr(self.data, "getlist") else []
        try:
            cleaned["classes"] = sorted({int(value) for value in raw})
        except ValueError:
            raise forms.ValidationError("Class ids must be whole numbers.") from None
        return cleaned


class SplitStartForm(forms.Form):
    label_class = forms.IntegerField(
        min_value=1,
        error_messages={
            "required": "Choose the class to split.",
            "invalid": "Choose the class to split.",
            "min_value": "Choose the class to split.",
        },
    )
    names = forms.CharField(
        max_length=500,
        help_text="New class names, comma-separated.",
        error_messages={
            "required": "Name the new classes, separated by commas.",
            "max_length": "Keep the names under %(limit_value)d characters in all.",
        },
    )


def _ids(data, name: str) -> list[int]:
    raw = data.getlist(name) if hasattr(data, "getlist") else []
    try:
        return list(dict.fromkeys(int(value) for value in raw))
    except ValueError:
        raise forms.ValidationError("Image ids must be whole numbers.") from None


class VerifyForm(forms.Form):
    """A checked page of suggestions: every image shown, the ticked ones accepted."""

    label_class = forms.IntegerField(
        error_messages={
            "required": "Choose the class whose suggestions you checked.",
            "invalid": "Choose the class whose suggestions you checked.",
        }
    )

    def clean(self):
        cleaned = super().clean()
        shown, accepted = _ids(self.data, "shown"), _ids(self.data, "accepted")
        if not shown:
            raise forms.ValidationError("The page showed no images: load it again.")
        if not set(accepted) <= set(shown):
            raise forms.ValidationError("Only images shown on the page can be accepted.")
        cleaned["accepted"] = accepted
        cleaned["rejected"] = [pk for pk in shown if pk not in set(accepted)]
        return cleaned


def error_messages(form: forms.Form) -> list[str]:
    """Every message of a form, field ones first, without the field names."""
    return [message for errors in form.errors.values() for message in errors]


class WebhookForm(forms.Form):
    # A text input, not type=url: the server's message ("starts with http:// or
    # https://") says more than the browser's, and the API gets the same one.
    url = forms.CharField(
        label="URL",
        max_length=2000,
        widget=forms.TextInput(attrs={"inputmode": "url", "placeholder": "https://"}),
        error_messages={
            "required": "Give the URL the events are sent to.",
            "max_length": "Keep the URL under 2,000 characters.",
        },
    )
    events = forms.MultipleChoiceField(
        choices=Webhook.Event.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": "Choose at least one event to send.",
            "invalid_choice": "Choose events from the list.",
        },
    )
    is_active = forms.BooleanField(label="Active", required=False, initial=True)
    description = forms.CharField(max_length=200, required=False)


class WebhookEditForm(WebhookForm):
    rotate_secret = forms.BooleanField(label="Make a new secret", required=False)
