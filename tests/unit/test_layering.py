"""The package's import structure, checked by walking every module's AST.

Layers, highest first (a module may import its own layer, a sibling at the same rank,
or anything lower; never anything higher)::

    server  ->  broker  ->  {groups, storage, metadata, admin, security}  ->  protocol  ->  _fast

(``admin`` is the blocking client the CLI administers clusters with.)

Outside the layers: ``kafscale/cli/`` and ``kafscale/__main__.py`` (the top: may import
any kafscale module and are imported by no layer; the library rules below still apply to
them), ``kafscale/localstack.py`` (child processes; imports no layer and neither client
library), and the shared leaf modules at the package root (``errors.py``, ``config.py``
and any other, e.g. ``runtime.py``) which anyone may import and which import no layer.

No module imports another module's private (``_name``) names.

Library rules: only ``kafscale/server/`` imports curio, only
``kafscale/storage/objectstore.py`` imports minio, only ``kafscale/metadata/etcd.py``
imports etcd3, and ``protocol``/``_fast`` stay free of I/O and concurrency modules.

The checker takes a root directory so the tests at the bottom can run it on synthetic
trees and prove that it catches each kind of violation.
"""

from __future__ import annotations

import ast
import pathlib
import re
from dataclasses import dataclass

import pytest

PACKAGE = "kafscale"
PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[2] / PACKAGE

RANK = {"_fast": 1, "protocol": 2, "groups": 3, "storage": 3, "metadata": 3, "admin": 3, "security": 3, "broker": 4,
        "server": 5}
TOP = {"cli", "__main__"}  # may import anything; no layer imports them
STANDALONE = {"localstack"}  # imports no layer; layers other than protocol/_fast may use it
SANS_IO_LAYERS = {"protocol", "_fast"}
SANS_IO_FORBIDDEN = {"socket", "asyncio", "curio", "minio", "etcd3", "threading", "subprocess"}
# library -> predicate on the importing module's dotted name
LIBRARY_OWNERS = {
    "curio": lambda mod: mod == f"{PACKAGE}.server" or mod.startswith(f"{PACKAGE}.server."),
    "minio": lambda mod: mod == f"{PACKAGE}.storage.objectstore",
    "etcd3": lambda mod: mod == f"{PACKAGE}.metadata.etcd",
}
LIBRARY_OWNER_TEXT = {
    "curio": "kafscale/server/",
    "minio": "kafscale/storage/objectstore.py",
    "etcd3": "kafscale/metadata/etcd.py",
}


@dataclass(frozen=True)
class Import:
    module: str  # importing module, dotted
    target: str  # imported module, dotted and absolute
    path: str  # file, relative to the root's parent
    line: int


def _module_name(root: pathlib.Path, path: pathlib.Path) -> tuple[str, bool]:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


_PYX_IMPORT = re.compile(r"^\s*(?:from\s+(\.*[\w.]*)\s+c?import\s+(.+)|c?import\s+(.+))$")


def _pyx_imports(text: str) -> list[tuple[int, str | None, list[str]]]:
    """(line, "from" module with its leading dots or None, names) for a Cython file."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _PYX_IMPORT.match(line.split("#", 1)[0].rstrip())
        if not m:
            continue
        if m.group(1) is not None:
            names = [n.strip(" ()").split(" as ")[0].strip() for n in m.group(2).split(",")]
            out.append((lineno, m.group(1), names))
        else:
            out.append((lineno, None, [n.strip().split(" as ")[0].strip() for n in m.group(3).split(",")]))
    return out


def collect_imports(root: pathlib.Path) -> list[Import]:
    """Every import in every .py/.pyx/.pxd file under ``root`` (the package directory).

    ``from X import n`` is recorded as X.n (n may be a module), so ``from kafscale import
    storage`` counts as importing kafscale.storage; only the first two components of a
    target and the first component of a library name matter to the rules.
    """
    files = sorted(p for ext in ("*.py", "*.pyx", "*.pxd") for p in root.rglob(ext))
    return [imp for path in files if "__pycache__" not in path.parts for imp in _file_imports(root, path)]


def _file_imports(root: pathlib.Path, path: pathlib.Path) -> list[Import]:
    module, is_package = _module_name(root, path)
    rel = str(path.relative_to(root.parent))
    text = path.read_text(encoding="utf-8")
    found: list[tuple[str, int]] = []

    def add_from(frm: str | None, names: list[str], level: int, line: int) -> None:
        base = _resolve_relative(module, is_package, level, frm) if level else (frm or "")
        found.extend((base if n == "*" else f"{base}.{n}", line) for n in names)

    if path.suffix == ".py":
        for node in ast.walk(ast.parse(text, filename=rel)):  # also inside functions, TYPE_CHECKING
            if isinstance(node, ast.Import):
                found.extend((alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                add_from(node.module, [a.name for a in node.names], node.level, node.lineno)
    else:
        for line, frm, names in _pyx_imports(text):
            if frm is None:
                found.extend((n, line) for n in names)
            else:
                level = len(frm) - len(frm.lstrip("."))
                add_from(frm.lstrip(".") or None, names, level, line)
    return [Import(module, target, rel, line) for target, line in found]


def _area(module: str) -> str | None:
    """The first component below the package: a layer, a root module, or None if outside."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def _is_file_module(root: pathlib.Path, name: str) -> bool:
    return (root / f"{name}.py").is_file()


def check(root: pathlib.Path) -> list[str]:
    """All violations of the rules above in the package at ``root``, as readable lines."""
    problems: list[str] = []
    for imp in collect_imports(root):
        where = f"{imp.path}:{imp.line}: {imp.module} imports {imp.target}"
        src = _area(imp.module)
        top_lib = imp.target.split(".")[0]

        # Third-party library ownership.
        if top_lib in LIBRARY_OWNERS and not LIBRARY_OWNERS[top_lib](imp.module):
            problems.append(f"{where} (only {LIBRARY_OWNER_TEXT[top_lib]} may import {top_lib})")
        # Sans-IO layers.
        if src in SANS_IO_LAYERS and top_lib in SANS_IO_FORBIDDEN:
            problems.append(f"{where} ({src} must not import {top_lib})")

        # A module's private names stay in it (a package may pick its own private
        # modules, as _fast/__init__ picks _kernels or _pure).
        parent, _, name = imp.target.rpartition(".")
        if (imp.target.startswith(f"{PACKAGE}.") and name.startswith("_") and not name.startswith("__")
                and name not in RANK and imp.module != parent):
            problems.append(f"{where} (a private name of another module: write the interface it asks for)")

        dst = _area(imp.target)
        if dst is None or src is None or dst == "__init__":
            continue
        if src in RANK:
            if dst in TOP:
                problems.append(f"{where} (a layer must not import {dst})")
            elif dst in RANK and RANK[dst] > RANK[src]:
                problems.append(f"{where} ({src} is below {dst}: imports point server -> broker -> "
                                f"groups/storage/metadata -> protocol -> _fast)")
            elif dst in STANDALONE and src in SANS_IO_LAYERS:
                problems.append(f"{where} ({src} must not use {dst})")
        elif src in TOP:
            continue
        elif src in STANDALONE or src == "__init__" or _is_file_module(root, src):
            # localstack, the package __init__ and shared root modules: no layers, no top.
            if dst in RANK or dst in TOP or (dst in STANDALONE and src != dst):
                kind = "localstack" if src in STANDALONE else "a shared root module"
                problems.append(f"{where} ({kind} must not import {dst})")
    return problems


# --------------------------------------------------------------------------- the real tree


def test_package_layering_holds():
    assert PACKAGE_DIR.is_dir(), PACKAGE_DIR
    problems = check(PACKAGE_DIR)
    assert not problems, "layering violations:\n" + "\n".join(problems)


def test_checker_sees_the_real_tree():
    """Guard against a checker that silently finds nothing to check."""
    imports = collect_imports(PACKAGE_DIR)
    modules = {imp.module for imp in imports}
    assert f"{PACKAGE}.localstack" in modules
    assert any(imp.target == "etcd3" and imp.module == f"{PACKAGE}.metadata.etcd" for imp in imports) or not (
        PACKAGE_DIR / "metadata" / "etcd.py"
    ).exists()


# --------------------------------------------------------------------------- self-test


def _tree(tmp_path: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    root = tmp_path / PACKAGE
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for d in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (d / "__init__.py").touch()
    return root


CLEAN = {
    "errors.py": "import enum\n",
    "config.py": "import os\nfrom kafscale import errors\n",
    "runtime.py": "from typing import Protocol\n",
    "cli.py": "import argparse\nfrom kafscale.server import listener\nfrom kafscale import localstack, config\n",
    "__main__.py": "from kafscale.cli import main\n",
    "localstack.py": "import socket, subprocess, urllib.request\nfrom kafscale import errors\n",
    "_fast/__init__.py": "from kafscale._fast import _pure\n",
    "_fast/_pure.py": "import struct\n",
    "_fast/_kernels.pyx": "from libc.stdint cimport uint32_t\nimport struct\n",
    "protocol/frames.py": "from kafscale._fast import crc32c\nfrom kafscale.errors import KafkaError\n",
    "metadata/etcd.py": "import etcd3\nimport grpc\nfrom kafscale.metadata.store import Store\n",
    "metadata/store.py": "from ..protocol import frames\nfrom kafscale import runtime\n",
    "storage/objectstore.py": "import minio\nfrom kafscale.storage import log\n",
    "storage/log.py": "from . import objectstore\nfrom kafscale.metadata import store\nimport threading\n",
    "groups/coordinator.py": "from kafscale.metadata.store import Store\nfrom kafscale.protocol import frames\n",
    "broker/core.py": "from kafscale.storage import log\nfrom kafscale.groups import coordinator\n"
                      "from kafscale import config\n",
    "broker/handlers/heartbeat.py": "from ...groups import coordinator\nfrom ..core import Broker\n",
    "server/listener.py": "import curio\nimport socket\nfrom kafscale.broker import core\n"
                          "from kafscale.protocol import frames\n",
}


def test_checker_passes_a_clean_tree(tmp_path):
    root = _tree(tmp_path, CLEAN)
    assert check(root) == []
    # And it did look at the files (relative imports resolved, Cython scanned).
    targets = {(i.module, i.target) for i in collect_imports(root)}
    assert ("kafscale.storage.log", "kafscale.storage.objectstore") in targets
    assert ("kafscale.broker.handlers.heartbeat", "kafscale.groups.coordinator") in targets
    assert ("kafscale.broker.handlers.heartbeat", "kafscale.broker.core.Broker") in targets
    assert ("kafscale._fast._kernels", "libc.stdint.uint32_t") in targets


VIOLATIONS = [
    # (file, extra source, text expected in the report)
    ("broker/core.py", "import curio\n", "only kafscale/server/ may import curio"),
    ("storage/log.py", "def f():\n    import minio\n", "only kafscale/storage/objectstore.py may import minio"),
    ("metadata/store.py", "from etcd3 import client\n", "only kafscale/metadata/etcd.py may import etcd3"),
    ("localstack.py", "import etcd3\n", "only kafscale/metadata/etcd.py may import etcd3"),
    ("localstack.py", "import minio\n", "only kafscale/storage/objectstore.py may import minio"),
    ("protocol/frames.py", "import socket\n", "protocol must not import socket"),
    ("protocol/frames.py", "import asyncio.streams\n", "protocol must not import asyncio"),
    ("protocol/frames.py", "from threading import Lock\n", "protocol must not import threading"),
    ("_fast/_pure.py", "import subprocess\n", "_fast must not import subprocess"),
    ("_fast/_kernels.pyx", "import socket\n", "_fast must not import socket"),
    ("_fast/_kernels.pyx", "from kafscale.protocol import frames\n", "_fast is below protocol"),
    ("protocol/frames.py", "from kafscale.storage import log\n", "protocol is below storage"),
    ("protocol/frames.py", "from .. import broker\n", "protocol is below broker"),
    ("metadata/store.py", "from kafscale.broker.core import Broker\n", "metadata is below broker"),
    ("storage/log.py", "from ..server import listener\n", "storage is below server"),
    ("groups/coordinator.py", "import kafscale.server.listener\n", "groups is below server"),
    ("broker/handlers/heartbeat.py", "from ...server.listener import serve\n", "broker is below server"),
    ("broker/core.py", "from kafscale.cli import main\n", "a layer must not import cli"),
    ("cli.py", "import curio\n", "only kafscale/server/ may import curio"),
    ("protocol/frames.py", "from kafscale import localstack\n", "protocol must not use localstack"),
    ("errors.py", "from kafscale.protocol import frames\n", "a shared root module must not import protocol"),
    ("runtime.py", "from kafscale.server import listener\n", "a shared root module must not import server"),
    ("localstack.py", "from kafscale.storage import objectstore\n", "localstack must not import storage"),
    ("storage/objectstore.py", "from kafscale.storage.log import _Waiter\n", "a private name of another module"),
    ("broker/core.py", "from kafscale._fast import _pure\n", "a private name of another module"),
]


@pytest.mark.parametrize("rel,extra,expected", VIOLATIONS, ids=[f"{v[0]}:{v[2]}" for v in VIOLATIONS])
def test_checker_catches(tmp_path, rel, extra, expected):
    files = dict(CLEAN)
    files[rel] = files.get(rel, "") + extra
    problems = check(_tree(tmp_path, files))
    assert len(problems) == 1, problems
    assert expected in problems[0], problems
    assert rel in problems[0]
