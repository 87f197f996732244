"""A real S3-compatible server (moto in server mode) on 127.0.0.1 and a fresh bucket per test.

Use them in a test module with ``from tests.s3_fixtures import *  # noqa: F403``.
"""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.config import Config

__all__ = ["s3_bucket", "s3_server"]


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch):
    """(client, bucket name): settings and credentials point at the local server."""
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1", "PACKSHOT_STORAGE__S3_ENDPOINT_URL": s3_server,
                        "PACKSHOT_STORAGE__S3_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}))
    bucket = f"packshot-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield client, bucket
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)
