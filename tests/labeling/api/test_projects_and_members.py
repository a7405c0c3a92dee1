from __future__ import annotations

from rest_framework.authtoken.models import Token

from labeling.models import Membership, Project


def test_it_requires_authentication(api, project):
    response = api().get("/api/v1/projects/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_token_auth(client, owner, project):
    from tests.factories import PASSWORD

    response = client.post(
        "/api/v1/auth/token/", {"username": owner.username, "password": PASSWORD}
    )
    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(user=owner).key == token
    listed = client.get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {token}")
    assert [p["name"] for p in listed.json()] == ["Pets"]
    bad = client.get("/api/v1/projects/", HTTP_AUTHORIZATION="Token nope")
    assert bad.status_code == 401


def test_list_shows_only_my_projects(api, annotator, project, other_project):
    response = api(annotator).get("/api/v1/projects/")
    assert [p["id"] for p in response.json()] == [project.pk]


def test_create_makes_me_owner(api, outsider):
    response = api(outsider).post(
        "/api/v1/projects/", {"name": " Birds ", "description": "Garden birds"}, format="json"
    )
    assert response.status_code == 201
    project = Project.objects.get()
    assert response.json()["id"] == project.pk
    assert (project.name, project.description, project.created_by) == (
        "Birds",
        "Garden birds",
        outsider,
    )
    assert list(Membership.objects.values_list("project", "user", "role")) == [
        (project.pk, outsider.pk, "owner")
    ]


def test_create_refuses_a_blank_name(api, outsider):
    response = api(outsider).post("/api/v1/projects/", {"name": "  "}, format="json")
    assert response.status_code == 400
    assert response.json() == {"name": ["This field may not be blank."]}
    assert not Project.objects.exists() and not Membership.objects.exists()


def test_detail_and_update(api, owner, annotator, project):
    url = f"/api/v1/projects/{project.pk}/"
    assert api(annotator).get(url).json()["name"] == "Pets"
    assert api(annotator).patch(url, {"name": "X"}, format="json").status_code == 403
    project.refresh_from_db()
    assert project.name == "Pets"
    response = api(owner).patch(url, {"name": "Pets v2", "description": "d"}, format="json")
    assert response.status_code == 200 and response.json()["name"] == "Pets v2"
    project.refresh_from_db()
    assert (project.name, project.description) == ("Pets v2", "d")


def test_members_list_add_change_remove(api, owner, annotator, outsider, project):
    url = f"/api/v1/projects/{project.pk}/members/"
    listed = api(annotator).get(url).json()
    assert {m["username"]: m["role"] for m in listed} == {
        "olivia-owner": "owner",
        "rita-reviewer": "reviewer",
        "anna-annotator": "annotator",
    }
    added = api(owner).post(
        url, {"username": outsider.username, "role": "annotator"}, format="json"
    )
    assert added.status_code == 201
    stored = Membership.objects.get(project=project, user=outsider)
    assert (stored.pk, stored.role) == (added.json()["id"], "annotator")
    member_url = f"{url}{added.json()['id']}/"
    changed = api(owner).patch(member_url, {"role": "reviewer"}, format="json")
    assert changed.json()["role"] == "reviewer"
    stored.refresh_from_db()
    assert stored.role == "reviewer"
    assert api(owner).delete(member_url).status_code == 204
    assert not Membership.objects.filter(project=project, user=outsider).exists()


def test_an_annotator_cannot_change_members(api, annotator, outsider, project):
    url = f"/api/v1/projects/{project.pk}/members/"
    response = api(annotator).post(
        url, {"username": outsider.username, "role": "owner"}, format="json"
    )
    assert response.status_code == 403
    assert not Membership.objects.filter(user=outsider).exists()
    me = Membership.objects.get(project=project, user=annotator)
    assert (
        api(annotator).patch(f"{url}{me.pk}/", {"role": "owner"}, format="json").status_code == 403
    )
    assert api(annotator).delete(f"{url}{me.pk}/").status_code == 403
    me.refresh_from_db()
    assert me.role == "annotator"


def test_the_last_owner_cannot_leave_or_be_demoted(api, owner, project):
    mine = Membership.objects.get(project=project, user=owner)
    url = f"/api/v1/projects/{project.pk}/members/{mine.pk}/"
    demoted = api(owner).patch(url, {"role": "annotator"}, format="json")
    assert demoted.status_code == 400
    assert "at least one owner" in str(demoted.json())
    assert api(owner).delete(url).status_code == 400
    mine.refresh_from_db()
    assert mine.role == "owner"


def test_adding_an_unknown_user_or_a_bad_role_is_a_clear_error(api, owner, outsider, project):
    before = set(Membership.objects.values_list("project", "user", "role"))
    response = api(owner).post(
        f"/api/v1/projects/{project.pk}/members/",
        {"username": "ghost", "role": "annotator"},
        format="json",
    )
    assert response.status_code == 400
    assert "No user named 'ghost'" in str(response.json())
    bad_role = api(owner).post(
        f"/api/v1/projects/{project.pk}/members/",
        {"username": "oscar-outsider", "role": "boss"},
        format="json",
    )
    assert bad_role.status_code == 400 and "role" in bad_role.json()
    assert set(Membership.objects.values_list("project", "user", "role")) == before
