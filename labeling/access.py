"""Who may see and change what. Views and API views call these before any service.

Anyone outside a project gets a 404 for everything in it, so a project's existence is
not revealed; a member whose role is too low gets a 403.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from labeling.models import Image, LabelClass, Membership, Project, Webhook

Role = Membership.Role
ANY_MEMBER = (Role.OWNER, Role.REVIEWER, Role.ANNOTATOR)
LABELERS = ANY_MEMBER
# Owners and reviewers shape the dataset (classes, uploads); only owners manage members.
CURATORS = (Role.OWNER, Role.REVIEWER)
OWNERS = (Role.OWNER,)


def role_of(*, user: AbstractBaseUser, project: Project) -> str | None:
    if not user.is_authenticated:
        return None
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


def project_access(
    *, user: AbstractBaseUser, project_id: int, roles: tuple[str, ...] = ANY_MEMBER
) -> Project:
    if not user.is_authenticated:
        raise Http404
    membership = (
        Membership.objects.select_related("project")
        .filter(project_id=project_id, user=user)
        .first()
    )
    if membership is None:
        raise Http404("No such project.")
    if membership.role not in roles:
        raise PermissionDenied(f"Your role ({membership.role}) may not do this.")
    return membership.project


def image_access(
    *, user: AbstractBaseUser, project_id: int, image_id: int, roles=ANY_MEMBER
) -> Image:
    project = project_access(user=user, project_id=project_id, roles=roles)
    image = Image.objects.filter(project=project, pk=image_id).first()
    if image is None:
        raise Http404("No such image.")
    return image


def label_class_access(
    *, user: AbstractBaseUser, project_id: int, class_id: int, roles=ANY_MEMBER
) -> LabelClass:
    project = project_access(user=user, project_id=project_id, roles=roles)
    label_class = LabelClass.objects.filter(project=project, pk=class_id).first()
    if label_class is None:
        raise Http404("No such class.")
    return label_class


def membership_access(*, user: AbstractBaseUser, project_id: int, membership_id: int, roles=OWNERS):
    project = project_access(user=user, project_id=project_id, roles=roles)
    membership = (
        Membership.objects.select_related("user", "project")
        .filter(project=project, pk=membership_id)
        .first()
    )
    if membership is None:
        raise Http404("No such member.")
    return membership


def webhook_access(*, user: AbstractBaseUser, project_id: int, webhook_id: int) -> Webhook:
    """A webhook of the project, for its owners only (it holds a signing secret)."""
    project = project_access(user=user, project_id=project_id, roles=OWNERS)
    webhook = Webhook.objects.filter(project=project, pk=webhook_id).first()
    if webhook is None:
        raise Http404("No such webhook.")
    return webhook
