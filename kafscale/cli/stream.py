"""``kafscale produce`` and ``kafscale consume``: lines in, values out, like kcat's basics."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Iterator

from kafscale.admin.consumer import Fetcher, GroupConsumer, Message, start_positions
from kafscale.admin.producer import KeyValue, Producer

from .common import client, connection_options, int_at_least
from .output import note

READ_CHUNK = 256 * 1024


def add_parsers(sub: argparse._SubParsersAction) -> None:
    common = connection_options()
    p = sub.add_parser("produce", parents=[common], help="produce the lines of standard input to a topic",
                       description="Produce each line of standard input as one message (acks=all).")
    p.add_argument("topic")
    p.add_argument("-k", "--key-separator", metavar="SEP",
                   help="split each line at the first SEP into key and value (lines without SEP: no key)")
    p.add_argument("-p", "--partition", type=int_at_least(0),
                   help="produce to this partition (default: murmur2 of the key, round robin without a key)")
    p.set_defaults(func=produce)

    p = sub.add_parser("consume", parents=[common], help="print the messages of a topic, one per line",
                       description="Print message values one per line; Ctrl-C stops cleanly.")
    p.add_argument("topic")
    p.add_argument("-g", "--group", help="consume as a member of this consumer group and commit on exit")
    p.add_argument("--from-beginning", action="store_true",
                   help="start at the log start (a group: where it has no committed offset)")
    p.add_argument("-n", "--max-messages", type=int_at_least(1), metavar="N", help="stop after N messages")
    p.add_argument("--timeout-ms", type=int_at_least(1), metavar="MS",
                   help="stop when no message arrives for this long (default: wait forever)")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("-K", "--key-separator", metavar="SEP", help="print key SEP value")
    keys.add_argument("--print-key", action="store_true", help="print key TAB value")
    p.add_argument("--assignor", choices=("range", "roundrobin"), default="range",
                   help="assignment strategy when this member leads the group (default: range)")
    p.set_defaults(func=consume)


# ---------------------------------------------------------------------- produce


def _lines(fd: int) -> Iterator[list[bytes]]:
    """The complete lines of ``fd`` in groups: whatever one read returned (so a pipe is
    produced in large batches and a terminal line by line); the last line may lack its
    newline."""
    rest = b""
    while True:
        chunk = os.read(fd, READ_CHUNK)
        if not chunk:
            if rest:
                yield [rest]
            return
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        if lines:
            yield lines


def produce(args: argparse.Namespace) -> int:
    sep = args.key_separator.encode() if args.key_separator else None

    def record(line: bytes) -> KeyValue:
        if sep is not None and sep in line:
            key, _, value = line.partition(sep)
            return key, value
        return None, line

    with client(args) as c:
        producer = Producer(c, args.topic, args.partition)
        try:
            for lines in _lines(sys.stdin.fileno()):
                producer.send([record(line) for line in lines])
        finally:
            if args.__dict__.get("output") == "json":
                print(json.dumps({"topic": args.topic, "messages": producer.sent}))
            else:
                note(f"produced {producer.sent} message{'s' * (producer.sent != 1)} to topic {args.topic}")
    return 0


# ---------------------------------------------------------------------- consume


def _printer(args: argparse.Namespace):
    out = sys.stdout.buffer
    if args.__dict__.get("output") == "json":
        def show(msg: Message) -> None:
            text = {k: None if v is None else v.decode("utf-8", "replace") for k, v in
                    (("key", msg.key), ("value", msg.value))}
            out.write(json.dumps({"topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
                                  "timestamp": msg.timestamp, **text}).encode() + b"\n")
        return show
    sep = b"\t" if args.print_key else args.key_separator.encode() if args.key_separator else None

    def show_plain(msg: Message) -> None:
        if sep is not None:
            out.write((msg.key or b"") + sep)
        out.write((msg.value or b"") + b"\n")
    return show_plain


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def consume(args: argparse.Namespace) -> int:
    show = _printer(args)
    signal.signal(signal.SIGTERM, _interrupt)  # stop as cleanly as on Ctrl-C: commit, leave
    with client(args) as c:
        member = None
        if args.group:
            member = GroupConsumer(c, args.group, [args.topic], assignor=args.assignor,
                                   from_beginning=args.from_beginning)
            member.join()
            poll = member.poll
        else:
            info = c.topic(args.topic)
            fetcher = Fetcher(c, start_positions(c, args.topic, info.partitions, args.from_beginning))
            poll = fetcher.poll
        try:
            _consume_loop(args, poll, show, member)
        except KeyboardInterrupt:
            c.close()  # a request may have been cut off mid-answer: start afresh for the commit
        finally:
            sys.stdout.flush()
        if member is not None:
            member.close()
    return 0


def _consume_loop(args: argparse.Namespace, poll, show, member: GroupConsumer | None) -> None:
    count = 0
    idle_since = time.monotonic()
    while True:
        messages = poll()
        for msg in messages:
            show(msg)
            if member is not None:
                member.mark(msg)
            count += 1
            if args.max_messages is not None and count >= args.max_messages:
                return
        if messages:
            sys.stdout.flush()
            idle_since = time.monotonic()
        elif args.timeout_ms is not None and (time.monotonic() - idle_since) * 1000 >= args.timeout_ms:
            return

