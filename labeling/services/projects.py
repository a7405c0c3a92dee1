"""Projects and their members: create, rename, roles, removal (never the last owner)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from labeling.models import (
    Image,
    Membership,
    Project,
)


@transaction.atomic
def project_create(
    *,
    name: str,
    description: str = "",
    user: AbstractBaseUser,
    kind: str = Project.Kind.SINGLE,
) -> Project:
    """Create a project with `user` as its first owner. Its kind (single-label or
    multi-label) is fixed from then on."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A project needs a name."})
    if kind not in Project.Kind.values:
        raise ValidationError({"kind": f"Kind must be one of {', '.join(Project.Kind.values)}."})
    project = Project.objects.create(name=name, description=description, created_by=user, kind=kind)
    Membership.objects.create(project=project, user=user, role=Membership.Role.OWNER)
    return project


@transaction.atomic
def project_update(*, project: Project, name: str | None = None, description: str | None = None):
    if name is not None:
        if not name.strip():
            raise ValidationError({"name": "A project needs a name."})
        project.name = name.strip()
    if description is not None:
        project.description = description
    project.save(update_fields=["name", "description"])
    return project


@transaction.atomic
def membership_set(*, project: Project, username: str, role: str) -> Membership:
    """Add `username` to the project with `role`, or change the role of a member.

    Refuses to leave the project without an owner.
    """
    if role not in Membership.Role.values:
        raise ValidationError({"role": f"Role must be one of {', '.join(Membership.Role.values)}."})
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ValidationError({"username": f"No user named {username!r}."})
    # One membership change per project at a time: two owners demoting each other at
    # once must not both pass the last-owner check.
    Project.objects.select_for_update().get(pk=project.pk)
    membership = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if membership is None:
        return Membership.objects.create(project=project, user=user, role=role)
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER:
        _ensure_another_owner(project=project, membership=membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    """Remove a member; their labels stay. Refuses to remove the last owner."""
    Project.objects.select_for_update().get(pk=membership.project_id)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == Membership.Role.OWNER:
        _ensure_another_owner(project=membership.project, membership=membership)
    Image.objects.filter(project=membership.project, reserved_by=membership.user).update(
        reserved_by=None, reserved_until=None
    )
    membership.delete()


def _ensure_another_owner(*, project: Project, membership: Membership) -> None:
    owners = Membership.objects.filter(project=project, role=Membership.Role.OWNER)
    if not owners.exclude(pk=membership.pk).exists():
        raise ValidationError({"role": "A project must keep at least one owner."})


def project_require_kind(*, project: Project, kind: str, what: str | None = None) -> None:
    """Refuse a write meant for the other kind of project, with a sentence saying so;
    `what` names a feature that multi-label projects do not have yet."""
    if project.kind == kind:
        return
    if what:
        raise ValidationError({"project": f"{what} works on single-label projects only, so far."})
    if kind == Project.Kind.MULTI:
        raise ValidationError(
            {"project": "This project labels one class per image; tags are for multi-label ones."}
        )
    raise ValidationError(
        {"project": "This project is multi-label: give each image its tags instead of a class."}
    )
