"""The feedback threshold in the API: every member reads it, curators set it, and a bad
value is a 400 that saves nothing."""

from __future__ import annotations

import pytest

from feedback import services


def url(project) -> str:
    return f"/api/v1/projects/{project.pk}/feedback/settings/"


def threshold(project) -> float:
    return services.feedback_settings(project=project).uncertain_below


def test_every_member_reads_the_threshold(api, owner, reviewer, annotator, project):
    for user in (owner, reviewer, annotator):
        response = api(user).get(url(project))
        assert response.status_code == 200
        assert response.json() == {"uncertain_below": 0.6}  # the default, a fraction


@pytest.mark.parametrize("who", ["owner", "reviewer"])
def test_owners_and_reviewers_set_it(api, project, who, request):
    user = request.getfixturevalue(who)
    response = api(user).patch(url(project), {"uncertain_below": 0.35}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"uncertain_below": 0.35}
    assert threshold(project) == 0.35
    # The bounds themselves are fine; a form post works too.
    assert api(user).patch(url(project), {"uncertain_below": 0}, format="json").status_code == 200
    assert api(user).patch(url(project), {"uncertain_below": "1"}).status_code == 200
    assert threshold(project) == 1.0


def test_an_annotator_cannot_set_it(api, annotator, project):
    response = api(annotator).patch(url(project), {"uncertain_below": 0.1}, format="json")
    assert response.status_code == 403
    assert threshold(project) == 0.6


def test_an_outsider_gets_404(api, outsider, project):
    assert api(outsider).get(url(project)).status_code == 404
    response = api(outsider).patch(url(project), {"uncertain_below": 0.1}, format="json")
    assert response.status_code == 404
    assert threshold(project) == 0.6


def test_anonymous_gets_401(api, project):
    assert api().get(url(project)).status_code == 401


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sixty", "A valid number is required."),
        ("nan", "A valid number is required."),
        ("Infinity", "A valid number is required."),
        (True, "A valid number is required."),
        (None, "This field may not be null."),
        ([0.5], "A valid number is required."),
        (-0.01, "Ensure this value is greater than or equal to 0.0."),
        (1.5, "Ensure this value is less than or equal to 1.0."),
        # Percent, as the Predict page shows it, is not the API's unit.
        (60, "Ensure this value is less than or equal to 1.0."),
    ],
)
def test_a_bad_value_is_a_400_with_a_clear_message(api, owner, project, value, message):
    response = api(owner).patch(url(project), {"uncertain_below": value}, format="json")
    assert response.status_code == 400
    assert response.json() == {"uncertain_below": [message]}
    assert threshold(project) == 0.6


def test_a_missing_value_is_a_400(api, owner, project):
    response = api(owner).patch(url(project), {}, format="json")
    assert response.status_code == 400
    assert response.json() == {"uncertain_below": ["This field is required."]}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5, 2.0, True])
def test_the_service_refuses_what_the_page_could_send(project, value):
    """The Predict page's form reaches the service with float(...) of what was typed:
    "nan" once stored NaN, which every confidence compares false against."""
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="from 0 to 1"):
        services.feedback_settings_update(project=project, uncertain_below=value)
    assert threshold(project) == 0.6


def test_the_service_takes_numpys_floats(project):
    """A threshold computed from model scores is a numpy float32, no Python float."""
    import numpy as np

    services.feedback_settings_update(project=project, uncertain_below=np.float32(0.25))
    assert threshold(project) == 0.25
