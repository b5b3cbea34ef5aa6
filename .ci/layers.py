#!/usr/bin/env python3
"""Fail when the modules of src/ import each other in a cycle.

Each file under src/ is a module (src/a/mod.rs is `a`, src/a/b.rs is
`a::b`). Every `crate::...` and `super::...` path in a file (in `use`
declarations and in code alike, tests included) is an edge to the longest
module that path names, except between a module and its own parts (see
`related`). The graph must have no cycle: a module may use only what sits
below it. Prints each cycle found, as a chain of modules
and the lines that make it.

The check runs twice: over files, and over the crate's top-level modules
(a directory counts as one: `forward::pool -> keystone::v3` is an edge
`forward -> keystone`). The second finds what the first cannot see, a
cycle that goes through a directory's face and out through one of its
parts.

    usage: .ci/layers.py [SRC_DIR]       (default: src)
"""
import os
import re
import sys

PATH = re.compile(r"\b(crate|super)((?:::(?:\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*))+)")


def modules(src):
    found = {}
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            found[tuple(rel)] = path
    return found


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def targets(module, head, tail, known):
    """The modules a path like `crate::a::{b, c::d}` names."""
    # `super` is the parent module, for src/a/b.rs (`a::b`) and for
    # src/a/mod.rs (`a`, whose parent is the crate) alike.
    base = () if head == "crate" else module[:-1]
    out = set()
    for path in expand(tail):
        parts = base + tuple(p for p in path if p)
        while parts and parts not in known:
            parts = parts[:-1]
        out.add(parts)
    return out


def expand(tail):
    """`::a::{b, c::d}` -> [[a, b], [a, c, d]] (one level of braces)."""
    tail = tail.strip(":")
    if "{" not in tail:
        return [tail.split("::")]
    before, inside = tail.split("{", 1)
    inside = inside.rsplit("}", 1)[0]
    prefix = [p for p in before.split("::") if p]
    paths = []
    for item in inside.split(","):
        item = item.strip().split(" as ")[0].strip()
        if item and item != "self":
            paths.append(prefix + [p.strip() for p in item.split("::") if p.strip()])
        elif item == "self":
            paths.append(prefix)
    return paths or [prefix]


def graph(src):
    known = modules(src)
    edges = {m: {} for m in known}
    for module, path in known.items():
        with open(path, encoding="utf-8") as f:
            text = strip_comments(f.read())
        for number, line in enumerate(text.splitlines(), 1):
            for match in PATH.finditer(line):
                head, tail = match.group(1), match.group(2)
                for target in targets(module, head, tail, known):
                    if related(module, target):
                        continue
                    edges[module].setdefault(target, f"{path}:{number}")
    return known, edges


def related(a, b):
    """The same module, or one inside the other: a directory module's
    mod.rs is its face (it declares and re-exports its parts, which share
    its vocabulary), so uses between a module and its own parts are not
    layering; uses between siblings and across directories are."""
    short, long = sorted((a, b), key=len)
    return long[: len(short)] == short


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def top_level(edges):
    """The same graph with each module replaced by its top-level module;
    uses inside one top-level module are dropped."""
    out = {}
    for v, targets_of_v in edges.items():
        top = v[:1]
        out.setdefault(top, {})
        for w, where in targets_of_v.items():
            if w[:1] != top:
                out[top].setdefault(w[:1], where)
            out.setdefault(w[:1], {})
    return out


def report(edges, what):
    found = cycles(edges)
    if not found:
        print(f"layers: {len(edges)} {what}, no import cycle")
        return 0
    for component in found:
        members = set(component)
        print(f"layers: a cycle through {len(component)} {what}:")
        for v in sorted(component):
            for w, where in sorted(edges[v].items()):
                if w in members:
                    print(f"  {name(v)} -> {name(w)}   ({where})")
    return 1


def name(module):
    return "::".join(module) or "crate"


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    _, edges = graph(src)
    failed = report(edges, "modules")
    failed |= report(top_level(edges), "top-level modules")
    return failed


if __name__ == "__main__":
    sys.exit(main())
