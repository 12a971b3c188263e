"""A blocking Kafka client for the ``kafscale`` admin commands, on the project's own codecs.

``connection`` talks to one broker (framing, ApiVersions), ``client`` routes requests
across the cluster and turns error codes into messages, ``producer`` and ``consumer``
write and read partitions, ``groupproto`` holds the consumer group's embedded protocol
and the assignors. Plain sockets: no event loop, no threads.
"""

from .client import Client
from .connection import BrokerUnreachable, ClientError

__all__ = ["Client", "ClientError", "BrokerUnreachable"]
