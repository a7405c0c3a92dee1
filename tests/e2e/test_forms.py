"""Every form of the pages, sent from a real browser with bad input and with good input:
a refusal shows the server's message beside the form and keeps what was typed; an
accepted form really changes the database."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from feedback import services as feedback_services
from feedback.models import FeedbackSettings, Prediction, ReviewScan
from labeling import services
from labeling.models import Annotation, ClassMerge, ClassSplit, Image, LabelClass, Membership
from labeling.models import Project as ProjectModel
from models_app.models import ModelVersion
from tests.e2e.test_labeling_flow import log_in
from tests.feedback.conftest import new_uploads, trained  # noqa: F401 - fixtures

pytestmark = pytest.mark.e2e

# A message that starts with a field's name ("key: ...") is for programmers.
RAW_FIELD = re.compile(r"^\s*(name|key|color|colour|role|username|classes|label_class|images)\s*:")


def errors_of(locator) -> str:
    text = locator.inner_text()
    for line in text.splitlines():
        assert not RAW_FIELD.match(line.lstrip("⚠ ")), line
    return text


def test_the_new_project_form(page, owner):
    log_in(page, owner)
    form = page.locator("#project-create")
    form.get_by_label("Name").fill("   ")
    form.get_by_label("Description").fill("Birds of the garden")
    form.get_by_role("button", name="Create project").click()
    expect(form.locator(".form-errors")).to_have_text(re.compile("Give it a name"))
    expect(form.get_by_label("Description")).to_have_value("Birds of the garden")
    assert not ProjectModel.objects.exists()

    form.get_by_label("Name").fill("Garden birds")
    form.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Garden birds")).to_be_visible()
    project = ProjectModel.objects.get()
    assert project.description == "Birds of the garden"
    assert Membership.objects.get(project=project).user == owner


def test_the_class_form_on_the_project_page(page, project, owner):
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/")
    form = page.locator("#class-create")
    section = page.locator("#class-section")

    form.get_by_label("Name").fill("cat")
    form.get_by_role("button", name="Add class").click()
    expect(page.get_by_test_id("count-class-cat")).to_have_text("0")
    cat = LabelClass.objects.get(project=project, name="cat")
    # Nobody touched the colour: the palette's first colour, not the input's black.
    assert (cat.key, cat.color) == ("1", "#1f77b4")

    # A taken key: the message beside the form, the name and the key still typed.
    form.get_by_label("Name").fill("dog")
    form.get_by_label("Key").fill("1")
    form.get_by_role("button", name="Add class").click()
    expect(section.locator(".form-errors")).to_contain_text("Key '1' is already used")
    errors_of(section.locator(".form-errors"))
    expect(form.get_by_label("Name")).to_have_value("dog")
    expect(form.get_by_label("Key")).to_have_value("1")

    # A taken name, ignoring case.
    form.get_by_label("Name").fill("Cat")
    form.get_by_label("Key").fill("")
    form.get_by_role("button", name="Add class").click()
    expect(section.locator(".form-errors")).to_contain_text("A class named 'Cat' already exists.")
    expect(form.get_by_label("Name")).to_have_value("Cat")
    assert LabelClass.objects.filter(project=project).count() == 1

    # The next class gets the palette's next colour; a colour the user picks is kept.
    form.get_by_label("Name").fill("dog")
    form.get_by_role("button", name="Add class").click()
    expect(page.get_by_test_id("count-class-dog")).to_have_text("0")
    form.get_by_label("Name").fill("bird")
    form.get_by_label("Colour").fill("#123456")
    form.get_by_role("button", name="Add class").click()
    expect(page.get_by_test_id("count-class-bird")).to_have_text("0")
    colours = dict(LabelClass.objects.filter(project=project).values_list("name", "color"))
    assert colours == {"cat": "#1f77b4", "dog": "#ff7f0e", "bird": "#123456"}
    expect(section.locator(".form-errors")).to_have_count(0)


def test_the_member_forms(page, project, owner, annotator, outsider):
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/")
    section = page.locator("#member-section")
    form = page.locator("#member-form")
    expect(form.get_by_label("Role")).to_have_value("annotator")

    form.get_by_label("Username").fill("nobody")
    form.get_by_role("button", name="Add or change").click()
    expect(section.locator(".form-errors")).to_have_text(re.compile("No user named 'nobody'."))
    expect(form.get_by_label("Username")).to_have_value("nobody")

    # Demoting the only owner.
    form.get_by_label("Username").fill(owner.username)
    form.get_by_label("Role").select_option("reviewer")
    form.get_by_role("button", name="Add or change").click()
    expect(section.locator(".form-errors")).to_contain_text("must keep at least one owner")
    errors_of(section.locator(".form-errors"))
    expect(form.get_by_label("Username")).to_have_value(owner.username)
    expect(form.get_by_label("Role")).to_have_value("reviewer")
    assert Membership.objects.get(project=project, user=owner).role == "owner"

    # Removing the only owner. The refusal repeats the one already shown, so the test
    # waits for the section to be replaced before it types into the new form.
    section.evaluate("element => { element.dataset.stale = 'yes'; }")
    with page.expect_response(lambda response: "/remove/" in response.url):
        section.get_by_role("button", name=f"Remove {owner.username}").click()
    expect(page.locator("#member-section[data-stale]")).to_have_count(0)
    expect(section.locator(".form-errors")).to_contain_text("must keep at least one owner")
    assert Membership.objects.filter(project=project, user=owner).exists()

    # Good input: a new member, then one removed.
    form.get_by_label("Username").fill(outsider.username)
    form.get_by_label("Role").select_option("reviewer")
    form.get_by_role("button", name="Add or change").click()
    expect(section).to_contain_text(outsider.username)
    expect(section.locator(".form-errors")).to_have_count(0)
    assert Membership.objects.get(project=project, user=outsider).role == "reviewer"
    section.get_by_role("button", name=f"Remove {annotator.username}").click()
    expect(section.get_by_text(annotator.username)).to_have_count(0)
    assert not Membership.objects.filter(project=project, user=annotator).exists()


def test_the_forms_of_the_classes_page(page, project, owner, classes):
    cat, dog, bird = classes
    fish = services.label_class_create(project=project, name="fish")
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/taxonomy/")
    row = page.locator(f"#class-{dog.pk}")

    # A row's bad input: the message under the row, the typed values kept.
    row.get_by_label("Name of dog").fill("Cat")
    row.get_by_label("Key of dog").fill("9")
    row.get_by_role("button", name="Save").click()
    row_errors = page.locator(f"#class-errors-{dog.pk}")
    expect(row_errors).to_contain_text("A class named 'Cat' already exists.")
    errors_of(row_errors)
    expect(page.locator(f"#class-{dog.pk}").get_by_label("Name of dog")).to_have_value("Cat")
    expect(page.locator(f"#class-{dog.pk}").get_by_label("Key of dog")).to_have_value("9")
    dog.refresh_from_db()
    assert (dog.name, dog.key) == ("dog", "2")

    row = page.locator(f"#class-{dog.pk}")
    row.get_by_label("Name of dog").fill("puppy")
    row.get_by_label("Key of dog").fill("1")
    row.get_by_role("button", name="Save").click()
    expect(page.locator(f"#class-errors-{dog.pk}")).to_contain_text("Key '1' is already used")
    expect(page.locator(f"#class-{dog.pk}").get_by_label("Name of dog")).to_have_value("puppy")

    # Good: rename, new key, a parent.
    row = page.locator(f"#class-{dog.pk}")
    row.get_by_label("Key of dog").fill("p")
    row.get_by_label("Parent of dog").select_option(label="cat")
    row.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Saved puppy.")
    expect(page.locator(f"#class-errors-{dog.pk}")).to_have_count(0)
    dog.refresh_from_db()
    assert (dog.name, dog.key, dog.parent_id) == ("puppy", "p", cat.pk)

    # Merge: one class ticked is refused; the tick and the name stay.
    merge = page.locator("#merge-form")
    merge.get_by_label("bird").check()
    merge.get_by_label("Into").fill("Animals")
    merge.get_by_role("button", name="Merge").click()
    merge = page.locator("#merge-form")
    expect(merge.locator(".form-errors")).to_contain_text("Choose at least two classes to merge.")
    errors_of(merge.locator(".form-errors"))
    expect(merge.get_by_label("bird")).to_be_checked()
    expect(merge.get_by_label("Into")).to_have_value("Animals")
    assert not ClassMerge.objects.exists()

    merge.get_by_label("fish").check()
    merge.get_by_role("button", name="Merge").click()
    expect(page.locator(".messages")).to_contain_text("Merged into Animals")
    done = ClassMerge.objects.get()
    assert done.target.name == "Animals" and done.undone_at is None

    # Undo a merge somebody else already undid: the message beside the button.
    services.label_class_merge_undo(merge=done, actor=owner)
    page.get_by_role("button", name="Undo").click()
    expect(page.locator("#classes-content .form-errors")).to_contain_text("already undone")
    # Merge again and undo from the page.
    fish.refresh_from_db()
    bird.refresh_from_db()
    again = services.label_class_merge(
        project=project, classes=[bird, fish], name="Creatures", actor=owner
    )
    page.reload()
    page.get_by_role("button", name="Undo").click()
    expect(page.locator(".messages")).to_contain_text("Merge undone")
    again.refresh_from_db()
    assert again.undone_at is not None

    # Split: one name is refused, the names typed and the class chosen stay.
    split = page.locator("#split-form")
    split.get_by_label("Class").select_option(label="bird")
    split.get_by_label("Into").fill("sparrow")
    split.get_by_role("button", name="Start splitting").click()
    split = page.locator("#split-form")
    expect(split.locator(".form-errors")).to_contain_text("Name at least two different new classes")
    expect(split.get_by_label("Into")).to_have_value("sparrow")
    expect(split.locator("select")).to_have_value(str(bird.pk))
    assert not ClassSplit.objects.exists()
    split.get_by_label("Into").fill("sparrow, robin")
    split.get_by_role("button", name="Start splitting").click()
    expect(page.get_by_role("heading", name=re.compile("Splitting bird"))).to_be_visible()
    assert ClassSplit.objects.get().source == bird


def test_the_grid_assign_form(page, project, owner, images, classes):
    cat, dog, bird = classes
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/images/")
    page.locator("#assign-class").select_option(label="2 · dog")
    page.get_by_role("button", name="Assign to selected").click()
    expect(page.locator("#image-grid .messages")).to_contain_text(
        "Select at least one image, then assign a class."
    )
    expect(page.locator("#assign-class")).to_have_value(str(dog.pk))

    first, second = images[0].pk, images[1].pk
    page.locator(f'input[name="images"][value="{first}"]').check()
    page.locator(f'input[name="images"][value="{second}"]').check()
    page.locator("#assign-class").select_option(label="3 · bird")
    # The class goes away while the page is open.
    services.label_class_update(label_class=bird, is_active=False, actor=owner)
    page.get_by_role("button", name="Assign to selected").click()
    expect(page.locator("#image-grid .messages")).to_contain_text("Class 'bird' is deactivated.")
    # The images chosen are still chosen (bird is no longer offered).
    expect(page.locator(f'input[name="images"][value="{first}"]')).to_be_checked()
    expect(page.locator(f'input[name="images"][value="{second}"]')).to_be_checked()
    expect(page.locator("#assign-class option", has_text="bird")).to_have_count(0)
    assert not Annotation.objects.exists()

    page.locator("#assign-class").select_option(label="1 · cat")
    page.get_by_role("button", name="Assign to selected").click()
    expect(page.locator("#image-grid .messages")).to_contain_text("Labeled 2 image(s) cat.")
    labels = dict(Image.objects.filter(pk__in=[first, second]).values_list("pk", "label_id"))
    assert labels == {first: cat.pk, second: cat.pk}


def test_the_label_page_buttons(page, project, annotator, owner, images, classes):
    cat, dog, _ = classes
    log_in(page, annotator)
    page.goto(f"/projects/{project.pk}/label/")
    services.label_class_update(label_class=dog, is_active=False, actor=owner)
    page.locator(".class-button", has_text="dog").click()
    expect(page.locator("#annotation-panel .messages")).to_contain_text(
        "Class 'dog' is deactivated."
    )
    assert not Annotation.objects.exists()

    shown = page.locator("#current-image").get_attribute("data-image-id")
    page.locator(".class-button", has_text="cat").click()
    expect(page.locator("#current-image")).not_to_have_attribute("data-image-id", shown)
    assert Image.objects.get(pk=shown).label == cat


def test_an_htmx_form_refused_for_a_role_says_why(page, project, owner, reviewer):
    """A 403 to an htmx request shows its reason beside the form, not only in the console."""
    log_in(page, reviewer)
    page.goto(f"/projects/{project.pk}/")
    services.membership_set(project=project, username=reviewer.username, role="annotator")
    form = page.locator("#class-create")
    form.get_by_label("Name").fill("cat")
    form.get_by_role("button", name="Add class").click()
    expect(page.locator(".request-error")).to_have_text("Your role (annotator) may not do this.")
    expect(form.get_by_label("Name")).to_have_value("cat")
    assert not LabelClass.objects.exists()


def test_the_predict_page_forms(
    page,
    trained,  # noqa: F811
    new_uploads,  # noqa: F811
    project,
    owner,
    tmp_path,
):
    version, classes = trained
    uploads = [u for u, _ in new_uploads(1, names=["Trouser", "Sneaker"])]
    batch = feedback_services.predictions_request(project=project, files=uploads, user=owner)
    feedback_services.predictions_run(prediction_ids=[p.pk for p in batch.predictions])
    trouser, sneaker = (Prediction.objects.get(pk=p.pk) for p in batch.predictions)

    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/predict/")

    # The threshold: out of range is refused (past the browser's own check), kept typed.
    threshold = page.locator("#threshold-form")
    threshold.evaluate("form => { form.noValidate = true; }")
    threshold.get_by_label("Send to the queue under").fill("150")
    threshold.get_by_role("button", name="Save").click()
    threshold = page.locator("#threshold-form")
    expect(threshold.locator(".form-errors")).to_contain_text("a number of percent, from 0 to 100")
    expect(threshold.get_by_label("Send to the queue under")).to_have_value("150")
    assert FeedbackSettings.objects.get(project=project).uncertain_below == 0.6
    threshold.get_by_label("Send to the queue under").fill("45")
    threshold.get_by_role("button", name="Save").click()
    expect(page.locator("#threshold-form")).to_contain_text("Predictions under 45% now enter")
    assert FeedbackSettings.objects.get(project=project).uncertain_below == 0.45

    # A class that goes away while the page is open: the card says so, keeps its buttons.
    card = page.locator(f"#prediction-{trouser.pk}")
    services.label_class_update(label_class=classes["Bag"], is_active=False, actor=owner)
    card.locator(".class-button", has_text="Bag").click()
    expect(card.locator(".messages")).to_contain_text("Class 'Bag' is deactivated.")
    expect(card.get_by_role("button", name="Confirm")).to_be_visible()
    trouser.refresh_from_db()
    assert trouser.status == "predicted"
    card.get_by_role("button", name="Confirm").click()
    expect(card).to_contain_text("Confirmed by olivia-owner")
    trouser.refresh_from_db()
    assert trouser.status == "confirmed" and trouser.image.label.name == "Trouser"
    assert sneaker.status == "predicted"

    # Predict with no model any more (deactivated after the page loaded).
    path = tmp_path / "bag.png"
    upload = new_uploads(1, names=["Bag"], skip=30)[0][0]
    upload.seek(0)
    path.write_bytes(upload.read())
    ModelVersion.objects.filter(pk=version.pk).update(is_active=False)
    page.set_input_files('input[name="files"]', [path])
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#predict-errors")).to_contain_text("no trained model yet")
    errors_of(page.locator("#predict-errors"))
    # The file chosen is still chosen.
    assert page.locator('input[name="files"]').evaluate("input => input.files.length") == 1
    before = Prediction.objects.count()

    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    with override_settings(
        FEEDBACK={**feedback_services.settings.FEEDBACK, "PREDICT_WAIT_SECONDS": 1}
    ):
        page.get_by_role("button", name="Predict").click()
        expect(page.locator("#results")).to_contain_text("Waiting for a worker")
    expect(page.locator("#predict-errors .form-errors")).to_have_count(0)
    assert Prediction.objects.count() == before + 1


def test_the_review_page_forms(
    page,
    trained,  # noqa: F811
    project,
    owner,
    reviewer,
):
    _, classes = trained
    trouser = Image.objects.filter(project=project, label=classes["Trouser"]).first()
    services.annotation_create(image=trouser, label_class=classes["Bag"], annotator=owner)
    log_in(page, reviewer)
    page.goto(f"/projects/{project.pk}/review/")
    page.get_by_role("button", name="Scan labels now").click()
    expect(page.locator(".messages")).to_contain_text("Scoring every label in the background")
    scan = ReviewScan.objects.get(project=project)
    feedback_services.review_scan_run(scan_id=scan.pk)
    page.reload()

    card = page.locator(f"#review-{trouser.pk}")
    services.label_class_update(label_class=classes["Sneaker"], is_active=False, actor=owner)
    card.locator(".class-button", has_text="Sneaker").click()
    expect(card.locator(".messages")).to_contain_text("Class 'Sneaker' is deactivated.")
    expect(card.get_by_role("button", name="Keep")).to_be_visible()
    trouser.refresh_from_db()
    assert trouser.label == classes["Bag"]

    card.locator(".class-button", has_text="Trouser").click()
    expect(card).to_contain_text("Trouser, in the dataset")
    trouser.refresh_from_db()
    assert trouser.label == classes["Trouser"]
