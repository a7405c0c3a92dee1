"""The acceptance suite: the app served as users meet it (live server, a real django-q2
worker process, PostgreSQL), driven in Chromium through every flow a new user takes:
upload, embedding, keyboard labeling, retraining, predictions confirmed and corrected,
the mistakes review, class changes, export and import, members.

Every bad input a user might send is sent too: its message must be visible, and the
database must show that nothing of it was saved. Every kind of background task runs in
the worker at least once across the tests (`TASKS_BY_TEST`), and none may fail.
"""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path

import pytest
from django_q.models import Schedule, Task
from django_q.tasks import async_task
from playwright.sync_api import expect

from feedback.models import FeedbackSettings, Prediction, ReviewScan
from feedback.selectors import mistakes_list
from labeling import services
from labeling.models import (
    Annotation,
    ClassMerge,
    ClassSplit,
    Image,
    LabelClass,
    Membership,
    Project,
)
from models_app import services as learner
from models_app.models import LearnerSettings, ModelVersion
from models_app.selectors import projects_due_for_training
from tests import image_corpus as corpus
from tests.conftest import qcluster_start, qcluster_stop
from tests.e2e.test_labeling_flow import log_in, shown_image_id
from tests.factories import UserFactory
from tests.fashion import fashion_uploads, labeled_project, wait_for

pytestmark = pytest.mark.e2e

WORKER = 240_000  # ms: what the worker does (load the backbone, embed, train) on two cores

EMBED_PROJECT = "models_app.tasks.embed_project"
EMBED_CHUNK = "models_app.tasks.embed_chunk"
TRAIN = "models_app.tasks.train_model_version"
RERANK = "models_app.tasks.rerank_project"
PREDICT = "feedback.tasks.predict"
SCAN = "feedback.tasks.scan"
ALL_TASKS = {EMBED_PROJECT, EMBED_CHUNK, TRAIN, RERANK, PREDICT, SCAN}
RETRAIN_TICK = "models_app.tasks.retrain_due_projects"  # a scheduled tick, run once here

# What each test makes the worker run (each test has its own database and worker, so
# each checks its own share); together they are every task type there is.
TASKS_BY_TEST = {
    "first_session": {EMBED_PROJECT, EMBED_CHUNK, TRAIN, RERANK},
    "predict_and_review": {EMBED_PROJECT, EMBED_CHUNK, TRAIN, PREDICT, SCAN},
    "classes": {EMBED_PROJECT, EMBED_CHUNK, TRAIN, RETRAIN_TICK},
    "travel": {EMBED_PROJECT, EMBED_CHUNK, TRAIN, PREDICT},
}
assert set().union(*TASKS_BY_TEST.values()) >= ALL_TASKS


# --- helpers -------------------------------------------------------------------------


@pytest.fixture
def worker(transactional_db, media_root):
    """The real worker, without the periodic ticks the migrations schedule: the database
    is flushed after each transactional test, so only the session's first one would
    have them, and what a test sees would depend on the order the tests run in. A test
    that needs a tick enqueues it, as the scheduler does."""
    Schedule.objects.all().delete()
    process = qcluster_start(media_root)
    yield process
    qcluster_stop(process)


class Soft:
    """Checks whose failure should not stop the flow (a message missing from a page that
    is otherwise right): every failure is collected, and the test fails at its end."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def check(self, what: str, assertion) -> None:
        try:
            assertion()
        except AssertionError as error:
            self.failures.append(f"{what}: {str(error).splitlines()[0]}")

    def assert_none(self) -> None:
        assert not self.failures, "\n".join(self.failures)


@pytest.fixture(autouse=True)
def patient(page):
    """Longer waits than the default for every step: the machine's two cores are shared
    by the browser, the live server, the worker, PostgreSQL and often other test runs.
    Only time is relaxed; every assertion stays as it is."""
    page.set_default_timeout(30_000)
    page.set_default_navigation_timeout(60_000)
    expect.set_options(timeout=20_000)
    yield
    expect.set_options(timeout=5_000)  # Playwright's default, for the tests after these


def assert_worker_ran(funcs: set[str]) -> None:
    """Every task in `funcs` ran in the worker and succeeded, and no task failed."""
    failed = list(Task.objects.filter(success=False).values_list("func", "result"))
    assert not failed, f"tasks failed in the worker: {failed}"
    for func in sorted(funcs):
        wait_for(lambda f=func: Task.objects.filter(func=f, success=True).exists(), timeout=120)
    failed = list(Task.objects.filter(success=False).values_list("func", "result"))
    assert not failed, f"tasks failed in the worker: {failed}"


def write_fashion(fashion, directory: Path, names: list[str], per_class: int, skip: int = 0):
    """Real Fashion-MNIST images written to files: {path: true class name}."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for upload, name in fashion_uploads(fashion, names, per_class, skip=skip):
        path = directory / upload.name
        path.write_bytes(upload.read())
        out[path] = name
    return out


def class_zip(path: Path, files: dict[Path, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for file, name in files.items():
            archive.write(file, f"{name}/{file.name}")
    return path


def counter(page, name: str):
    return page.get_by_test_id(f"count-{name}")


def press_and_wait(page, key: str) -> str:
    """Press a key on the labeling page and wait for the next image; returns the id of
    the image the key acted on."""
    before = shown_image_id(page)
    page.keyboard.press(key)
    expect(page.locator("#current-image")).not_to_have_attribute("data-image-id", before)
    return before


def shown_image(page) -> Image:
    return Image.objects.get(pk=int(shown_image_id(page)))


def wait_for_active_version(project: Project) -> ModelVersion:
    def active():
        version = ModelVersion.objects.filter(project=project).order_by("-number").first()
        assert version is None or version.status != "failed", version.error
        return version if version and version.is_active else None

    return wait_for(active, timeout=WORKER / 1000)


def trained_project(owner, fashion, names, per_class, unlabeled_per_class=0):
    """A project of real labeled images whose first model the worker trains."""
    project = services.project_create(name="Clothes", user=owner)
    classes = labeled_project(
        project, owner, fashion, names, per_class, unlabeled_per_class=unlabeled_per_class
    )
    learner.model_version_request(project=project, trigger="api", user=owner)
    return project, classes


# --- 1. a new owner's first session ----------------------------------------------------


def test_a_new_owner_uploads_labels_by_keyboard_and_trains_a_model(
    page, worker, fashion, tmp_path, media_root
):
    owner = UserFactory(username="olivia")
    log_in(page, owner)

    page.locator("#project-create").get_by_label("Name").fill("Clothes")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Clothes")).to_be_visible()
    project = Project.objects.get(name="Clothes")
    for name in ("Trouser", "Bag"):
        page.locator("#class-create").get_by_label("Name").fill(name)
        page.get_by_role("button", name="Add class").click()
        expect(counter(page, f"class-{name.lower()}")).to_have_text("0")
    keys = dict(LabelClass.objects.filter(project=project).values_list("name", "key"))
    assert keys == {"Trouser": "1", "Bag": "2"}
    # Retrain with nothing labeled yet: refused at once, saying why; no version made.
    page.get_by_role("button", name="Retrain").click()
    expect(page.get_by_test_id("retrain-error")).to_contain_text(
        "Training needs labeled training images of at least two classes"
    )
    assert not ModelVersion.objects.exists()

    # Files through the form: real images, messy real-world files, and one cut short.
    truth = write_fashion(fashion, tmp_path / "files", ["Trouser", "Bag"], per_class=10)
    messy = [
        corpus.png_rgba_disc(),
        corpus.jpeg_cmyk_adobe(),
        corpus.jpeg_orientation(6)(),
        corpus.gif_animated(),
        corpus.png_16bit_grey_ramp(),
    ]
    messy_paths = []
    for sample in messy:
        path = tmp_path / "files" / sample.filename
        path.write_bytes(sample.data)
        messy_paths.append(path)
    cut = tmp_path / "files" / "holiday-cut.jpg"
    cut.write_bytes(corpus.truncated(corpus.photo("JPEG")))
    page.set_input_files("#upload-input", [*truth, *messy_paths, cut])
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#upload-status")).to_have_text("25 added, 0 duplicate, 1 refused.")
    refused = page.locator(".result.rejected")
    expect(refused).to_have_count(1)
    expect(refused).to_contain_text("holiday-cut.jpg")
    expect(refused).to_contain_text("truncated or corrupt")
    expect(counter(page, "total")).to_have_text("25")
    stored = set(Image.objects.filter(project=project).values_list("original_name", flat=True))
    assert stored == {p.name for p in [*truth, *messy_paths]}
    files_on_disk = list((media_root / "projects" / str(project.pk) / "images").rglob("*.*"))
    assert len(files_on_disk) == 25, files_on_disk  # nothing of the cut file stayed behind

    # A zip whose folders are the classes: labeled images.
    zipped = write_fashion(fashion, tmp_path / "zip", ["Trouser", "Bag"], per_class=5, skip=10)
    again = next(iter(truth))  # one file sent twice: reported, not stored twice
    page.set_input_files("#upload-input", [class_zip(tmp_path / "wardrobe.zip", zipped), again])
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#upload-status")).to_have_text("10 added, 1 duplicate, 0 refused.")
    expect(page.locator(".result.duplicate")).to_contain_text("Already in this project")
    assert Image.objects.filter(project=project, original_name=again.name).count() == 1
    expect(counter(page, "total")).to_have_text("35")
    expect(counter(page, "class-trouser")).to_have_text("5")
    expect(counter(page, "class-bag")).to_have_text("5")
    imported = Image.objects.filter(project=project, source=Image.Source.IMPORT)
    assert imported.count() == 10
    assert {i.original_name.split("/")[-1]: i.label.name for i in imported} == {
        p.name: n for p, n in zipped.items()
    }
    truth_by_name = {p.name: n for p, n in truth.items()}

    # The model card counts the embedded images and updates itself, no reload needed.
    embedded = page.locator("#learner-status").get_by_test_id("embedded")
    expect(embedded).to_contain_text(re.compile(r"Embedded \d+ of 35 images"))
    expect(embedded).to_have_text("Embedded 35 of 35 images", timeout=WORKER)

    # Keyboard labeling: the class keys, Space skips, Backspace undoes.
    page.get_by_role("link", name="Start labeling").click()
    expect(page.locator("#current-image")).to_be_visible()
    expect(page.get_by_test_id("suggestion")).to_have_count(0)
    # No model yet: Enter has nothing to accept and does nothing.
    first = shown_image_id(page)
    annotations_before = Annotation.objects.count()
    page.keyboard.press("Enter")
    page.wait_for_timeout(1500)
    page.wait_for_load_state("networkidle")
    expect(page.locator("#current-image")).to_have_attribute("data-image-id", first)
    assert Annotation.objects.count() == annotations_before

    page.reload()  # the image shown stays reserved for this user, and shown
    expect(page.locator("#current-image")).to_have_attribute("data-image-id", first)

    labeled_now: list[int] = []
    skipped: list[int] = []
    while len(labeled_now) < 8:
        image = shown_image(page)
        name = truth_by_name.get(image.original_name)
        if name is None:  # one of the messy files: shown like any image, then skipped
            page.wait_for_function(
                "() => { const i = document.querySelector('#current-image');"
                " return i && i.complete && i.naturalWidth > 0; }"
            )
            skipped.append(int(press_and_wait(page, " ")))
        else:
            labeled_now.append(int(press_and_wait(page, keys[name])))
    if not skipped:
        skipped.append(int(press_and_wait(page, " ")))
    expect(counter(page, "labeled")).to_have_text("18")
    for pk in skipped:
        assert Image.objects.get(pk=pk).label is None
        assert not Annotation.objects.filter(image_id=pk).exists()

    last = labeled_now[-1]
    page.keyboard.press("Backspace")
    expect(page.locator("#current-image")).to_have_attribute("data-image-id", str(last))
    expect(counter(page, "labeled")).to_have_text("17")
    assert Image.objects.get(pk=last).label is None
    assert Annotation.objects.filter(image_id=last, is_current=True).get().label_class is None
    press_and_wait(page, keys[truth_by_name[Image.objects.get(pk=last).original_name]])
    expect(counter(page, "labeled")).to_have_text("18")
    for pk in labeled_now:
        image = Image.objects.get(pk=pk)
        assert image.label.name == truth_by_name[image.original_name], image

    # Retrain from the project page: the model arrives while the page watches.
    page.goto(f"/projects/{project.pk}/")
    page.get_by_role("button", name="Retrain").click()
    expect(page.get_by_test_id("training")).to_contain_text("Training v1")
    expect(page.get_by_test_id("active-version")).to_contain_text("Active: v1", timeout=WORKER)
    version = ModelVersion.objects.get(project=project)
    assert version.is_active and version.status == "succeeded"

    page.get_by_role("link", name="Model dashboard").click()
    held_out = Image.objects.filter(
        project=project, split=Image.Split.TEST, label__isnull=False, status="active"
    ).count()
    assert held_out > 0
    status = page.get_by_test_id("active-version")
    expect(status).to_contain_text(f"on {held_out} held-out label")
    expect(page.get_by_test_id("accuracy-interval")).to_contain_text(
        re.compile(r"95% interval \d+–\d+%")
    )
    expect(page.get_by_test_id("few-held-out")).to_contain_text(f"Only {held_out} held-out")
    expect(page.locator("#versions")).to_contain_text("v1 (active)")

    # Once a model exists, Enter accepts its suggestion.
    page.goto(f"/projects/{project.pk}/label/")
    expect(page.get_by_test_id("suggestion")).to_contain_text("Model suggests")
    image = shown_image(page)
    assert image.suggested_class is not None
    expect(page.locator(".class-button.suggested")).to_contain_text(image.suggested_class.name)
    accepted = int(press_and_wait(page, "Enter"))
    assert accepted == image.pk
    assert Image.objects.get(pk=accepted).label == image.suggested_class

    # Training settings: a refused value says why and saves nothing; a new query
    # strategy, saved, re-ranks the queue in the worker.
    page.goto(f"/projects/{project.pk}/model/")
    form = page.locator("#learner-settings")
    form.get_by_label("Queue order").select_option("margin")
    form.get_by_label("Fine-tuning epochs").fill("1000")
    form.get_by_role("button", name="Save").click()
    expect(form.locator(".error")).to_contain_text("less than or equal to 100")
    expect(form.get_by_label("Fine-tuning epochs")).to_have_value("1000")
    # The refused form is still the whole dashboard: the versions and metrics stay shown.
    expect(page.locator("#versions")).to_contain_text("v1 (active)")
    expect(page.locator("#confusion svg")).to_be_visible()
    stored_settings = LearnerSettings.objects.get(project=project)
    assert (stored_settings.strategy, stored_settings.fine_tune_epochs) == ("auto", 5)
    assert not Task.objects.filter(func=RERANK).exists()
    form.get_by_label("Fine-tuning epochs").fill("5")
    form.get_by_label("Queue order").select_option("margin")
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved; the next version uses these settings.")).to_be_visible()
    assert LearnerSettings.objects.get(project=project).strategy == "margin"
    rerank = wait_for(lambda: Task.objects.filter(func=RERANK, success=True).first(), timeout=120)
    unlabeled = Image.objects.filter(project=project, label__isnull=True).count()
    assert rerank.result == unlabeled  # every unlabeled image ranked again

    assert_worker_ran(TASKS_BY_TEST["first_session"])


# --- 2. predictions in use, and the mistakes review -------------------------------------


def test_predictions_are_confirmed_and_corrected_and_mistakes_reviewed(
    page, worker, fashion, tmp_path
):
    owner = UserFactory(username="olivia")
    names = ["Trouser", "Bag", "Sneaker"]
    project, classes = trained_project(owner, fashion, names, per_class=12)
    # Three trousers labeled as bags by mistake: the review must find them.
    flipped = list(
        Image.objects.filter(project=project, label=classes["Trouser"]).order_by("id")[:3]
    )
    for image in flipped:
        services.annotation_create(image=image, label_class=classes["Bag"], annotator=owner)
    version = wait_for_active_version(project)

    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/")
    page.get_by_role("link", name="Predict").click()
    expect(page.get_by_role("heading", name="Predict", exact=True)).to_be_visible()
    # The threshold under which a prediction joins the labeling queue: an empty value is
    # refused beside the form; 100% sends every prediction to the queue.
    threshold = page.locator("#threshold-form")
    threshold.get_by_label("Send to the queue under").fill("")
    threshold.get_by_role("button", name="Save").click()
    expect(threshold.locator(".form-errors")).to_contain_text(
        "The threshold is a number of percent, from 0 to 100."
    )
    assert FeedbackSettings.objects.get(project=project).uncertain_below == 0.6
    threshold.get_by_label("Send to the queue under").fill("100")
    threshold.get_by_role("button", name="Save").click()
    expect(threshold).to_contain_text("Predictions under 100% now enter the queue.")
    assert FeedbackSettings.objects.get(project=project).uncertain_below == 1.0

    unseen = write_fashion(fashion, tmp_path, ["Trouser", "Sneaker"], per_class=1, skip=20)
    cut = tmp_path / "cut.png"
    cut.write_bytes(corpus.truncated(corpus.photo("PNG")))
    page.set_input_files('#predict-form input[name="files"]', [*unseen, cut])
    page.locator("#predict-form").get_by_role("button", name="Predict").click()
    results = page.locator("#results")
    # The worker answers while the page waits; the cut file is refused with its reason.
    expect(results).to_contain_text("cut.png", timeout=60_000)
    expect(results.get_by_text(re.compile("cut.png.*truncated or corrupt"))).to_be_visible()
    cards = results.locator(".card.prediction")
    expect(cards).to_have_count(2)
    for i in range(2):
        expect(cards.nth(i).locator(".top-k li")).to_have_count(3)
    predictions = list(Prediction.objects.filter(project=project).order_by("id"))
    assert len(predictions) == 2
    assert all(p.status == "predicted" and p.model_version == version for p in predictions)
    assert not Image.objects.filter(project=project, original_name="cut.png").exists()
    for card, prediction in zip([cards.nth(0), cards.nth(1)], predictions, strict=True):
        expect(card).to_have_attribute("id", f"prediction-{prediction.pk}")
        expect(card.locator(".top-k li").first).to_contain_text(prediction.predicted_class.name)
        # Unsure (under 100%): said on the card, and the image is in the labeling queue.
        expect(card).to_contain_text("Unsure, sent to the labeling queue")
        assert prediction.uncertain_reason and prediction.image.in_queue

    # Enter confirms the highlighted prediction, a class key corrects the next one.
    first, second = predictions
    expect(cards.nth(0)).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press("Enter")
    expect(page.locator(f"#prediction-{first.pk}")).to_contain_text("Confirmed by olivia")
    expect(page.locator(f"#prediction-{second.pk}")).to_have_class(re.compile(r"\bcurrent\b"))
    other = next(c for c in classes.values() if c.pk != second.predicted_class_id)
    page.keyboard.press(other.key)
    expect(page.locator(f"#prediction-{second.pk}")).to_contain_text(f"Corrected to {other.name}")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.image.label) == ("confirmed", first.predicted_class)
    assert (second.status, second.image.label) == ("corrected", other)
    page.reload()  # decided once, shown once, as decided
    expect(page.locator(f"#prediction-{first.pk}")).to_have_count(1)
    expect(page.locator(f"#prediction-{first.pk}")).to_contain_text("Confirmed by olivia")
    expect(page.locator(f"#prediction-{second.pk}")).to_contain_text(f"Corrected to {other.name}")
    expect(page.locator(f"#prediction-{second.pk} button")).to_have_count(0)
    in_use = page.locator("table.metrics", has_text="Confirmed or corrected")
    expect(in_use.locator("tr", has_text="v1").locator("td")).to_have_text(["v1", "2", "50%"])

    # The review: scan now, wait for the worker's scan, keep one label and fix another.
    page.goto(f"/projects/{project.pk}/")
    page.get_by_role("link", name="Review mistakes").click()
    page.get_by_role("button", name="Scan labels now").click()
    expect(page.get_by_text("Scoring every label in the background")).to_be_visible()
    deadline = time.monotonic() + WORKER / 1000
    while not page.get_by_text("Last scan: succeeded").is_visible():
        assert time.monotonic() < deadline, "the review scan did not finish"
        scan = ReviewScan.objects.filter(project=project).first()
        assert scan is None or scan.status != "failed", scan.error
        page.wait_for_timeout(2000)
        page.reload()
    scan = ReviewScan.objects.get(project=project)
    assert scan.status == "succeeded" and scan.labeled >= 36
    disputed = page.locator('[data-shortcuts="cards"] .card.mistake[data-pending]')
    disputed_total = mistakes_list(project=project).count()
    assert disputed_total >= 2
    expect(
        page.get_by_role("heading", name=f"Labels the model disputes ({disputed_total})")
    ).to_be_visible()
    flipped_ids = {i.pk for i in flipped}
    shown = [
        int(card_id.removeprefix("review-"))
        for card_id in disputed.evaluate_all("cards => cards.map(c => c.id)")
        if card_id.startswith("review-")
    ]
    assert flipped_ids & set(shown), (shown, flipped_ids)
    assert len(shown) >= 2, shown

    # Relabel a flipped one with its true class's key (click the card, press the key).
    wrong = next(pk for pk in shown if pk in flipped_ids)
    page.locator(f"#review-{wrong} img.thumb").click()
    expect(page.locator(f"#review-{wrong}")).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press(classes["Trouser"].key)
    expect(page.locator(f"#review-{wrong}")).to_contain_text("Trouser")
    expect(page.locator(f"#review-{wrong}")).not_to_have_attribute("data-pending", "")
    assert Image.objects.get(pk=wrong).label == classes["Trouser"]
    # Keep another: Enter on the highlighted card.
    kept = next(pk for pk in shown if pk != wrong)
    page.locator(f"#review-{kept} img.thumb").click()
    expect(page.locator(f"#review-{kept}")).to_have_class(re.compile(r"\bcurrent\b"))
    label_before = Image.objects.get(pk=kept).label
    page.keyboard.press("Enter")
    expect(page.locator(f"#review-{kept}")).not_to_have_attribute("data-pending", "")
    current = Annotation.objects.get(image_id=kept, is_current=True)
    assert (current.action, current.label_class) == ("keep", label_before)
    # Kept and fixed labels leave the list; the prediction corrected in use is listed.
    page.reload()
    expect(page.locator(f"#review-{kept}")).to_have_count(0)
    expect(page.locator(f"#review-{wrong}")).to_have_count(0)
    expect(page.locator(f"#corrected-{second.pk}")).to_contain_text(
        f"olivia corrected it to {other.name}"
    )

    assert_worker_ran(TASKS_BY_TEST["predict_and_review"])
    assert Task.objects.get(func=SCAN).result == "succeeded"
    assert all(t.result == "succeeded" for t in Task.objects.filter(func=TRAIN))


# --- 3. classes evolve: rename, merge and undo, split, parent ---------------------------


def test_an_expert_renames_merges_splits_and_nests_classes(page, worker, fashion, owner):
    project = services.project_create(name="Clothes", user=owner)
    classes = labeled_project(project, owner, fashion, ["Trouser", "Bag"], per_class=8)
    # Sandals and ankle boots were first labeled together as "Shoes".
    shoes = services.label_class_create(project=project, name="Shoes")
    uploads = fashion_uploads(fashion, ["Sandal", "Ankle boot"], per_class=8)
    results = services.images_ingest(project=project, files=[u for u, _ in uploads], user=owner)
    truth = {}
    for (_, name), result in zip(uploads, results, strict=True):
        image = Image.objects.get(pk=result.image_id)
        services.annotation_create(image=image, label_class=shoes, annotator=owner)
        truth[image.pk] = name
    trouser, bag = classes["Trouser"], classes["Bag"]
    labels_before = dict(Image.objects.filter(project=project).values_list("id", "label_id"))
    learner.model_version_request(project=project, trigger="api", user=owner)

    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/")
    # The split needs the embeddings: the model card shows when the worker has them.
    expect(page.get_by_test_id("embedded")).to_have_text("Embedded 32 of 32 images", timeout=WORKER)
    expect(page.get_by_test_id("active-version")).to_contain_text("Active: v1", timeout=WORKER)
    page.get_by_role("link", name="Classes").click()
    content = page.locator("#classes-content")

    # Rename: a name taken (ignoring case) is refused beside the row, nothing saved.
    row = page.locator(f"#class-{bag.pk}")
    row.get_by_label("Name of Bag").fill("trouser")
    row.get_by_role("button", name="Save").click()
    expect(content.locator(".form-errors")).to_contain_text(
        "A class named 'trouser' already exists."
    )
    expect(page.locator(f"#class-{bag.pk}").get_by_label("Name of Bag")).to_have_value("trouser")
    assert LabelClass.objects.get(pk=bag.pk).name == "Bag"
    row = page.locator(f"#class-{trouser.pk}")
    row.get_by_label("Name of Trouser").fill("Trousers")
    row.get_by_role("button", name="Save").click()
    expect(content.locator(".messages")).to_contain_text("Saved Trousers.")
    assert LabelClass.objects.get(pk=trouser.pk).name == "Trousers"

    # Merge: one class alone is refused; two merge into a new one, and undo restores.
    merge_form = page.locator("#merge-form")
    merge_form.get_by_label("Trousers").check()
    merge_form.get_by_label("Into (one of their names, or a new one)").fill("Things")
    merge_form.get_by_role("button", name="Merge").click()
    expect(content.locator(".form-errors")).to_contain_text("Choose at least two classes to merge.")
    assert not ClassMerge.objects.exists()
    assert not LabelClass.objects.filter(project=project, name="Things").exists()
    merge_form = page.locator("#merge-form")
    expect(merge_form.get_by_label("Trousers")).to_be_checked()
    merge_form.get_by_label("Bag", exact=True).check()
    merge_form.get_by_label("Into (one of their names, or a new one)").fill("Things")
    merge_form.get_by_role("button", name="Merge").click()
    expect(content.locator(".messages")).to_contain_text("Merged into Things")
    things = LabelClass.objects.get(project=project, name="Things")
    assert Image.objects.filter(project=project, label=things).count() == 16
    assert not LabelClass.objects.get(pk=trouser.pk).is_active
    assert project in projects_due_for_training()  # "the model retrains" at the next tick
    page.get_by_role("button", name="Undo").click()
    expect(content.locator(".messages")).to_contain_text("Merge undone: 16 labels restored.")
    assert (
        dict(Image.objects.filter(project=project).values_list("id", "label_id")) == labels_before
    )
    assert LabelClass.objects.get(pk=trouser.pk).is_active
    assert not LabelClass.objects.get(pk=things.pk).is_active

    # Split Shoes: one new name is refused; two open the split page.
    split_form = page.locator("#split-form")
    split_form.get_by_label("Class").select_option(label="Shoes")
    split_form.get_by_label("Into (comma-separated names)").fill("Sandals")
    split_form.get_by_role("button", name="Start splitting").click()
    expect(content.locator(".form-errors")).to_contain_text(
        "Name at least two different new classes."
    )
    assert not ClassSplit.objects.exists()
    assert not LabelClass.objects.filter(project=project, name="Sandals").exists()
    split_form = page.locator("#split-form")
    split_form.get_by_label("Class").select_option(label="Shoes")
    split_form.get_by_label("Into (comma-separated names)").fill("Sandals, Boots")
    split_form.get_by_role("button", name="Start splitting").click()
    expect(page.get_by_role("heading", name="Splitting Shoes into Sandals, Boots")).to_be_visible()
    split = ClassSplit.objects.get()

    # Suggestions before any seed: refused, with what is missing.
    page.get_by_role("button", name="Suggest for the rest").click()
    expect(page.locator(".messages")).to_contain_text(
        "Choose at least one image for each new class"
    )
    assert not split.assignments.exists()
    for key, name in (("1", "Sandal"), ("2", "Ankle boot")):
        for pk in [pk for pk, n in sorted(truth.items()) if n == name][:2]:
            page.locator(f'input[name="images"][value="{pk}"]').check()
        page.keyboard.press(key)
        expect(page.locator(".messages")).to_contain_text("2 image(s) assigned.")
    page.get_by_role("button", name="Suggest for the rest").click()
    expect(page.locator(".messages")).to_contain_text("12 suggestions made.")
    page.get_by_label("Accept suggestions from").fill("0")
    page.get_by_role("button", name="Accept").click()
    expect(page.locator(".messages")).to_contain_text("12 suggestion(s) accepted.")
    page.get_by_role("button", name="Finish the split").click()
    expect(page.locator(".messages")).to_contain_text("Split finished: 16 moved, 0 to re-label")
    split.refresh_from_db()
    assert split.status == "finished"
    final = dict(Image.objects.filter(project=project).values_list("id", "label__name"))
    recovered = sum(
        final[pk] == {"Sandal": "Sandals", "Ankle boot": "Boots"}[name]
        for pk, name in truth.items()
    )
    assert recovered >= 14, recovered
    assert not LabelClass.objects.get(pk=shoes.pk).is_active

    # A parent: a new class on the project page, then Bag's parent on the classes page.
    page.goto(f"/projects/{project.pk}/")
    page.locator("#class-create").get_by_label("Name").fill("Accessories")
    page.get_by_role("button", name="Add class").click()
    expect(counter(page, "class-accessories")).to_have_text("0")
    accessories = LabelClass.objects.get(project=project, name="Accessories")
    page.get_by_role("link", name="Classes").click()
    row = page.locator(f"#class-{bag.pk}")
    row.get_by_label("Parent of Bag").select_option(label="Accessories")
    row.get_by_role("button", name="Save").click()
    expect(content.locator(".messages")).to_contain_text("Saved Bag.")
    assert LabelClass.objects.get(pk=bag.pk).parent == accessories
    # One level only: a parent cannot get a parent itself.
    row = page.locator(f"#class-{accessories.pk}")
    row.get_by_label("Parent of Accessories").select_option(label="Trousers")
    row.get_by_role("button", name="Save").click()
    expect(content.locator(".form-errors")).to_contain_text("has children: one level only.")
    assert LabelClass.objects.get(pk=accessories.pk).parent is None
    # Images are labeled with the children: the grid does not offer the parent.
    page.goto(f"/projects/{project.pk}/images/")
    offered = page.locator("#assign-class option")
    expect(offered.filter(has_text="Bag")).to_have_count(1)
    expect(offered.filter(has_text="Accessories")).to_have_count(0)
    page.goto(f"/projects/{project.pk}/taxonomy/")
    page.get_by_role("link", name="History of every change").click()
    for text in ("Trousers", "Merged", "Undid the merge", "Started splitting", "Accessories"):
        expect(page.locator("main")).to_contain_text(text)

    # The classes changed, so the model retrains at the scheduler's next tick (enqueued
    # here as the scheduler does), on the new classes, and reports one level up.
    async_task(RETRAIN_TICK)
    tick = wait_for(lambda: Task.objects.filter(func=RETRAIN_TICK).first(), timeout=120)
    assert (tick.success, tick.result) == (True, 1), tick.result
    page.goto(f"/projects/{project.pk}/model/")
    expect(page.get_by_test_id("active-version")).to_contain_text("Active: v2", timeout=WORKER)
    page.reload()  # the status card follows the worker; the rest is drawn on load
    v2 = ModelVersion.objects.get(project=project, number=2)
    assert not ModelVersion.objects.filter(number__gt=2).exists()
    assert v2.trigger == "taxonomy"
    names = {c.name for c in LabelClass.objects.filter(pk__in=v2.class_ids)}
    assert names == {"Trousers", "Bag", "Sandals", "Boots"}
    expect(page.locator("#versions")).to_contain_text("Class change")
    if v2.metrics.get("test"):
        expect(page.locator("#parent-level")).to_contain_text("children counted as their parent")

    assert_worker_ran(TASKS_BY_TEST["classes"])


# --- 4. members; the project exported, imported, and predicting at once ---------------


def test_an_owner_adds_members_and_moves_the_project_by_export_and_import(
    page, browser, live_server, worker, fashion, tmp_path
):
    owner = UserFactory(username="olivia")
    anna = UserFactory(username="anna")
    project, classes = trained_project(
        owner, fashion, ["Trouser", "Bag"], per_class=10, unlabeled_per_class=2
    )
    wait_for_active_version(project)
    soft = Soft()

    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/")
    members = page.locator("#member-section")
    form = page.locator("#member-form")
    # Somebody who has no account: refused beside the form, nobody added.
    form.get_by_label("Username").fill("nobody-here")
    form.get_by_label("Role").select_option("annotator")
    form.get_by_role("button", name="Add or change").click()
    expect(members.locator(".form-errors")).to_contain_text("No user named 'nobody-here'.")
    expect(page.locator("#member-form").get_by_label("Username")).to_have_value("nobody-here")
    usernames = Membership.objects.filter(project=project).values_list("user__username", flat=True)
    assert list(usernames) == ["olivia"]
    form = page.locator("#member-form")
    form.get_by_label("Username").fill("anna")
    form.get_by_label("Role").select_option("reviewer")
    form.get_by_role("button", name="Add or change").click()
    expect(members.locator("li", has_text="anna")).to_contain_text("Reviewer")
    expect(members.locator(".form-errors")).to_have_count(0)
    assert Membership.objects.get(project=project, user=anna).role == "reviewer"

    # Export: the browser downloads one zip with everything.
    with page.expect_download() as download:
        page.get_by_role("link", name="Export (zip)").click()
    exported = tmp_path / "export.zip"
    download.value.save_as(exported)
    with zipfile.ZipFile(exported) as archive:
        names = set(archive.namelist())
    assert {"project.json", "labels.csv", "coco.json", "models/v1.pt"} <= names
    assert len([n for n in names if n.startswith("images/")]) == 24

    # Import: a file that is not an export is refused with the reason, nothing made.
    page.get_by_role("link", name="labelloop").click()
    not_zip = tmp_path / "holiday.zip"
    not_zip.write_bytes(b"these are not the bytes of a zip")
    page.locator("#project-import").get_by_label("Export zip").set_input_files(not_zip)
    page.locator("#project-import").get_by_role("button", name="Import").click()
    expect(page.get_by_text(re.compile("Not a labelloop export"))).to_be_visible()
    assert Project.objects.count() == 1
    page.locator("#project-import").get_by_label("Export zip").set_input_files(exported)
    page.locator("#project-import").get_by_label("Title of the copy (optional)").fill(
        "Clothes (copy)"
    )
    page.locator("#project-import").get_by_role("button", name="Import").click()
    expect(page.get_by_role("heading", name="Clothes (copy)")).to_be_visible()
    copy = Project.objects.get(name="Clothes (copy)")
    soft.check(
        "the project page says the import succeeded",
        lambda: expect(page.get_by_text("Imported Clothes (copy).")).to_be_visible(timeout=10_000),
    )
    # Its model is active at once (or the page would plainly say it needs a retrain).
    expect(page.get_by_test_id("active-version")).to_contain_text("Active: v1")
    expect(page.get_by_test_id("needs-retrain")).to_have_count(0)
    active = ModelVersion.objects.get(project=copy, is_active=True)
    assert active.artifact and active.class_ids == [
        LabelClass.objects.get(project=copy, name=n).pk for n in ("Trouser", "Bag")
    ]
    assert Image.objects.filter(project=copy).count() == 24

    def labels(of):
        rows = Image.objects.filter(project=of).values_list("content_hash", "label__name", "split")
        return sorted(rows)

    assert labels(copy) == labels(project)
    expect(page.get_by_test_id("embedded")).to_have_text("Embedded 24 of 24 images", timeout=WORKER)
    # Its dashboard shows the imported version's metrics under the copy's class names.
    page.get_by_role("link", name="Model dashboard").click()
    expect(page.locator("#versions")).to_contain_text("v1 (active)")
    soft.check(
        "the import's message does not stray onto the next page (the dashboard)",
        lambda: expect(page.get_by_text("Imported Clothes (copy).")).to_have_count(0),
    )
    expect(page.locator("#confusion svg")).to_be_visible()
    for name in ("Trouser", "Bag"):
        expect(page.locator("table.metrics td", has_text=name).first).to_be_visible()
    page.goto(f"/projects/{copy.pk}/")
    # Its queue is ranked with the imported model: the label page shows its suggestions.
    page.get_by_role("link", name="Start labeling").click()
    expect(page.get_by_test_id("suggestion")).to_contain_text("Model suggests", timeout=60_000)
    assert shown_image(page).project == copy
    page.goto(f"/projects/{copy.pk}/")

    # ... and it predicts with that model.
    page.get_by_role("link", name="Predict").click()
    bag = write_fashion(fashion, tmp_path / "new", ["Bag"], per_class=1, skip=20)
    page.set_input_files('#predict-form input[name="files"]', list(bag))
    page.locator("#predict-form").get_by_role("button", name="Predict").click()
    card = page.locator("#results .card.prediction")
    expect(card).to_have_count(1, timeout=60_000)
    expect(card.locator(".top-k li")).to_have_count(2)
    expect(card).to_contain_text("model v1")
    prediction = Prediction.objects.get(project=copy)
    assert prediction.status == "predicted" and prediction.model_version == active
    expect(card.locator(".top-k li").first).to_contain_text(prediction.predicted_class.name)
    assert prediction.predicted_class.name == "Bag"
    assert not Prediction.objects.filter(project=project).exists()

    # The new reviewer logs in and reviews the project.
    context = browser.new_context(base_url=live_server.url)
    other = context.new_page()
    log_in(other, anna)
    other.get_by_role("link", name="Clothes", exact=True).click()
    other.get_by_role("link", name="Review mistakes").click()
    expect(other.get_by_role("heading", name="Mistakes review")).to_be_visible()
    context.close()

    assert_worker_ran(TASKS_BY_TEST["travel"])
    soft.assert_none()
