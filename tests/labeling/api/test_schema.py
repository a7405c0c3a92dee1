def test_the_openapi_schema_lists_every_endpoint(client, owner):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/api/v1/projects/",
        "/api/v1/projects/{project_id}/",
        "/api/v1/projects/{project_id}/members/",
        "/api/v1/projects/{project_id}/members/{member_id}/",
        "/api/v1/projects/{project_id}/classes/",
        "/api/v1/projects/{project_id}/classes/{class_id}/",
        "/api/v1/projects/{project_id}/images/",
        "/api/v1/projects/{project_id}/images/{image_id}/",
        "/api/v1/projects/{project_id}/images/{image_id}/file/",
        "/api/v1/projects/{project_id}/images/{image_id}/annotations/",
        "/api/v1/projects/{project_id}/annotations/undo/",
        "/api/v1/projects/{project_id}/queue/next/",
        "/api/v1/projects/{project_id}/model/versions/",
        "/api/v1/projects/{project_id}/predictions/",
        "/api/v1/projects/{project_id}/predictions/{prediction_id}/",
        "/api/v1/projects/{project_id}/predictions/{prediction_id}/resolve/",
        "/api/v1/projects/{project_id}/review/mistakes/",
        "/api/v1/projects/{project_id}/review/scan/",
        "/api/v1/projects/{project_id}/images/{image_id}/review/",
        "/api/v1/projects/{project_id}/feedback/settings/",
        "/api/v1/projects/{project_id}/progress/",
    ]:
        assert path in paths, path


def test_the_docs_page_works_offline(client, owner):
    client.force_login(owner)
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert b"swagger-ui" in page.content
    # The Swagger UI assets come from our own static files, never a CDN.
    assert b"cdn.jsdelivr" not in page.content and b"unpkg.com" not in page.content


def test_the_schema_generates_without_warnings():
    from django.core.management import call_command

    # --fail-on-warn turns any ambiguity drf-spectacular notices into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
