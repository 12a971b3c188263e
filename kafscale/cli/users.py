"""``kafscale users list|create|delete``: SASL/SCRAM users, over DescribeUserScramCredentials
and AlterUserScramCredentials (docs/cli.md, docs/security.md).

``create`` derives the salted password here, from a fresh random salt, and sends only
that (as Kafka's own tools do): the password never leaves this process. It is read from
``--password-file``, else prompted for twice on a terminal, else read as the first line
of standard input.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from kafscale.security import scram

from .common import UsageError, client, connection_options, int_at_least, read_secret_file
from .output import Table, emit

MECHANISMS = (scram.SCRAM_SHA_256, scram.SCRAM_SHA_512)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    common = connection_options()
    p = sub.add_parser("users", parents=[common], help="list, create and delete SASL/SCRAM users",
                       description="list, create and delete SASL/SCRAM users")
    users = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = users.add_parser("list", parents=[common], help="users and their SCRAM mechanisms",
                         description="users and their SCRAM mechanisms")
    p.set_defaults(func=users_list)
    p = users.add_parser("create", parents=[common], help="create a user, or set a user's password",
                         description="create a user, or set a user's password (the broker stores only salted keys)")
    p.add_argument("name")
    p.add_argument("-m", "--mechanism", type=str.upper, choices=MECHANISMS, action="append",
                   help="SCRAM mechanism (repeatable; default both); PLAIN logins use either")
    p.add_argument("--iterations", type=int_at_least(scram.MIN_ITERATIONS), default=scram.DEFAULT_ITERATIONS,
                   help=f"PBKDF2 iterations, {scram.MIN_ITERATIONS}-{scram.MAX_ITERATIONS} "
                        f"(default {scram.DEFAULT_ITERATIONS})")
    p.add_argument("--password-file", metavar="FILE",
                   help="read the password from FILE (default: prompt on a terminal, else the first line of stdin)")
    p.set_defaults(func=users_create)
    p = users.add_parser("delete", parents=[common], help="delete a user's credentials",
                         description="delete a user's credentials (default: all its mechanisms)")
    p.add_argument("name")
    p.add_argument("-m", "--mechanism", type=str.upper, choices=MECHANISMS, action="append",
                   help="only this mechanism's credential (repeatable)")
    p.set_defaults(func=users_delete)


def users_list(args: argparse.Namespace) -> int:
    with client(args) as c:
        results = c.describe_users()
    data = [{"user": r.user, "mechanisms": [{"mechanism": scram.MECHANISM_TYPES.get(i.mechanism, str(i.mechanism)),
                                             "iterations": i.iterations} for i in r.credential_infos]}
            for r in sorted(results, key=lambda r: r.user)]
    emit(args, data, Table(["USER", "MECHANISM", "ITERATIONS"],
                           [[d["user"], m["mechanism"], m["iterations"]] for d in data for m in d["mechanisms"]]))
    return 0


def read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        return read_secret_file(args.password_file, "--password-file")
    if sys.stdin.isatty():
        first = getpass.getpass(f"Password for {args.name}: ")
        if first != getpass.getpass("Again: "):
            raise UsageError("the passwords differ")
        password = first
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise UsageError("empty password")
    return password


def users_create(args: argparse.Namespace) -> int:
    if args.iterations > scram.MAX_ITERATIONS:
        raise UsageError(f"--iterations: at most {scram.MAX_ITERATIONS}")
    password = read_password(args)
    mechanisms = list(dict.fromkeys(args.mechanism or MECHANISMS))
    upsertions = []
    for mechanism in mechanisms:
        salt = os.urandom(scram.SALT_BYTES)
        upsertions.append((args.name, scram.TYPE_OF[mechanism], args.iterations, salt,
                           scram.salted_password(mechanism, password, salt, args.iterations)))
    with client(args) as c:
        c.alter_users([], upsertions)
    emit(args, {"user": args.name, "mechanisms": mechanisms, "iterations": args.iterations},
         f"user {args.name}: {', '.join(mechanisms)} credentials set ({args.iterations} iterations)")
    return 0


def users_delete(args: argparse.Namespace) -> int:
    with client(args) as c:
        if args.mechanism:
            mechanisms = list(dict.fromkeys(args.mechanism))
        else:
            (result,) = c.describe_users([args.name])
            mechanisms = [scram.MECHANISM_TYPES[i.mechanism] for i in result.credential_infos
                          if i.mechanism in scram.MECHANISM_TYPES]
        c.alter_users([(args.name, scram.TYPE_OF[m]) for m in mechanisms], [])
    emit(args, {"user": args.name, "deleted": mechanisms},
         f"user {args.name}: {', '.join(mechanisms)} credentials deleted")
    return 0
