"""Just enough of Docker's build semantics to check the Dockerfile without Docker:
parse it into stages, and reproduce the build context that .dockerignore lets through.

    stages = parse_dockerfile(text)
    stages[-1].first("ENTRYPOINT")          # 'ENTRYPOINT' args as written
    files = build_context(repo_root)        # relative paths Docker would send
"""

from __future__ import annotations

import os
import pathlib
import re
from dataclasses import dataclass, field


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, rest)

    def all(self, instruction: str) -> list[str]:
        return [rest for ins, rest in self.instructions if ins == instruction]

    def first(self, instruction: str) -> str | None:
        found = self.all(instruction)
        return found[0] if found else None

    def last(self, instruction: str) -> str | None:
        found = self.all(instruction)
        return found[-1] if found else None


def logical_lines(text: str) -> list[str]:
    """Instructions with backslash continuations joined; comments and blanks dropped."""
    out: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        out.append(current)
        current = ""
    if current:
        out.append(current)
    return out


def parse_dockerfile(text: str) -> list[Stage]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(text):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
            continue
        if instruction == "FROM":
            parts = rest.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
            continue
        assert stages, f"instruction before FROM: {line}"
        stages[-1].instructions.append((instruction, rest))
    return stages


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over '/' paths."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((negate, _pattern_regex(pattern)))
    return rules


def excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent
    directories decides; `!` patterns re-include."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for negate, regex in rules:
        if any(regex.match(p) for p in prefixes):
            result = not negate
    return result


def build_context(root: pathlib.Path) -> set[str]:
    """Relative paths of every file Docker would put in the build context of root."""
    ignore = root / ".dockerignore"
    text = ignore.read_text() if ignore.exists() else ""
    rules = dockerignore_rules(text)
    reincluded = [line.strip()[1:].strip().lstrip("/") for line in text.splitlines() if line.strip().startswith("!")]
    files = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        # skip excluded directories no `!` pattern reaches into (.git, .venv, data, ...)
        keep = []
        for d in dirnames:
            rel = os.path.normpath(os.path.join(rel_dir, d))
            if not excluded(rel, rules) or any(p.startswith(rel + "/") or "*" in p.split("/")[0] for p in reincluded):
                keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if not excluded(rel, rules):
                files.add(rel)
    return files
