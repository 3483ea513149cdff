#!/usr/bin/env python3
"""Checks that the crate's imports point down its layers (issue #26).

Every `crate::…` path in src/ (in `use` lines and inline, outside comments and outside a
file's trailing `#[cfg(test)] mod`) is an edge from the top-level module of the file it is in
to the top-level module it names; a name re-exported at the crate root (`crate::Sandbox`)
counts as the module lib.rs re-exports it from. An edge may stay within a layer or go down:

    leaves (error, config, model, …)  <  net/  <  jupyter/  <  plane/  <  backend/  <  kernel/
        <  sandbox/ (the facade)  <  exec/ files/ commands/ pty/ (the facade's children)

so nothing below sandbox/ reaches the facade, and only sandbox/ and its children import each
other. An upward edge that must stay would be listed in KNOWN below with its reason (there is
none); any other fails the check, and so does a KNOWN edge that is gone.

Run from anywhere: python3 .ci/layers.py
"""

import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"

LAYERS = [
    {"error", "config", "output", "sync", "env_vars", "context", "model"},
    {"net"},
    {"jupyter"},
    {"plane"},
    {"backend"},
    {"kernel"},
    {"sandbox"},
    {"exec", "files", "commands", "pty"},
]
RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}
# The facade and its children hold a Sandbox and may import each other.
FACADE = {"sandbox"} | LAYERS[-1]

# Upward edges that remain, as "from -> to::module" (the first module below `to`, if any).
KNOWN = {}


def top_of(path):
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".rs")


def root_exports():
    """Names lib.rs re-exports, mapped to the top-level module they come from."""
    text = (SRC / "lib.rs").read_text()
    exports = {}
    for m in re.finditer(
        r"pub use (?:crate::)?(\w+)(?:::[\w:]*)?(?:::\{([^}]*)\}|::(\w+))?;", text, re.S
    ):
        names = (m.group(2) or m.group(3) or "").replace("\n", " ")
        for name in re.split(r"[,\s]+", names):
            if name:
                exports[name] = m.group(1)
    return exports


def code_lines(path):
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#[cfg(test)]") and i + 1 < len(lines) and lines[i + 1].startswith("mod "):
            return
        yield line.split("//", 1)[0]


def modules():
    """The crate's top-level modules: src/*.rs and src/*/, besides lib.rs."""
    return {p.name.removesuffix(".rs") for p in SRC.iterdir() if p.name != "lib.rs"}


def edges():
    exports = root_exports()
    known = modules()
    found = {}
    for path in sorted(SRC.rglob("*.rs")):
        if path == SRC / "lib.rs":
            continue
        src = top_of(path)
        for number, line in enumerate(code_lines(path), 1):
            for m in re.finditer(r"crate::(\w+)(?:::(\w+))?", line):
                first, second = m.group(1), m.group(2)
                if first[0].isupper():
                    target, sub = exports.get(first), ""
                else:
                    target, sub = first, second if second and second[0].islower() else ""
                # Not a module of its own (a module lib.rs declares inline, a macro): skipped.
                if target not in known or target == src:
                    continue
                found.setdefault((src, target, sub), f"{path.relative_to(SRC.parent)}:{number}")
    return found


def main():
    failures = []
    used = set()
    for (src, target, sub), where in sorted(edges().items()):
        for module in (src, target):
            if module not in RANK:
                failures.append(f"{where}: src/{module} has no layer; add it to LAYERS in .ci/layers.py")
        if src not in RANK or target not in RANK or RANK[target] <= RANK[src]:
            continue
        if src in FACADE and target in FACADE:
            continue
        key = f"{src} -> {target}::{sub}" if f"{src} -> {target}::{sub}" in KNOWN else f"{src} -> {target}"
        if key in KNOWN:
            used.add(key)
            continue
        failures.append(f"{where}: {src}/ imports {target}/, a layer above it")
    for key in sorted(set(KNOWN) - used):
        failures.append(f"the known upward edge `{key}` is gone: remove it from KNOWN in .ci/layers.py")
    for failure in sorted(set(failures)):
        print(failure, file=sys.stderr)
    if failures:
        return 1
    print(f"layers: imports point down ({len(KNOWN)} known upward edges, listed in .ci/layers.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
