"""A multi-label project's tags as a file, out and back in: CSV with one column per tag
(1 present, 0 absent, empty not looked at) or JSON lines (`{"image", "sha256", "split",
"tags": {name: true/false}}`, a tag not looked at left out).

In the CSV a tag or image name that a spreadsheet would run as a formula (starting with
=, +, -, @, a tab or a carriage return) is written after a single quote, and the import
takes that quote off again (`labeling.csv_cells`), so the round trip is exact.

The export is a read; it lives here beside the import so the two formats are written
and parsed in one place, and a round trip is one module's promise.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from labeling.csv_cells import csv_writer, unescaped
from labeling.models import Image, LabelClass, Project, TagAnnotation
from labeling.services.projects import project_require_kind
from labeling.services.tags import _current, _mark_tagged, _tags, _write

State = TagAnnotation.State
Action = TagAnnotation.Action
FORMATS = ("csv", "jsonl")
FIXED_COLUMNS = ("image", "sha256", "split")
MAX_ERRORS = 20  # a file wrong on every line needs the first few to be fixed, not all
MISSING_SHOWN = 5
MAX_FILE_BYTES = 64 * 1024 * 1024  # some million images' tags; more is not a tag file
_VALUES = {"1": State.PRESENT, "true": State.PRESENT, "0": State.ABSENT, "false": State.ABSENT}


# --- export ------------------------------------------------------------------------------


def _export_rows(project: Project) -> Iterator[tuple[Image, dict[int, str]]]:
    images = Image.objects.filter(project=project, status=Image.Status.ACTIVE).order_by("id")
    states: dict[int, dict[int, str]] = {}
    for image_id, tag_id, state in TagAnnotation.objects.filter(
        image__project=project,
        image__status=Image.Status.ACTIVE,
        is_current=True,
        state__in=(State.PRESENT, State.ABSENT),
    ).values_list("image_id", "tag_id", "state"):
        states.setdefault(image_id, {})[tag_id] = state
    for image in images.only("id", "original_name", "content_hash", "split"):
        yield image, states.get(image.pk, {})


def project_tags_export(*, project: Project, file_format: str = "csv") -> str:
    """The project's active images with each active tag's state in force, as CSV or JSON
    lines text. Reads only; refuses a single-label project or an unknown format."""
    project_require_kind(project=project, kind=Project.Kind.MULTI)
    if file_format not in FORMATS:
        raise ValidationError({"type": 'Choose "csv" or "jsonl".'})
    tags = _tags(project)
    out = io.StringIO()
    if file_format == "csv":
        writer = csv_writer(out, lineterminator="\n")
        writer.writerow([*FIXED_COLUMNS, *(t.name for t in tags)])
        for image, states in _export_rows(project):
            cells = [
                {State.PRESENT: "1", State.ABSENT: "0"}.get(states.get(t.pk), "") for t in tags
            ]
            writer.writerow([image.original_name, image.content_hash, image.split, *cells])
        return out.getvalue()
    for image, states in _export_rows(project):
        row = {
            "image": image.original_name,
            "sha256": image.content_hash,
            "split": image.split,
            "tags": {t.name: states[t.pk] == State.PRESENT for t in tags if t.pk in states},
        }
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out.getvalue()


# --- import ------------------------------------------------------------------------------


@dataclass
class TagImportResult:
    images: int = 0  # rows matched to an image of the project
    changed: int = 0  # images with at least one tag state written
    rows: int = 0  # tag states written
    tagged: int = 0  # images that count as labeled now and did not before
    missing: int = 0  # rows whose image is not in the project
    missing_names: list[str] = field(default_factory=list)  # the first few of them


@dataclass
class _Row:
    line: int
    name: str
    sha256: str
    states: dict[str, str]  # tag name -> present / absent; a tag left empty is not here


class _Errors(list):
    def add(self, message: str) -> None:
        if len(self) < MAX_ERRORS:
            self.append(message)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError({"file": "The file is not UTF-8 text."}) from None


def _detect(name: str, text: str) -> str:
    lower = name.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _state(value, *, line: int, column: str, errors: _Errors) -> str | None:
    """present / absent / None (not looked at) from 1, 0, true, false or empty."""
    if value is None or value is True or value is False:
        return None if value is None else (State.PRESENT if value else State.ABSENT)
    if isinstance(value, int | float) and value in (0, 1):
        return State.PRESENT if value == 1 else State.ABSENT
    text = str(value).strip().lower()
    if text == "":
        return None
    if text in _VALUES:
        return _VALUES[text]
    errors.add(f'Line {line}, column "{column}": {value!r} is not 1, 0, true, false or empty.')
    return None


def _unknown_tags(found: set[str], known: set[str], where: str, errors: _Errors) -> None:
    unknown = sorted(found - known)
    if unknown:
        errors.add(
            f"{where}: {', '.join(map(repr, unknown))} "
            f"{'is not a tag' if len(unknown) == 1 else 'are not tags'} of this project. "
            f"Its tags: {', '.join(sorted(known)) or 'none yet'}."
        )


def _parse_csv(text: str, known: set[str], errors: _Errors) -> list[_Row]:
    reader = csv.reader(io.StringIO(text))
    header = [unescaped(h).strip() for h in next(reader, [])]
    if not header or not ({"image", "sha256"} & set(header)):
        errors.add('Line 1: the header needs an "image" or a "sha256" column, then the tags.')
        return []
    tag_columns = [h for h in header if h not in FIXED_COLUMNS]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        errors.add(f"Line 1: the column {', '.join(map(repr, repeated))} appears twice.")
    _unknown_tags(set(tag_columns), known, "Line 1", errors)
    rows = []
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            errors.add(f"Line {line}: {len(cells)} cells where the header has {len(header)}.")
            continue
        record = dict(zip(header, cells, strict=True))
        states = {}
        for column in tag_columns:
            state = _state(record[column], line=line, column=column, errors=errors)
            if state is not None:
                states[column] = state
        name = unescaped(record.get("image", "")).strip()
        rows.append(_Row(line, name, record.get("sha256", "").strip(), states))
    return rows


def _parse_jsonl(text: str, known: set[str], errors: _Errors) -> list[_Row]:
    rows = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            errors.add(f"Line {line}: not JSON ({error.msg}).")
            continue
        tags = record.get("tags", {}) if isinstance(record, dict) else None
        if not isinstance(tags, dict):
            errors.add(f'Line {line}: expected an object with "image", "sha256" and "tags".')
            continue
        _unknown_tags(set(tags), known, f"Line {line}", errors)
        states = {}
        for name, value in tags.items():
            if isinstance(value, str | int | float | bool) or value is None:
                state = _state(value, line=line, column=name, errors=errors)
            else:
                errors.add(f'Line {line}, tag "{name}": {value!r} is not true, false or null.')
                state = None
            if state is not None and name in known:
                states[name] = state
        name, sha = record.get("image") or "", record.get("sha256") or ""
        rows.append(_Row(line, str(name).strip(), str(sha).strip().lower(), states))
    return rows


def _match(project: Project, rows: list[_Row], errors: _Errors) -> dict[int, tuple[_Row, Image]]:
    """Each row's image: by sha256, or by file name where the row has no hash and the
    name is unique among the project's active images. Rows matching nothing are left
    out (the caller reports them)."""
    images = list(Image.objects.filter(project=project, status=Image.Status.ACTIVE))
    by_hash = {i.content_hash.lower(): i for i in images}
    by_name: dict[str, list[Image]] = {}
    for image in images:
        by_name.setdefault(image.original_name, []).append(image)
    matched: dict[int, tuple[_Row, Image]] = {}
    for row in rows:
        if not row.name and not row.sha256:
            errors.add(f"Line {row.line}: no image name and no sha256.")
            continue
        if row.sha256:
            image = by_hash.get(row.sha256.lower())
        else:
            named = by_name.get(row.name, [])
            if len(named) > 1:
                errors.add(
                    f'Line {row.line}: {len(named)} images are named "{row.name}"; give its sha256.'
                )
                continue
            image = named[0] if named else None
        if image is None:
            continue
        if image.pk in matched:
            errors.add(f"Line {row.line}: the same image as line {matched[image.pk][0].line}.")
            continue
        matched[image.pk] = (row, image)
    return matched


def _apply(image: Image, row: _Row, tags: list[LabelClass], user, result: TagImportResult):
    """Write the row's states as a save of the image's tags (`image_tags_set`'s rules)
    when with them every active tag has a state, or as a change of those tags only."""
    by_name = {t.name: t.pk for t in tags}
    given = {by_name[name]: state for name, state in row.states.items()}
    current = _current(image)
    held = {t: r.state for t, r in current.items() if r.state != State.UNSET}
    complete = all(t.pk in {**held, **given} for t in tags)
    if complete and not image.tagged:
        states = dict(given)  # the first save records every tag the file states
    else:
        states = {t: s for t, s in given.items() if held.get(t) != s}
    _write(
        image=image,
        states=states,
        annotator=user,
        current=current,
        action=Action.SAVE if complete else Action.SET,
    )
    result.rows += len(states)
    result.changed += bool(states)
    if complete and not image.tagged:
        result.tagged += 1
        _mark_tagged(image)


@transaction.atomic
def project_tags_import(
    *, project: Project, name: str, content: bytes, user: AbstractBaseUser | None
) -> TagImportResult:
    """Set the tags of the project's images from a CSV or JSON lines file as the export
    writes it (the format from the name's extension, else from the content).

    All or nothing, one transaction: a bad line (an unknown tag, a value other than 1, 0,
    true, false or empty, a row naming no image, the same image twice) refuses the whole
    file with a ValidationError on "file" listing the lines, and nothing is written.
    Rows whose image is not in the project are not an error: they are counted and a few
    named in the result, so a file from a larger dataset can be applied to a part of it.
    An empty cell leaves the tag's state in force as it is (an import never erases a
    judgement); the `split` column is informational, splits follow `split_for`.

    Rows go through the tag rows as a save would (annotator `user`, one save per image,
    history kept and undone a save at a time): an image whose every active tag then has a
    state counts as tagged, with `image_tags_set`'s rules; others get the stated tags only.
    Idempotent: a state already in force is not written again. Curators only (callers
    check).
    """
    project_require_kind(project=project, kind=Project.Kind.MULTI)
    tags = _tags(project)
    if not tags:
        raise ValidationError({"file": "This project has no tags yet: add them first."})
    if len(content) > MAX_FILE_BYTES:
        raise ValidationError({"file": f"The file is over {MAX_FILE_BYTES // 2**20} MiB."})
    text = _text(content)
    errors = _Errors()
    known = {t.name for t in tags}
    parse = _parse_csv if _detect(name, text) == "csv" else _parse_jsonl
    try:
        rows = parse(text, known, errors)
    except csv.Error as error:  # a NUL byte, a quote left open at the end
        raise ValidationError({"file": f"Not a CSV file: {error}."}) from None
    if not rows and not errors:
        errors.add("The file has no rows.")
    matched = _match(project, rows, errors) if not errors else {}
    if errors:
        raise ValidationError({"file": list(errors)})
    result = TagImportResult(images=len(matched))
    lines = {row.line for row, _ in matched.values()}
    unmatched = [r for r in rows if r.line not in lines]
    result.missing = len(unmatched)
    result.missing_names = [r.name or r.sha256 for r in unmatched[:MISSING_SHOWN]]
    locked = Image.objects.select_for_update().filter(pk__in=matched).order_by("id")
    for image in locked:
        _apply(image, matched[image.pk][0], tags, user, result)
    return result
