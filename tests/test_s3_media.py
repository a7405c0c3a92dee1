"""Media on S3-compatible storage: uploads, the members-only file views, embedding and
export all work against a local S3 server (moto), with nothing written to disk."""

from __future__ import annotations

import io
import socket
import zipfile

import boto3
import pytest
from django.test import Client, override_settings
from moto.server import ThreadedMotoServer

from labeling.models import Image
from models_app import services as learner
from models_app.archive import project_export
from tests.conftest import add_images

pytestmark = pytest.mark.django_db


@pytest.fixture
def s3(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    keys = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys).create_bucket(
        Bucket="media"
    )
    storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": "media",
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "access_key": "test",
            "secret_key": "test",
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
    with override_settings(STORAGES={**settings.STORAGES, "default": storage}):
        yield boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys)
    server.stop()


def test_images_live_in_the_bucket_and_every_feature_reads_them(
    s3, project, owner, outsider, media_root
):
    images = add_images(project, owner, 2)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="media")["Contents"]}
    assert {images[0].file.name, images[0].thumbnail.name} <= keys
    assert not media_root.exists() or not any(p.is_file() for p in media_root.rglob("*"))

    client = Client()
    client.force_login(owner)
    response = client.get(f"/projects/{project.pk}/images/{images[0].pk}/file")
    stored = s3.get_object(Bucket="media", Key=images[0].file.name)["Body"].read()
    assert response.status_code == 200 and b"".join(response.streaming_content) == stored
    client.force_login(outsider)
    assert client.get(f"/projects/{project.pk}/images/{images[0].pk}/file").status_code == 404

    assert learner.embeddings_ensure(project=project) == 2
    assert learner.project_embeddings(project=project).matrix.shape == (2, 1280)

    out = io.BytesIO()
    project_export(project=project, out=out)
    names = zipfile.ZipFile(io.BytesIO(out.getvalue())).namelist()
    assert sum(name.startswith("images/") for name in names) == Image.objects.count() == 2
