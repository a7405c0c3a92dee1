"""A project's classes: create, edit (name, colour, key, order, active, parent), with
every change in the taxonomy log."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower

from labeling.models import (
    ClassSplit,
    LabelClass,
    Project,
    TaxonomyChange,
)

CLASS_KEYS = "123456789abcdefghijklmnopqrstuvwxyz"


# Tableau's ten colours: distinct, and readable with white text.
CLASS_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


@transaction.atomic
def label_class_create(
    *,
    project: Project,
    name: str,
    color: str | None = None,
    key: str | None = None,
    actor: AbstractBaseUser | None = None,
    is_active: bool = True,
) -> LabelClass:
    """Create a class. A missing key takes the next free one (1-9, then a-z); a missing
    colour takes the next of the palette. Names are unique in a project, ignoring case.
    An inactive class (the targets of a split) gets no key until it is activated.
    Recorded in the taxonomy log."""
    # Serialise class creation per project so two requests cannot pick the same key.
    Project.objects.select_for_update().get(pk=project.pk)
    existing = LabelClass.objects.filter(project=project)
    name = (name or "").strip()
    if existing.annotate(lname=Lower("name")).filter(lname=name.lower()).exists():
        raise ValidationError({"name": f"A class named {name!r} already exists."})
    used_keys = _used_keys(project)
    if key is None:
        key = _free_key(project) if is_active else ""
    elif key and key.lower() in used_keys:
        raise ValidationError({"key": f"Key {key!r} is already used by another class."})
    count = existing.count()
    label_class = LabelClass(
        project=project,
        name=name,
        color=color or CLASS_COLOURS[count % len(CLASS_COLOURS)],
        key=(key or "").lower(),
        order=count,
        is_active=is_active,
    )
    label_class.full_clean(validate_constraints=False)
    label_class.save()
    _log(
        project,
        actor,
        TaxonomyChange.Kind.CREATE,
        f"Created class {name!r}.",
        {"class": label_class.pk},
    )
    return label_class


def _free_key(project: Project) -> str:
    """A key no class holds; a deactivated class's key only when none is left (it
    would be taken back from it, confusingly, on reactivation)."""
    active = _used_keys(project)
    held = active | set(LabelClass.objects.filter(project=project).values_list("key", flat=True))
    return next((k for k in CLASS_KEYS if k not in held), "") or next(
        (k for k in CLASS_KEYS if k not in active), ""
    )


def _used_keys(project: Project) -> set[str]:
    return set(
        LabelClass.objects.filter(project=project, is_active=True).values_list("key", flat=True)
    )


def _log(project: Project, actor, kind: str, summary: str, details: dict) -> TaxonomyChange:
    return TaxonomyChange.objects.create(
        project=project, actor=actor, kind=kind, summary=summary[:500], details=details
    )


_CLASS_FIELDS = ("name", "color", "key", "order", "is_active", "parent")


@transaction.atomic
def label_class_update(
    *, label_class: LabelClass, actor: AbstractBaseUser | None = None, **changes
) -> LabelClass:
    """Change a class's name, colour, key, order, active flag or parent. Labels are
    untouched: a deactivated class keeps its images and history and leaves the
    labeling page. Each change is recorded in the taxonomy log with its old value."""
    unknown = set(changes) - set(_CLASS_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    label_class = LabelClass.objects.select_for_update().get(pk=label_class.pk)
    if (
        ClassSplit.objects.filter(
            Q(source=label_class) | Q(targets=label_class), status=ClassSplit.Status.OPEN
        ).exists()
        and "is_active" in changes
    ):
        raise ValidationError({"is_active": "Finish or cancel the split of this class first."})
    before = {f: _field_value(label_class, f) for f in changes}
    for field, value in changes.items():
        setattr(label_class, field, value.strip().lower() if field == "key" else value)
    if "parent" in changes:
        _check_parent(label_class)
    label_class.full_clean(validate_constraints=False)
    others = LabelClass.objects.filter(project_id=label_class.project_id).exclude(pk=label_class.pk)
    if others.annotate(lname=Lower("name")).filter(lname=label_class.name.lower()).exists():
        raise ValidationError({"name": f"A class named {label_class.name!r} already exists."})
    if (
        label_class.key
        and label_class.is_active
        and others.filter(is_active=True, key=label_class.key).exists()
    ):
        raise ValidationError({"key": f"Key {label_class.key!r} is already used by another class."})
    label_class.save()
    after = {f: _field_value(label_class, f) for f in changes}
    changed = {f: [before[f], after[f]] for f in changes if before[f] != after[f]}
    if changed:
        _log(
            label_class.project,
            actor,
            TaxonomyChange.Kind.UPDATE,
            f"Class {label_class.name!r}: "
            + ", ".join(f"{f} {old!r} → {new!r}" for f, (old, new) in changed.items())
            + ".",
            {"class": label_class.pk, "changes": changed},
        )
    return label_class


def _field_value(label_class: LabelClass, field: str):
    return label_class.parent_id if field == "parent" else getattr(label_class, field)


def _check_parent(label_class: LabelClass) -> None:
    if label_class.parent_id is None:
        return
    # Read again: the caller's object may predate a change of its own parent.
    parent = LabelClass.objects.get(pk=label_class.parent_id)
    if parent.project_id != label_class.project_id:
        raise ValidationError({"parent": "The parent must be a class of the same project."})
    if parent.pk == label_class.pk:
        raise ValidationError({"parent": "A class cannot be its own parent."})
    if parent.parent_id is not None:
        raise ValidationError({"parent": f"{parent.name!r} has a parent itself: one level only."})
    if label_class.children.exists():
        raise ValidationError({"parent": f"{label_class.name!r} has children: one level only."})
