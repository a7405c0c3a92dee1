import pytest

from tests.factories import UserFactory


@pytest.fixture
def admin_client_(client, db):
    admin = UserFactory(username="support", is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client


def test_every_model_has_a_working_admin(admin_client_, project, images, classes, annotator):
    from labeling import services

    services.annotation_create(image=images[0], label_class=classes[0], annotator=annotator)
    for model in ["project", "membership", "labelclass", "image", "annotation"]:
        listing = admin_client_.get(f"/admin/labeling/{model}/")
        assert listing.status_code == 200, model
    assert admin_client_.get(f"/admin/labeling/image/{images[0].pk}/change/").status_code == 200
    assert admin_client_.get(f"/admin/labeling/project/{project.pk}/change/").status_code == 200
    assert admin_client_.get("/admin/labeling/image/?q=img1").status_code == 200


def test_label_history_cannot_be_edited_in_admin(admin_client_, images, classes, annotator):
    from labeling import services

    annotation = services.annotation_create(
        image=images[0], label_class=classes[0], annotator=annotator
    )
    page = admin_client_.get(f"/admin/labeling/annotation/{annotation.pk}/change/")
    assert page.status_code == 200 and b'name="label_class"' not in page.content
    assert (
        admin_client_.post(f"/admin/labeling/annotation/{annotation.pk}/delete/").status_code == 403
    )


def test_classes_change_only_where_the_taxonomy_log_sees_it(admin_client_, project, classes):
    from labeling.models import LabelClass

    assert admin_client_.get("/admin/labeling/taxonomychange/").status_code == 200
    page = admin_client_.get(f"/admin/labeling/labelclass/{classes[0].pk}/change/")
    assert page.status_code == 200 and b'name="name"' not in page.content
    admin_client_.post(f"/admin/labeling/labelclass/{classes[0].pk}/change/", {"name": "renamed"})
    assert LabelClass.objects.get(pk=classes[0].pk).name == "cat"
    assert admin_client_.get("/admin/labeling/labelclass/add/").status_code == 403
