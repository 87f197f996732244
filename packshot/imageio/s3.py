"""``s3://bucket/key`` images, through the one S3 client factory (endpoint, path style, SigV4)."""

from __future__ import annotations

from urllib.parse import urlsplit

from packshot.config import LoadSettings
from packshot.errors import ImageLoadError
from packshot.imageio.refs import too_big_error


def read_s3(ref: str, settings: LoadSettings, s3_client) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    parts = urlsplit(ref)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or not key:
        raise ImageLoadError(f"Image {ref!r}: an S3 reference must look like s3://bucket/path/to/image.jpg.")
    try:
        if s3_client is None:
            from packshot.storage import make_s3_client

            s3_client = make_s3_client()
        obj = s3_client.get_object(Bucket=bucket, Key=key)
        declared = obj.get("ContentLength") or 0
        if declared > settings.max_download_bytes:
            obj["Body"].close()
            raise too_big_error(ref, f"{declared:,} bytes", settings)
        data = obj["Body"].read(settings.max_download_bytes + 1)
        obj["Body"].close()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        hint = {
            "NoSuchKey": "the object does not exist; check the key",
            "NoSuchBucket": "the bucket does not exist; check the name and PACKSHOT_STORAGE__S3_ENDPOINT_URL",
            "AccessDenied": "access denied; check the credentials' permissions on this bucket",
            "403": "access denied; check the credentials' permissions on this bucket",
            "404": "the object does not exist; check the key",
        }.get(code, "check the bucket, key and credentials")
        raise ImageLoadError(f"Image {ref}: S3 said {code}: {hint}.") from exc
    except BotoCoreError as exc:
        raise ImageLoadError(
            f"Image {ref}: could not read from S3 ({exc}); check AWS credentials and "
            "PACKSHOT_STORAGE__S3_ENDPOINT_URL / PACKSHOT_STORAGE__S3_REGION."
        ) from exc
    if len(data) > settings.max_download_bytes:
        raise too_big_error(ref, f"more than {settings.max_download_bytes:,} bytes", settings)
    return data
