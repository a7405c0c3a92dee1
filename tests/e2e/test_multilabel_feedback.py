"""A multi-label project's predictions and mistakes review in a real browser, with a real
worker: files sent through the predict form (a cut one refused by name), one prediction
confirmed by Enter and one corrected by ticking tags, the threshold form with good and
bad values; the review scanned from its button, disputed tags flipped by button and by
key, a card kept by Enter, refusals shown on the card."""

from __future__ import annotations

import re
import time

import pytest
from django.test import override_settings
from django_q.models import Schedule, Task
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from feedback import selectors, services
from feedback.models import FeedbackSettings, Prediction, ReviewScan, TagReview
from labeling import services as labeling_services
from labeling.models import Image, TagAnnotation
from models_app import services as learner
from tests import image_corpus as corpus
from tests.conftest import qcluster_start, qcluster_stop
from tests.e2e.test_labeling_flow import log_in
from tests.fashion import fashion_uploads
from tests.models_app.test_tag_training import tagged_images

pytestmark = pytest.mark.e2e

PENDING = re.compile(r"\bcurrent\b")


@pytest.fixture
def worker(transactional_db, media_root):
    """The real worker, without the periodic ticks the migrations schedule (as in
    test_acceptance): what a test sees must not depend on the order tests run in."""
    Schedule.objects.all().delete()
    process = qcluster_start(media_root)
    yield process
    qcluster_stop(process)


@pytest.fixture(autouse=True)
def patient(page):
    """The worker, the browser and the live server share two cores: longer waits, the
    same assertions."""
    page.set_default_timeout(30_000)
    expect.set_options(timeout=20_000)
    yield
    expect.set_options(timeout=5_000)


@pytest.fixture
def wardrobe(owner, reviewer, fashion):
    """A multi-label project (footwear, bag, has legs) of 48 real images tagged from
    their class, the reviewer a member."""
    project = labeling_services.project_create(name="Wardrobe", user=owner, kind="multi")
    labeling_services.membership_set(project=project, username=reviewer.username, role="reviewer")
    tags = tagged_images(project, owner, fashion, per_class=12)
    return project, tags


def stored(image_id: int) -> dict[str, str]:
    rows = TagAnnotation.objects.filter(image_id=image_id, is_current=True).select_related("tag")
    return {row.tag.name: row.state for row in rows}


def no_task_failed() -> None:
    failed = list(Task.objects.filter(success=False).values_list("func", "result"))
    assert not failed, f"tasks failed in the worker: {failed}"


def test_tag_predictions_are_sent_confirmed_corrected_and_the_threshold_set(
    page, wardrobe, worker, owner, fashion, tmp_path
):
    project, tags = wardrobe
    version = learner.model_version_request(project=project, trigger="api", user=owner)
    version = learner.model_version_train(version_id=version.pk)
    assert version.status == "succeeded", version.error
    name_of = {t.pk: name for name, t in tags.items()}

    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/predict/")
    expect(page.get_by_text("answers with each tag's probability and threshold")).to_be_visible()

    # The threshold form. The browser itself stops 150 (the field's max is 100): no
    # request, nothing stored.
    threshold = page.locator("#threshold-form")
    field = threshold.get_by_label("Send to the queue under")
    field.fill("150")
    threshold.get_by_role("button", name="Save").click()
    assert field.evaluate("input => input.validity.rangeOverflow")
    expect(threshold.locator(".form-errors")).to_have_count(0)
    # Past the browser's check, the server refuses it beside the form, kept as typed.
    threshold.evaluate("form => { form.noValidate = true; }")
    threshold.get_by_role("button", name="Save").click()
    threshold = page.locator("#threshold-form")
    expect(threshold.locator(".form-errors")).to_contain_text(
        "The threshold is a number of percent, from 0 to 100."
    )
    expect(threshold.get_by_label("Send to the queue under")).to_have_value("150")
    assert FeedbackSettings.objects.get(project=project).uncertain_below == 0.6
    # Letters cannot be typed into the number field; a client that sends them anyway (the
    # field made a text one) is refused the same way.
    with pytest.raises(PlaywrightError, match="Cannot type text into input"):
        threshold.get_by_label("Send to the queue under").fill("abc")
    threshold.evaluate(
        "form => { form.noValidate = true; form.elements.uncertain_below.type = 'text'; }"
    )
    threshold.get_by_label("Send to the queue under").fill("abc")
    threshold.get_by_role("button", name="Save").click()
    threshold = page.locator("#threshold-form")
    # The form comes back a number field again, the letters kept in its markup (which a
    # number field shows empty) and the reason beside it.
    field = threshold.locator('input[type="number"][name="uncertain_below"]')
    expect(field).to_have_attribute("value", "abc")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(threshold.locator(".form-errors")).to_contain_text("a number of percent, from 0 to 100")
    assert FeedbackSettings.objects.get(project=project).uncertain_below == 0.6
    # A good value: stored, said, and the error gone. 100% sends every prediction to
    # the queue, which the cards then say.
    threshold.get_by_label("Send to the queue under").fill("100")
    threshold.get_by_role("button", name="Save").click()
    threshold = page.locator("#threshold-form")
    expect(threshold).to_contain_text("Predictions under 100% now enter the queue.")
    expect(threshold.locator(".form-errors")).to_have_count(0)
    assert FeedbackSettings.objects.get(project=project).uncertain_below == 1.0

    # Only a cut file: refused by name, no card, nothing kept.
    cut = tmp_path / "cut.png"
    cut.write_bytes(corpus.truncated(corpus.photo("PNG")))
    page.set_input_files('#predict-form input[name="files"]', [cut])
    page.locator("#predict-form").get_by_role("button", name="Predict").click()
    expect(
        page.locator("#results").get_by_text(re.compile("cut.png.*truncated or corrupt"))
    ).to_be_visible()
    expect(page.locator("#results .card.prediction")).to_have_count(0)
    assert not Prediction.objects.exists()

    # Real files through the form: two good ones and a cut PNG; the worker answers
    # while the page waits, the cut file is refused by name.
    files = []
    for upload, _ in fashion_uploads(fashion, ["Sneaker", "Trouser"], 1, skip=12):
        path = tmp_path / upload.name
        path.write_bytes(upload.read())
        files.append(path)
    with override_settings(FEEDBACK={**services.settings.FEEDBACK, "PREDICT_WAIT_SECONDS": 90}):
        page.set_input_files('#predict-form input[name="files"]', [*files, cut])
        page.locator("#predict-form").get_by_role("button", name="Predict").click()
        results = page.locator("#results")
        expect(results.get_by_text(re.compile("cut.png.*truncated or corrupt"))).to_be_visible(
            timeout=90_000
        )
    cards = results.locator(".card.prediction")
    expect(cards).to_have_count(2)
    predictions = list(Prediction.objects.filter(project=project).order_by("id"))
    assert len(predictions) == 2
    assert not Image.objects.filter(project=project, original_name="cut.png").exists()
    for card, prediction in zip([cards.nth(0), cards.nth(1)], predictions, strict=True):
        assert prediction.status == "predicted" and prediction.model_version == version
        expect(card).to_have_attribute("id", f"prediction-{prediction.pk}")
        rows = card.locator("table.tag-scores tr[data-tag-id]")
        expect(rows).to_have_count(3)
        for i, score in enumerate(prediction.tag_scores):
            expect(rows.nth(i)).to_contain_text(name_of[score["tag_id"]])
            expect(rows.nth(i).locator("td").last).to_have_text(
                "present" if score["present"] else "absent"
            )
        expect(card).to_contain_text("Unsure, sent to the labeling queue")
        # The form starts with the predicted tags ticked.
        for tag_id, name in name_of.items():
            box = card.get_by_label(name, exact=True)
            if tag_id in prediction.predicted_tags:
                expect(box).to_be_checked()
            else:
                expect(box).not_to_be_checked()
    confirmed, corrected = predictions

    # Enter confirms the highlighted card: the tags as predicted, every tag saved.
    first, second = cards.nth(0), cards.nth(1)
    expect(first).to_have_class(PENDING)
    page.keyboard.press("Enter")
    expect(first).to_contain_text("Confirmed by olivia-owner")
    expect(first.locator("form")).to_have_count(0)
    predicted = {name_of[t] for t in confirmed.predicted_tags}
    expect(first.locator(".resolved-tag")).to_have_text(
        [n for n in ("footwear", "bag", "has legs") if n in predicted]
    )
    confirmed.refresh_from_db()
    assert confirmed.status == "confirmed"
    assert confirmed.resolved_tags == sorted(confirmed.predicted_tags)
    assert stored(confirmed.image_id) == {
        name: "present" if name in predicted else "absent" for name in tags
    }

    # A correction that names a tag deactivated since the page was drawn: refused on
    # the card, which keeps its form; nothing saved.
    expect(second).to_have_class(PENDING)
    labeling_services.label_class_update(label_class=tags["bag"], is_active=False, actor=owner)
    second.get_by_label("bag", exact=True).check()
    second.get_by_role("button", name="Save corrections").click()
    expect(second.locator(".messages")).to_contain_text(f"No active tag with id {tags['bag'].pk}")
    expect(second.get_by_role("button", name="Save corrections")).to_be_visible()
    corrected.refresh_from_db()
    assert corrected.status == "predicted" and corrected.resolved_tags is None
    assert not TagAnnotation.objects.filter(image_id=corrected.image_id).exists()

    # The card drawn again offers only the active tags.
    expect(second.get_by_label("bag", exact=True)).to_have_count(0)
    expect(second.get_by_label("has legs", exact=True)).to_be_visible()

    # Bag back, the page reloaded: corrected by ticks (footwear unticked, bag and has
    # legs ticked) and "Save corrections".
    labeling_services.label_class_update(label_class=tags["bag"], is_active=True, actor=owner)
    page.reload()
    second = page.locator(f"#prediction-{corrected.pk}")
    second.get_by_label("footwear", exact=True).uncheck()
    second.get_by_label("bag", exact=True).check()
    second.get_by_label("has legs", exact=True).check()
    second.get_by_role("button", name="Save corrections").click()
    expect(second).to_contain_text("Corrected by olivia-owner")
    expect(second.locator(".resolved-tag")).to_have_text(["bag", "has legs"])
    corrected.refresh_from_db()
    assert corrected.status == "corrected"
    assert corrected.resolved_tags == sorted([tags["bag"].pk, tags["has legs"].pk])
    assert stored(corrected.image_id) == {
        "footwear": "absent",
        "bag": "present",
        "has legs": "present",
    }
    saves = set(
        TagAnnotation.objects.filter(image_id=corrected.image_id).values_list("save_id", flat=True)
    )
    assert saves == {corrected.tag_save_id}

    # Reloaded: each decided once, shown as decided, with no form; counted in use.
    page.reload()
    for prediction, text in ((confirmed, "Confirmed"), (corrected, "Corrected")):
        card = page.locator(f"#prediction-{prediction.pk}")
        expect(card).to_have_count(1)
        expect(card).to_contain_text(f"{text} by olivia-owner")
        expect(card.locator("form")).to_have_count(0)
    in_use = page.locator("table.metrics", has_text="Confirmed or corrected")
    expect(in_use.locator("tr", has_text="v1").locator("td")).to_have_text(["v1", "2", "50%"])
    # The review page lists the correction made in use, with both tag sets.
    page.goto(f"/projects/{project.pk}/review/")
    listed = page.locator(f"#corrected-{corrected.pk}")
    expect(listed).to_contain_text(re.compile(r"corrected it to bag has legs", re.IGNORECASE))
    no_task_failed()
    assert Task.objects.filter(func="feedback.tasks.predict", success=True).exists()


def test_disputed_tags_are_scanned_flipped_by_button_and_key_and_kept_by_enter(
    page, wardrobe, worker, owner, reviewer, fashion
):
    project, tags = wardrobe
    bag, footwear = tags["bag"], tags["footwear"]
    # Three sneakers saved as bags by mistake: the review must dispute them.
    names = [u.name for u, _ in fashion_uploads(fashion, ["Sneaker"], 12)]
    wrong = list(Image.objects.filter(project=project, original_name__in=names).order_by("id")[:3])
    for image in wrong:
        labeling_services.image_tags_set(image=image, present=[bag.pk], annotator=owner)

    log_in(page, reviewer)
    page.goto(f"/projects/{project.pk}/review/")
    expect(page.get_by_text("No scan yet.")).to_be_visible()
    page.get_by_role("button", name="Scan labels now").click()
    expect(page.get_by_text("Scoring every label in the background")).to_be_visible()
    deadline = time.monotonic() + 180
    while not page.get_by_text("Last scan: succeeded").is_visible():
        assert time.monotonic() < deadline, "the review scan did not finish"
        scan = ReviewScan.objects.filter(project=project).first()
        assert scan is None or scan.status != "failed", scan.error
        page.wait_for_timeout(2000)
        page.reload()
    scan = ReviewScan.objects.get(project=project)
    assert scan.labeled == 48

    total = selectors.tag_mistakes_list(project=project).count()
    expect(page.get_by_role("heading", name=f"Tags the model disputes ({total})")).to_be_visible()
    disputed = page.locator('[data-shortcuts="cards"] .card.mistake[data-pending]')
    shown = [
        int(i.removeprefix("review-")) for i in disputed.evaluate_all("cs => cs.map(c => c.id)")
    ]
    assert {i.pk for i in wrong} <= set(shown), (shown, [i.pk for i in wrong])
    flipped, keyed, kept = (page.locator(f"#review-{i.pk}") for i in wrong)
    for card in (flipped, keyed, kept):
        expect(card).to_contain_text("tagged bag.")
        expect(card.locator(".suspects li").first).to_be_visible()

    # A flip of a tag deactivated since the page was drawn: refused on the card.
    reviews = TagReview.objects.count()
    labeling_services.label_class_update(label_class=bag, is_active=False, actor=owner)
    flipped.get_by_role("button", name="Flip bag to absent").click()
    expect(flipped.locator(".messages")).to_contain_text("Choose an active tag of this project")
    assert TagReview.objects.count() == reviews
    assert stored(wrong[0].pk)["bag"] == "present"
    labeling_services.label_class_update(label_class=bag, is_active=True, actor=owner)
    page.reload()

    # Flip by button: bag off; if footwear absent is still disputed, flip that too.
    flipped.get_by_role("button", name="Flip bag to absent").click()
    expect(flipped).not_to_contain_text("Flip bag")
    review = TagReview.objects.get(image=wrong[0], tag=bag)
    assert (review.action, review.state, review.reviewer) == ("flip", "absent", reviewer)
    assert stored(wrong[0].pk)["bag"] == "absent"
    footwear_flip = flipped.get_by_role("button", name="Flip footwear to present")
    if footwear_flip.count():
        footwear_flip.click()
        expect(flipped).not_to_contain_text("Flip footwear")
        review = TagReview.objects.get(image=wrong[0], tag=footwear)
        assert (review.action, review.state) == ("flip", "present")
    expect(flipped).to_contain_text("tagged footwear; reviewed.")
    expect(flipped).not_to_have_attribute("data-pending", "")
    assert stored(wrong[0].pk) == {"footwear": "present", "bag": "absent", "has legs": "absent"}

    # Flip by key: click the card, press the first disputed tag's key.
    first_suspect = keyed.locator(".suspects li").first
    tag_id = int(first_suspect.get_attribute("data-tag-id"))
    before = stored(wrong[1].pk)
    name = next(n for n, t in tags.items() if t.pk == tag_id)
    keyed.locator("img.thumb").click()
    expect(keyed).to_have_class(PENDING)
    page.keyboard.press(tags[name].key)
    expect(keyed.locator(f'.suspects li[data-tag-id="{tag_id}"]')).to_have_count(0)
    flip = {"present": "absent", "absent": "present"}[before[name]]
    assert stored(wrong[1].pk)[name] == flip
    review = TagReview.objects.get(image=wrong[1])
    assert (review.action, review.tag_id, review.state) == ("flip", tag_id, flip)

    # Keep by Enter on the highlighted card: tags unchanged, a keep row.
    kept.locator("img.thumb").click()
    expect(kept).to_have_class(PENDING)
    page.keyboard.press("Enter")
    expect(kept).to_contain_text("tagged bag; reviewed.")
    expect(kept).not_to_have_attribute("data-pending", "")
    assert stored(wrong[2].pk) == {"footwear": "absent", "bag": "present", "has legs": "absent"}
    assert TagReview.objects.get(image=wrong[2]).action == "keep"

    # Reloaded: the decided cards have left the list, and the count says so.
    page.reload()
    expect(page.locator(f"#review-{wrong[0].pk}")).to_have_count(0)
    expect(page.locator(f"#review-{wrong[2].pk}")).to_have_count(0)
    left = selectors.tag_mistakes_list(project=project)
    assert not left.filter(image__in=[wrong[0], wrong[2]]).exists()
    expect(
        page.get_by_role("heading", name=f"Tags the model disputes ({left.count()})")
    ).to_be_visible()
    no_task_failed()
    assert Task.objects.get(func="feedback.tasks.scan").result == "succeeded"
