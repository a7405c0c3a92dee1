from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from labeling.datasets import FASHION_MNIST_CLASSES
from labeling.models import Image, LabelClass, Project
from tests.fashion import fashion_mnist_dir


def test_ensure_admin_creates_one_admin_with_a_random_password(db):
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    password = re.search(r"password: (\S+)", out.getvalue()).group(1)
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password) and len(password) >= 12
    again = StringIO()
    call_command("ensure_admin", stdout=again)
    assert "exists already" in again.getvalue() and "password" not in again.getvalue()
    assert get_user_model().objects.count() == 1


def test_load_demo_imports_real_fashion_mnist(owner):
    fashion_mnist_dir()  # missing data is a failure that says how to install it
    call_command(
        "load_demo", images=40, labeled_fraction=0.25, owner=owner.username, stdout=StringIO()
    )
    project = Project.objects.get(name="Fashion-MNIST demo")
    names = list(LabelClass.objects.filter(project=project).values_list("name", flat=True))
    assert names == list(FASHION_MNIST_CLASSES)
    images = Image.objects.filter(project=project)
    assert images.count() == 40
    assert images.filter(label__isnull=False).count() == 10
    assert {(i.width, i.height) for i in images} == {(28, 28)}


def test_load_demo_refuses_bad_arguments(owner, tmp_path):
    with pytest.raises(CommandError, match="between 0 and 1"):
        call_command("load_demo", labeled_fraction=2, owner=owner.username)
    with pytest.raises(CommandError, match="dataset-fashion-mnist"):
        call_command("load_demo", owner=owner.username, data_dir=str(tmp_path))
    with pytest.raises(CommandError, match="No user named"):
        call_command("load_demo", owner="ghost")
    assert not Project.objects.exists()
