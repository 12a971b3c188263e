"""The S3 adapter of the ObjectStore interface (objects.py), through the (blocking)
minio client. The only minio importer.

Every failure becomes ObjectStoreError (a retriable KAFKA_STORAGE_ERROR) or
ObjectNotFound, so nothing above sees minio or urllib3 types. Timeouts and retries
are short and bounded: a produce must fail within its timeout when S3 is gone.

https endpoints are verified (against ``ca_file`` when given, else the system's CAs).
Without static keys the client takes credentials from minio's provider chain: the
AWS_*/MINIO_* variables, ~/.aws/credentials, then IAM (IRSA's web identity token, EKS
Pod Identity, ECS task roles, the EC2 instance profile), refreshed before they expire.
"""

from __future__ import annotations

import io
import time
from typing import Iterator
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.credentials import (AWSConfigProvider, ChainedProvider, EnvAWSProvider, EnvMinioProvider,
                               IamAwsProvider, Provider)
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error

from kafscale.metrics import Metrics
from kafscale.storage.objects import ObjectInfo, ObjectNotFound, ObjectStore, ObjectStoreError

__all__ = ["S3ObjectStore", "ObjectStoreError", "ObjectNotFound"]


def credential_chain(timeout: float) -> Provider:
    """minio's providers, in the AWS SDKs' order: variables, the shared credentials file,
    then IAM (web identity / container / instance metadata) with a short timeout so a
    broker off AWS fails in seconds, not minutes."""
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=min(timeout, 2.0), read=timeout),
                               retries=urllib3.Retry(total=2, backoff_factor=0.2,
                                                     status_forcelist=(500, 502, 503, 504)))
    return _Explained(ChainedProvider([EnvAWSProvider(), EnvMinioProvider(), AWSConfigProvider(),
                                       IamAwsProvider(http_client=http)]))


class _Explained(Provider):
    """The chain, failing with a line that says it is about credentials (the IAM link
    otherwise fails with a bare connection error to a metadata address)."""

    def __init__(self, chain: Provider) -> None:
        self._chain = chain

    def retrieve(self):
        try:
            return self._chain.retrieve()
        except (ValueError, OSError, urllib3.exceptions.HTTPError) as exc:
            cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
            raise ValueError("no S3 keys given and none from the environment (AWS_*/MINIO_* variables, "
                             f"~/.aws/credentials, IAM): {type(cause).__name__}: {cause}") from exc


class S3ObjectStore(ObjectStore):
    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str,
                 region: str = "us-east-1", timeout: float = 10.0, pool_size: int = 64,
                 metrics: Metrics | None = None, ca_file: str = "") -> None:
        self.metrics = metrics or Metrics()  # S3 latency, bytes and errors (kafscale/metrics.py)
        url = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        if not url.hostname:
            raise ValueError(f"bad S3 endpoint {endpoint!r}")
        # urllib3 verifies https by default; the CA file is read per new connection.
        tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": ca_file} if ca_file else {}
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout, 3.0), read=timeout),
            maxsize=pool_size,
            retries=urllib3.Retry(total=2, connect=1, read=1, backoff_factor=0.1,
                                  status_forcelist=(500, 502, 503, 504)),
            **tls,
        )
        self.bucket = bucket
        static = bool(access_key and secret_key)
        self._client = Minio(url.netloc, access_key=access_key if static else None,
                             secret_key=secret_key if static else None, secure=url.scheme == "https",
                             region=region or None, http_client=http,
                             credentials=None if static else credential_chain(timeout))

    def _call(self, what: str, fn, *args, **kwargs):
        op = what.split(" ", 1)[0].lower()
        t0 = time.monotonic()
        try:
            return fn(*args, **kwargs)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise ObjectNotFound(f"{what}: {exc.code}") from exc
            self.metrics.s3_errors.labels(op).inc()
            raise ObjectStoreError(f"{what}: {exc.code}: {exc.message}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            self.metrics.s3_errors.labels(op).inc()
            # urllib3's MaxRetryError wraps the cause (a refused connection, a certificate
            # that does not verify) in a line about the pool; the cause is what tells why.
            cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
            if isinstance(cause, urllib3.exceptions.SSLError) and cause.args:
                cause = cause.args[0]
            raise ObjectStoreError(f"{what}: {type(cause).__name__}: {cause}") from exc
        finally:
            self.metrics.s3_seconds.labels(op).observe(time.monotonic() - t0)

    def put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        self._call(f"PUT {key}", self._client.put_object, self.bucket, key,
                   io.BytesIO(data), size, content_type="application/octet-stream")
        self.metrics.s3_bytes.labels("put").inc(size)

    def get(self, key: str, offset: int = 0, length: int = 0) -> bytes | bytearray:
        """The object's bytes, or ``length`` bytes from ``offset`` (0: to the end)."""
        def read() -> bytes | bytearray:
            resp = self._client.get_object(self.bucket, key, offset=offset, length=length)
            try:
                if not length:
                    return resp.read()
                # A known length is read straight into one buffer (no chunks joined).
                buf = bytearray(length)
                view, got = memoryview(buf), 0
                while got < length:
                    n = resp.readinto(view[got:])
                    if not n:
                        raise ObjectStoreError(f"GET {key}: {got} of {length} bytes, then the body ended")
                    got += n
                return buf
            finally:
                resp.close()
                resp.release_conn()
        data = self._call(f"GET {key}", read)
        self.metrics.s3_bytes.labels("get").inc(len(data))
        return data

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        return iter(self._call(f"LIST {prefix}", lambda: [
            ObjectInfo(o.object_name, o.size or 0,
                       int(o.last_modified.timestamp() * 1000) if o.last_modified else 0)
            for o in self._client.list_objects(self.bucket, prefix=prefix, recursive=True)]))

    def delete_many(self, keys: list[str]) -> None:
        def delete() -> None:
            errors = list(self._client.remove_objects(self.bucket, [DeleteObject(k) for k in keys]))
            if errors:
                raise ObjectStoreError(f"DELETE: {len(errors)} objects not deleted: {errors[0]}")
        if keys:
            self._call("DELETE", delete)

    def ensure_bucket(self) -> None:
        def ensure() -> None:
            if not self._client.bucket_exists(self.bucket):
                self._client.make_bucket(self.bucket)
        self._call(f"bucket {self.bucket}", ensure)

    def ping(self) -> None:
        if not self._call(f"HEAD {self.bucket}", self._client.bucket_exists, self.bucket):
            raise ObjectStoreError(f"bucket {self.bucket!r} does not exist")
