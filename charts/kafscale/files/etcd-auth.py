"""Turn on etcd auth with a root user (the chart's etcd.auth), idempotently.

Run by the post-install/upgrade Job in the broker image (Python and the etcd3 client the
broker uses; etcd's own image has no shell to script etcdctl with). Environment:
ETCD_ENDPOINTS (comma separated, https:// for TLS), ETCD_CA_FILE / ETCD_CERT_FILE /
ETCD_KEY_FILE (optional), ETCD_USER, ETCD_PASSWORD_FILE.

- auth on and the password works: nothing to do;
- auth off: create the user (or set its password), give it the root role, turn auth on;
- auth on and the password does not work: fail, saying so (rotate the password with
  etcdctl as docs/security.md says, then upgrade again).
"""

import os
import sys
import time

import etcd3
import grpc
from etcd3 import etcdrpc


def _read(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def main():
    eps = [e.strip() for e in os.environ["ETCD_ENDPOINTS"].split(",") if e.strip()]
    ca, cert, key = (os.environ.get(n, "") for n in ("ETCD_CA_FILE", "ETCD_CERT_FILE", "ETCD_KEY_FILE"))
    user = os.environ.get("ETCD_USER", "root")
    with open(os.environ["ETCD_PASSWORD_FILE"], encoding="utf-8") as f:
        password = f.read().removesuffix("\n").removesuffix("\r")
    creds = None
    if ca or cert or eps[0].startswith("https://"):
        creds = grpc.ssl_channel_credentials(_read(ca), _read(key), _read(cert))
    endpoints = []
    for ep in eps:
        host, _, port = ep.removeprefix("https://").removeprefix("http://").rpartition(":")
        endpoints.append(etcd3.Endpoint(host, int(port), secure=creds is not None, creds=creds, time_retry=1.0))
    client = etcd3.MultiEndpointEtcd3Client(endpoints=endpoints, timeout=10, failover=True)
    auth = client.authstub
    deadline = time.monotonic() + float(os.environ.get("ETCD_WAIT_S", "600"))
    while True:
        try:
            auth.Authenticate(etcdrpc.AuthenticateRequest(name=user, password=password), 10)
            print(f"etcd auth is on and {user!r} authenticates: nothing to do")
            return 0
        except grpc.RpcError as exc:
            details = exc.details() or ""
            if "authentication is not enabled" in details:
                break
            if "authentication failed" in details:
                print(f"etcd auth is on but {user!r} does not authenticate with the Secret's password: "
                      "change it in etcd (docs/security.md, rotation) or give the old one back", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"etcd not reachable: {exc.code().name}: {details}", file=sys.stderr)
                return 1
            print(f"waiting for etcd: {exc.code().name}: {details}", flush=True)
            time.sleep(3)
            auth = client.authstub  # (a failed endpoint gets a new channel)

    def ignore(call, request, *wanted):
        try:
            call(request, 10)
        except grpc.RpcError as exc:
            if not any(w in (exc.details() or "") for w in wanted):
                raise
    ignore(auth.RoleAdd, etcdrpc.AuthRoleAddRequest(name="root"), "role name already exists")
    try:
        auth.UserAdd(etcdrpc.AuthUserAddRequest(name=user, password=password), 10)
    except grpc.RpcError as exc:
        if "user name already exists" not in (exc.details() or ""):
            raise
        auth.UserChangePassword(etcdrpc.AuthUserChangePasswordRequest(name=user, password=password), 10)
    auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user=user, role="root"), 10)
    if user != "root":  # etcd turns auth on only with a root user holding the root role
        ignore(auth.UserAdd, etcdrpc.AuthUserAddRequest(name="root", password=password), "user name already exists")
        auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user="root", role="root"), 10)
    auth.AuthEnable(etcdrpc.AuthEnableRequest(), 10)
    print(f"etcd auth turned on; {user!r} has the root role")
    return 0


if __name__ == "__main__":
    sys.exit(main())
