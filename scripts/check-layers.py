#!/usr/bin/env python3
"""The layer check of the core crate (docs: /work/shared/ARCHITECTURE.md, "Layers").

Reads every `use crate::...`, `use super::...` and inline `crate::a::b` / `super::a`
path of the non-test code under src/, resolves each to the top-level module it names,
and fails when a module imports from a layer above its own (or a leaf imports anything
of the crate), when a file or folder under src/ belongs to no layer, or when the
non-test part of a source file (src/ and bindings/*/src/) is longer than MAX_LINES.

    python3 scripts/check-layers.py              # check this checkout; exit 1 on any finding
    python3 scripts/check-layers.py --root DIR   # check another tree
    python3 scripts/check-layers.py --self-test  # check the checker on a tiny fake tree

Python 3 standard library only. Test code is left out: every item under
`#[cfg(test)]` (usually `mod tests { ... }`, wherever it sits in the file).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# --- the layer table: the one place to change ---------------------------------------
# Lowest first. A module may import from its own layer and the ones listed before it;
# a leaf imports nothing of the crate. Each path is relative to the repository root: a
# folder ends with "/", anything else is one file.
LAYERS: list[tuple[str, tuple[str, ...], bool]] = [
    # (name,      paths,                leaf)
    ("protocol", ("src/protocol/",), False),
    ("metrics", ("src/metrics.rs",), True),
    ("batch", ("src/batch.rs",), True),
    ("engine", ("src/engine/",), False),
    ("socketio", ("src/socketio/",), False),
    ("adapter", ("src/adapter/",), False),
    ("server", ("src/server/",), False),
    ("host", ("src/host/",), False),
]
# Files that belong to no layer on purpose: the crate root declares and re-exports.
EXEMPT = ("src/lib.rs",)
# Longest non-test part of one source file, in lines.
MAX_LINES = 800
# Where the line limit applies (globs relative to the root); every *.rs below them.
LINE_LIMIT_DIRS = ("src", "bindings/*/src")
# -------------------------------------------------------------------------------------

RANK = {name: i for i, (name, _, _) in enumerate(LAYERS)}
LEAF = {name for name, _, leaf in LAYERS if leaf}


@dataclass(frozen=True)
class Violation:
    file: str  # relative to the root
    line: int
    src: str  # importing layer
    dst: str  # imported layer, or "?" when the target is in no layer
    path: str  # the resolved import, crate::...

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.src} -> {self.dst}: {self.path}"


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)  # src/ entries in no layer
    too_long: list[tuple[str, int]] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)  # layer cycles

    def failed(self) -> bool:
        return bool(self.violations or self.unplaced or self.too_long)


# --- reading Rust ----------------------------------------------------------------------


def blank_comments_and_literals(text: str) -> str:
    """The text with comments and string/char literals replaced by spaces, newlines
    kept, so offsets and line numbers stay valid and no path inside them counts."""
    out = list(text)
    n = len(text)
    i = 0

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(text, i)) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + m.group(1)
            j = text.find(close, m.end())
            j = n if j < 0 else j + len(close)
            blank(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a, 'static).
            if i + 1 < n and text[i + 1] == "\\":
                j = text.find("'", i + 2)
                j = n if j < 0 else j
                blank(i, j + 1)
                i = j + 1
            elif i + 2 < n and text[i + 2] == "'":
                blank(i, i + 3)
                i += 3
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def item_end(clean: str, start: int) -> int:
    """End offset of the item starting at `start`: just after its first `;` at brace
    depth 0, or after the `}` closing its first `{`."""
    depth = 0
    for k in range(start, len(clean)):
        ch = clean[k]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return k + 1
        elif ch == ";" and depth == 0:
            return k + 1
    return len(clean)


CFG_TEST = re.compile(r"#\[cfg\(test\)\]")
ATTRIBUTE = re.compile(r"\s*#!?\[[^\]]*\]")


def strip_test_items(clean: str) -> tuple[str, int]:
    """Blanks every item under `#[cfg(test)]` (the attribute, further attributes, the
    item). Returns the text and the number of lines removed."""
    out = list(clean)
    removed = 0
    pos = 0
    while m := CFG_TEST.search(clean, pos):
        k = m.end()
        while a := ATTRIBUTE.match(clean, k):
            k = a.end()
        end = item_end(clean, k)
        # Whole lines from the attribute's line to the item's last line.
        first = clean.rfind("\n", 0, m.start()) + 1
        last = clean.find("\n", end)
        last = len(clean) if last < 0 else last
        removed += clean.count("\n", first, last) + 1
        for q in range(first, last):
            if out[q] != "\n":
                out[q] = " "
        pos = last
    return "".join(out), removed


def parse_use_tree(text: str) -> list[list[str]]:
    """The full paths of one use tree (`crate::{a, b::{c, d as e}, f::*}`), each as a
    list of segments; `self` inside braces names the parent; globs end at the parent."""
    tokens = re.findall(r"::|[{},*]|[A-Za-z_][A-Za-z0-9_]*", text)
    pos = 0

    def tree(prefix: list[str]) -> list[list[str]]:
        nonlocal pos
        path = list(prefix)
        out: list[list[str]] = []
        while pos < len(tokens):
            t = tokens[pos]
            if t == "{":
                pos += 1
                while pos < len(tokens) and tokens[pos] != "}":
                    out += tree(path)
                    if pos < len(tokens) and tokens[pos] == ",":
                        pos += 1
                pos += 1  # "}"
                return out
            if t == "*":
                pos += 1
                return [path]
            if t == "::":
                pos += 1
                continue
            if t in (",", "}"):
                break
            if t == "as":
                pos += 2  # the alias
                break
            if t == "self" and prefix:
                pos += 1  # `a::{self}` is `a`
                continue
            path.append(t)
            pos += 1
        out.append(path)
        return out

    return [p for p in tree([]) if p]


@dataclass(frozen=True)
class Import:
    line: int
    path: tuple[str, ...]  # absolute, starting with "crate"


USE_DECL = re.compile(r"(?<![\w$])use\s+([^;]+);")
INLINE_PATH = re.compile(r"(?<![\w$:])((?:crate|super)(?:\s*::\s*(?:[A-Za-z_][A-Za-z0-9_]*))+)")
VISIBILITY_IN = re.compile(r"pub\s*\(\s*in\s+[^)]*\)")


def module_of(rel: str) -> list[str]:
    """The module path of a file: src/a/b.rs and src/a/b/mod.rs are crate::a::b."""
    parts = Path(rel).with_suffix("").parts[1:]  # drop "src"
    parts = list(parts)
    if parts and parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return ["crate", *parts]


def absolute(path: list[str], module: list[str]) -> tuple[str, ...] | None:
    """`path` from the file's module made absolute (crate::...), or None for paths
    outside the crate (std, other crates) and `self::` / child-module paths, which stay
    inside the file's own module and therefore its layer."""
    if not path:
        return None
    if path[0] == "crate":
        return tuple(path)
    if path[0] == "super":
        base = list(module)
        rest = list(path)
        while rest and rest[0] == "super":
            rest.pop(0)
            if len(base) > 1:
                base.pop()
        return tuple(base + rest)
    return None


def imports_of(clean: str, module: list[str]) -> list[Import]:
    found: set[Import] = set()
    spans: list[tuple[int, int]] = []
    for m in USE_DECL.finditer(clean):
        line = clean.count("\n", 0, m.start()) + 1
        for p in parse_use_tree(m.group(1)):
            if (a := absolute(p, module)) is not None:
                found.add(Import(line, a))
        spans.append(m.span())
    masked = list(clean)
    for a, b in spans:
        for k in range(a, b):
            if masked[k] != "\n":
                masked[k] = " "
    rest = VISIBILITY_IN.sub(lambda m: " " * len(m.group(0)), "".join(masked))
    for m in INLINE_PATH.finditer(rest):
        path = [s.strip() for s in m.group(1).split("::")]
        if (a := absolute(path, module)) is not None:
            found.add(Import(rest.count("\n", 0, m.start()) + 1, a))
    return sorted(found, key=lambda i: (i.line, i.path))


# --- layers ----------------------------------------------------------------------------


def layer_of_file(rel: str) -> str | None:
    for name, paths, _ in LAYERS:
        for p in paths:
            if (p.endswith("/") and rel.startswith(p)) or rel == p:
                return name
    return None


def root_reexports(lib: str) -> dict[str, list[str]]:
    """Names the crate root re-exports (`pub use a::b::{X, Y as Z};`): name -> path."""
    names: dict[str, list[str]] = {}
    for m in re.finditer(r"(?<![\w$])pub\s+use\s+([^;]+);", lib):
        tree = m.group(1)
        for path in parse_use_tree(tree):
            names.setdefault(path[-1], path)
        for alias in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)\s+as\s+([A-Za-z_][A-Za-z0-9_]*)", tree):
            for path in parse_use_tree(tree):
                if path[-1] == alias.group(1):
                    names[alias.group(2)] = path
    return names


class Resolver:
    """Maps an absolute path to the file of the top-level module it goes through."""

    def __init__(self, root: Path):
        self.root = root
        lib = root / "src/lib.rs"
        text = blank_comments_and_literals(lib.read_text()) if lib.exists() else ""
        self.reexports = root_reexports(text)

    def target(self, path: tuple[str, ...], depth: int = 0) -> tuple[str | None, str]:
        """(layer or None, the file or folder it resolved to)."""
        if len(path) < 2:
            return None, "src/lib.rs"
        first = path[1]
        for rel in (f"src/{first}.rs", f"src/{first}/mod.rs", f"src/{first}/"):
            if (self.root / rel).exists():
                layer = layer_of_file(rel)
                return layer, rel if layer else f"{rel} is in no layer"
        if first in self.reexports and depth < 8:
            via = self.reexports[first]
            start = via[1:] if via[0] in ("crate", "self") else via
            return self.target(("crate", *start, *path[2:]), depth + 1)
        return None, f"crate::{first} is neither a module under src/ nor a re-export of src/lib.rs"


# --- the check -------------------------------------------------------------------------


def rust_files(base: Path) -> list[Path]:
    return sorted(p for p in base.rglob("*.rs") if p.is_file())


def check(root: Path) -> Report:
    report = Report()
    src = root / "src"
    resolver = Resolver(root)
    edges: dict[str, set[str]] = {name: set() for name in RANK}

    # Every file under src/ must be in a layer (or exempt); reported by its top-level
    # entry (src/x.rs, src/dir/) when the whole entry is outside the layers.
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in EXEMPT or layer_of_file(rel) is not None:
            continue
        top = Path(rel).parts[1]
        entry = f"src/{top}/" if (src / top).is_dir() else f"src/{top}"
        whole = not any(p.startswith(entry) for _, paths, _ in LAYERS for p in paths)
        shown = entry if whole else rel
        if shown not in report.unplaced:
            report.unplaced.append(shown)

    for path in rust_files(src):
        rel = path.relative_to(root).as_posix()
        own = layer_of_file(rel)
        if rel in EXEMPT or own is None:
            continue
        clean, _ = strip_test_items(blank_comments_and_literals(path.read_text()))
        for imp in imports_of(clean, module_of(rel)):
            dst, where = resolver.target(imp.path)
            shown = "::".join(imp.path)
            if dst is None:
                report.violations.append(Violation(rel, imp.line, own, "?", f"{shown} ({where})"))
                continue
            if dst != own:
                edges[own].add(dst)
            if dst == own:
                continue
            if own in LEAF or RANK[dst] > RANK[own]:
                report.violations.append(Violation(rel, imp.line, own, dst, shown))

    for pattern in LINE_LIMIT_DIRS:
        for base in sorted(root.glob(pattern)):
            for path in rust_files(base):
                text = path.read_text()
                _, removed = strip_test_items(blank_comments_and_literals(text))
                lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1) - removed
                if lines > MAX_LINES:
                    report.too_long.append((path.relative_to(root).as_posix(), lines))

    report.cycles = layer_cycles(edges)
    return report


def layer_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one layer (Tarjan), lowest layer first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group, key=RANK.get))

    for v in sorted(edges, key=RANK.get):
        if v not in index:
            visit(v)
    return out


def print_report(report: Report, out=sys.stdout) -> None:
    order = " < ".join(name + (" (leaf)" if leaf else "") for name, _, leaf in LAYERS)
    if report.violations:
        print(f"layer violations (allowed: own layer or lower; {order}):", file=out)
        for v in report.violations:
            print(f"  {v}", file=out)
    if report.unplaced:
        print("in no layer (place it in LAYERS of scripts/check-layers.py, or move it):", file=out)
        for rel in report.unplaced:
            print(f"  {rel}", file=out)
    if report.too_long:
        print(f"over {MAX_LINES} lines (non-test part):", file=out)
        for rel, n in report.too_long:
            print(f"  {rel}: {n} lines", file=out)
    for group in report.cycles:
        print(f"layers in one import cycle: {', '.join(group)}", file=out)
    verdict = "FAILED" if report.failed() else "ok"
    print(
        f"check-layers: {verdict}: {len(report.violations)} violation(s), "
        f"{len(report.unplaced)} src/ entr{'y' if len(report.unplaced) == 1 else 'ies'} in no layer, "
        f"{len(report.too_long)} file(s) over {MAX_LINES} lines, {len(report.cycles)} layer cycle(s)",
        file=out,
    )


# --- self-test -------------------------------------------------------------------------

FAKE_TREE = {
    "src/lib.rs": "pub mod protocol;\nmod engine;\nmod socketio;\nmod adapter;\nmod metrics;\n"
    "pub use engine::Session;\n",
    "src/protocol/mod.rs": "//! Codecs.\npub mod codec;\n",
    "src/protocol/codec.rs": "pub fn encode() {}\n",
    "src/metrics.rs": "pub struct Stats;\n",
    # Good: engine uses protocol (grouped, with self), metrics inline, `super` within
    # its own folder; a string and a comment that mention crate::adapter do not count.
    "src/engine/mod.rs": "use crate::{metrics::Stats, protocol::{self, codec::encode}};\n"
    "mod queue;\n"
    "pub struct Session;\n"
    "fn f() { let _ = crate::metrics::Stats; let _s = \"crate::adapter::X\"; } // crate::adapter\n",
    "src/engine/queue.rs": "use super::Session;\n",
    # Cycle: socketio -> adapter (bad, line 2) and adapter -> socketio (good); the
    # crate-root re-export `crate::Session` resolves to engine (good).
    "src/socketio/mod.rs": "use crate::Session;\nuse crate::adapter::Adapter;\n"
    "#[cfg(test)]\nmod tests {\n    use crate::adapter::Fake;\n}\n"
    "pub struct Namespace;\n"
    "fn g() -> super::adapter::Adapter { todo!() }\n",
    "src/adapter/mod.rs": "use crate::socketio::Namespace;\npub struct Adapter;\n",
    # Bad: a leaf imports from the crate.
    "src/batch.rs": "use crate::protocol::codec;\n",
    # In no layer.
    "src/extra.rs": "fn h() {}\n",
    # Over the limit: 801 lines before the tests.
    "bindings/py/src/lib.rs": "// x\n" * 801 + "#[cfg(test)]\nmod tests {}\n",
}

EXPECTED = {
    "violations": {
        ("src/socketio/mod.rs", 2, "socketio", "adapter", "crate::adapter::Adapter"),
        ("src/socketio/mod.rs", 8, "socketio", "adapter", "crate::adapter::Adapter"),
        ("src/batch.rs", 1, "batch", "protocol", "crate::protocol::codec"),
    },
    "unplaced": ["src/extra.rs"],
    "too_long": [("bindings/py/src/lib.rs", 801)],
    "cycles": [["socketio", "adapter"]],
}


def self_test() -> int:
    failures: list[str] = []

    def expect(what: str, got: object, want: object) -> None:
        if got != want:
            failures.append(f"{what}: got {got!r}, want {want!r}")

    # The parsers on their own.
    expect(
        "use tree",
        parse_use_tree("crate::{a, b::{c, d as e}, f::*, g::{self, h}}"),
        [["crate", "a"], ["crate", "b", "c"], ["crate", "b", "d"], ["crate", "f"], ["crate", "g"], ["crate", "g", "h"]],
    )
    expect("super from a file", absolute(["super", "x"], module_of("src/server/http.rs")), ("crate", "server", "x"))
    expect("super from mod.rs", absolute(["super", "x"], module_of("src/server/mod.rs")), ("crate", "x"))
    middle = "fn a() {}\n#[cfg(test)]\n#[allow(dead_code)]\nmod tests {\n    fn b() { let s = \"}\"; }\n}\nfn c() {}\n"
    stripped, removed = strip_test_items(blank_comments_and_literals(middle))
    expect("a test module in the middle", (stripped.split("\n")[6], removed), ("fn c() {}", 5))

    # A whole fake tree.
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, text in FAKE_TREE.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        report = check(root)
        got = {(v.file, v.line, v.src, v.dst, v.path) for v in report.violations}
        expect("violations", got, EXPECTED["violations"])
        expect("unplaced", report.unplaced, EXPECTED["unplaced"])
        expect("too long", report.too_long, EXPECTED["too_long"])
        expect("cycles", report.cycles, EXPECTED["cycles"])
        expect("failed", report.failed(), True)

        # The same tree with the findings fixed passes.
        (root / "src/socketio/mod.rs").write_text("use crate::Session;\npub struct Namespace;\n")
        (root / "src/batch.rs").write_text("pub struct Batcher;\n")
        (root / "src/extra.rs").unlink()
        (root / "bindings/py/src/lib.rs").write_text("// short\n")
        clean = check(root)
        expect("clean tree", (clean.violations, clean.unplaced, clean.too_long, clean.cycles, clean.failed()),
               ([], [], [], [], False))

    for f in failures:
        print(f"check-layers self-test: {f}", file=sys.stderr)
    print(f"check-layers self-test: {'FAILED' if failures else 'ok'}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="repository root (default: this checkout)")
    parser.add_argument("--self-test", action="store_true", help="check the checker on a fake tree")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    report = check(args.root)
    print_report(report)
    return 1 if report.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
