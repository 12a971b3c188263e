"""Where the broker's log lines go and how they look: ``--log-format text`` (the default)
or ``json``, one object per line on standard error.

A JSON line::

    {"time": "2024-05-01T12:00:00.123Z", "level": "INFO", "logger": "kafscale.storage.log",
     "message": "orders-3: owner at epoch 7, hw 1200", "topic": "orders", "partition": 3,
     "broker_id": 0}

``time`` is UTC with milliseconds; then the context a log call gave with ``extra=``
(the keys in CONTEXT, where known), ``broker_id`` on every line, ``exc`` (the traceback
as one string) when an exception is logged, ``stack`` for ``stack_info``. The text
format prints only the message: the context is already in its words.

In JSON mode every line the process writes is JSON: the handler is the root logger's
(libraries included), warnings go through logging, and an uncaught exception (main
thread or any other) is logged instead of printed.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Mapping

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The context fields log calls pass as ``extra=`` (docs/configuration.md lists them).
CONTEXT = ("topic", "partition", "group", "api", "client_id", "peer")

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, serialized by orjson (UTF-8, no ASCII escaping)."""

    def __init__(self, static: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.static = dict(static or {})

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + ".%03dZ" % record.msecs

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string in a log call still gives a JSON line
            message = f"{record.msg!r} % {record.args!r}"
        out: dict[str, Any] = {"time": self.formatTime(record), "level": record.levelname,
                               "logger": record.name, "message": message}
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in out:
                out[key] = value
        for key, value in self.static.items():
            out.setdefault(key, value)
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:  # e.g. an int beyond 64 bits, which orjson refuses
            return orjson.dumps({k: v if isinstance(v, str) else str(v) for k, v in out.items()}).decode()


def configure(log_format: str = "text", level: str = "INFO", **static: Any) -> None:
    """Set up the root logger for a broker process. ``static`` fields (``broker_id``) go
    on every JSON line."""
    json_mode = log_format.lower() == "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(static) if json_mode else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)
    if not json_mode:
        return
    # JSON is UTF-8 (RFC 8259): a non-ASCII topic name must not become a \x escape,
    # which is not JSON, under a C locale.
    for stream in (sys.stderr, sys.stdout):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8")
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("kafscale").critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("kafscale").error("uncaught exception in thread %s", name,
                                        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
