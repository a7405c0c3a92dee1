"""A refused request logs one line; only server errors keep their traceback."""

from __future__ import annotations

import logging
import sys

import pytest
from django.core.exceptions import PermissionDenied


def record(status_code: int) -> logging.LogRecord:
    try:
        raise PermissionDenied("Your role (annotator) may not do this.")
    except PermissionDenied:
        exc_info = sys.exc_info()
    made = logging.getLogger("django.request").makeRecord(
        "django.request", logging.WARNING, __file__, 1, "Forbidden: %s", ("/x/",), exc_info
    )
    made.status_code = status_code
    return made


@pytest.mark.parametrize(("status_code", "traceback"), [(403, False), (404, False), (500, True)])
def test_the_console_shows_a_traceback_only_for_server_errors(status_code, traceback):
    [console] = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    line = record(status_code)
    assert console.filter(line)
    assert ("Traceback" in console.format(line)) is traceback
