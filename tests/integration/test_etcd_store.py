"""The etcd adapter against a real etcd: reads of prefixes larger than one gRPC answer."""

from __future__ import annotations

import uuid

from kafscale.metadata.etcd import PAGE_KEYS, EtcdStore
from kafscale.metadata.store import Put


def test_a_prefix_larger_than_one_grpc_message_is_read_whole_and_in_order(stack):
    """5 MB under one prefix: one Range answer would pass gRPC's 4 MiB limit (the manifest
    of a 1000-partition topic did, and garbage collection failed on it)."""
    store = EtcdStore(stack.etcd_endpoints)
    prefix = f"/big-{uuid.uuid4().hex[:6]}/"
    try:
        n = 2 * PAGE_KEYS + 500
        for start in range(0, n, 100):
            store.txn([], [Put(f"{prefix}{i:06d}", b"v" * 2000) for i in range(start, min(n, start + 100))])
        store.put(prefix[:-1] + "0", b"outside")  # next to the prefix, not in it
        got = store.get_prefix(prefix)
        assert [k for k, _ in got] == [f"{prefix}{i:06d}" for i in range(n)]
        assert all(v == b"v" * 2000 for _, v in got)
    finally:
        store.delete(prefix, prefix=True)
        store.close()
