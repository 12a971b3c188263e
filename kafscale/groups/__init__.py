"""Consumer groups: the classic group protocol's coordinator (``coordinator``, a sans-IO
state machine with time passed in) and its async service (``service``: loading from
and writing to etcd, timers, delivering parked JoinGroup/SyncGroup answers)."""
