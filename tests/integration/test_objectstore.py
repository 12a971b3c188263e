"""The ObjectStore contract, run against the S3 adapter (real SeaweedFS) and the
in-process twin alike, so the twin the unit tests use behaves as S3 does."""

from __future__ import annotations

import time
import uuid

import pytest

from kafscale.storage.memobjects import MemoryObjectStore
from kafscale.storage.objects import ObjectNotFound, ObjectStoreError
from kafscale.storage.objectstore import S3ObjectStore


@pytest.fixture(params=["s3", "memory"])
def store(request, stack):
    if request.param == "memory":
        return MemoryObjectStore()
    s = S3ObjectStore(stack.s3_endpoint, stack.bucket, stack.access_key, stack.secret_key)
    s.ensure_bucket()
    return s


def test_put_get_ranges_list_and_delete(store):
    prefix = f"contract-{uuid.uuid4().hex[:8]}/"
    before = int(time.time() * 1000) - 5000
    store.put(prefix + "a/1", b"0123456789")
    store.put(prefix + "a/2", bytearray(b"xy"))
    store.put(prefix + "b", memoryview(b"z" * 1000))
    assert bytes(store.get(prefix + "a/1")) == b"0123456789"
    assert bytes(store.get(prefix + "a/1", 3, 4)) == b"3456"
    assert bytes(store.get(prefix + "a/1", 7)) == b"789"
    infos = sorted(store.list_info(prefix), key=lambda o: o.key)
    assert [(o.key, o.size) for o in infos] == [(prefix + "a/1", 10), (prefix + "a/2", 2), (prefix + "b", 1000)]
    assert all(before <= o.modified_ms <= int(time.time() * 1000) + 5000 for o in infos)
    assert sorted(store.list(prefix + "a/")) == [prefix + "a/1", prefix + "a/2"]
    store.delete_many([prefix + "a/1", prefix + "missing"])
    assert sorted(store.list(prefix)) == [prefix + "a/2", prefix + "b"]
    with pytest.raises(ObjectNotFound):
        store.get(prefix + "a/1")
    store.delete_many([])
    store.ping()


def test_an_unreachable_store_raises_object_store_errors():
    s = S3ObjectStore("http://127.0.0.1:9", "nowhere", "k", "s", timeout=1.0)
    with pytest.raises(ObjectStoreError):
        s.ping()
    with pytest.raises(ObjectStoreError):
        s.put("x", b"y")
    m = MemoryObjectStore()
    m.fail = True
    with pytest.raises(ObjectStoreError):
        m.ping()
    with pytest.raises(ObjectStoreError):
        m.put("x", b"y")
