"""What the pages share in building a response: the htmx partial's name, a service's
refusal shown on a form, a file sent to members."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import FileResponse, HttpRequest


def form_errors(form, error: ValidationError) -> None:
    """Show a service's refusal on the form: on its field where it names one."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for field, errors in error.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def partial(request: HttpRequest, template: str, name: str) -> str:
    return f"{template}#{name}" if request.htmx else template


def error_message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return "Choose a class."


def file_response(field) -> FileResponse:
    response = FileResponse(field.open("rb"))
    # Members only: browsers may keep it, shared caches may not.
    response["Cache-Control"] = "private, max-age=86400"
    return response
