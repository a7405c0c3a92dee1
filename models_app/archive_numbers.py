"""Numbers in a project archive's `project.json` (`models_app.archive`,
`models_app.archive_tags`), refused when they are JSON's true or false.

Python reads JSON's true and false as True and False, which pass `isinstance(v, int)`,
compare equal to 1 and 0 and hash alike, and which a model field's `to_python` turns
into 1 and 0 without a word. So an archive saying `"version": true` would be read as
version 1, a ref `true` as ref 1 and a width `false` as 0: every number the archive
reads is checked here to be a number, not a boolean."""

from __future__ import annotations

import json
from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db import models

NUMBER_FIELDS = (models.IntegerField, models.FloatField, models.DecimalField)

ModelT = TypeVar("ModelT", bound=models.Model)


def whole_number(value: object) -> bool:
    """Whether `value`, read from JSON, is a whole number (true and false are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def archive_version(document: object, *, format_name: str, readable: tuple[int, ...]) -> int:
    """The version of an archive whose `project.json` is `document`: one of `readable`,
    of the format `format_name`. Raises ValidationError otherwise, naming a version that
    is true or false, which Python would take for 1 or 0."""
    refused = (
        f"Not a {format_name} archive of a version this server reads "
        f"({min(readable)} to {max(readable)})"
    )
    if not isinstance(document, dict) or document.get("format") != format_name:
        raise ValidationError(f"{refused}.")
    version = document.get("version")
    if isinstance(version, bool):
        raise ValidationError(
            f'{refused}: its "version" is {json.dumps(version)}, a boolean, not a number.'
        )
    if not whole_number(version) or version not in readable:
        raise ValidationError(f"{refused}.")
    return version


def booleans_refused(instance: ModelT, what: str) -> ModelT:
    """`instance` if none of its number fields holds true or false (which its form would
    take for 1 or 0); else a ValidationError naming `what` and the field."""
    for field in instance._meta.concrete_fields:
        value = getattr(instance, field.attname)
        if isinstance(field, NUMBER_FIELDS) and not field.is_relation and isinstance(value, bool):
            raise ValidationError(
                f"{what}: {field.name} is {json.dumps(value)}, a boolean, not a number."
            )
    return instance


class Made:
    """The rows made so far by the archive's refs; a ref twice, or to nothing, refused."""

    def __init__(self, kind: str):
        self.kind = kind
        self.rows: dict = {}

    def add(self, ref, row) -> None:
        if not whole_number(ref) or ref in self.rows:
            raise ValidationError(f"The archive holds {self.kind} {ref!r} twice or unnumbered.")
        self.rows[ref] = row

    def __getitem__(self, ref):
        if ref is None:
            return None
        if not whole_number(ref) or ref not in self.rows:
            raise ValidationError(
                f"The archive refers to {self.kind} {ref!r}, which it does not define."
            )
        return self.rows[ref]
