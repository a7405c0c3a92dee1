"""The REST API fuzzed from its own OpenAPI schema (schemathesis): whatever an
authenticated member sends, no request makes a server error, and documented responses
match the schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from labeling import services
from tests.conftest import add_images


def _load_schema():
    # The schema view reads no rows, so it loads at collection time.
    from config.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """As Django's test client does: the WSGI app runs inside the test's transaction,
    so it must not close the connection at the end of each request."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


schema = _load_schema()


@pytest.fixture
def member_token(project, owner, classes):
    add_images(project, owner, 2)
    services.annotation_create(
        image=project.images.first(), label_class=classes[0], annotator=owner
    )
    return Token.objects.get_or_create(user=owner)[0].key


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_makes_a_server_error(case, member_token, project, classes, db):
    # Real ids for the path, so the fuzzed queries and bodies reach the views rather
    # than stopping at a 404.
    real = {
        "project_id": project.pk,
        "image_id": project.images.first().pk,
        "class_id": classes[1].pk,
    }
    for name, value in real.items():
        if name in (case.path_parameters or {}):
            case.path_parameters[name] = value
    case.call_and_validate(
        headers={"Authorization": f"Token {member_token}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
