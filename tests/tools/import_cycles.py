#!/usr/bin/env python3
"""Checks that imports between the files of src/ run one way (no file-level cycle).

Each `.rs` file is a node; an edge A -> B is any path in A that names an item of B
(`crate::x::y`, `super::z`, `self::w`, and `child::item` relative to A's own module, in `use`
declarations or in code), resolved to the longest module prefix that is a file. `mod child;` declarations are not edges (they are how the
tree is spelled, not a use of it). A `#[cfg(test)] mod tests { ... }` block is skipped: unit tests
see their own file's parent freely. Prints every cycle (strongly connected component) and exits 1
if there is one.

    python3 tests/tools/import_cycles.py [src]
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "src"


def module_of(path):
    """src/a/b.rs -> ('a', 'b'); src/a/mod.rs -> ('a',); src/lib.rs -> ()."""
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


files = {}
for dirpath, _, names in os.walk(ROOT):
    for n in names:
        if n.endswith(".rs"):
            p = os.path.join(dirpath, n)
            files[p] = module_of(p)
# main.rs is the binary's own crate root: its `crate::` is not the library's.
bin_files = {p for p in files if os.path.relpath(p, ROOT).split(os.sep)[0] in ("main.rs", "cli")}
modules = {}
for p, m in files.items():
    key = ("bin" if p in bin_files else "lib", m)
    modules[key] = p


def resolve(crate, segments):
    """The file holding the longest prefix of `segments` that is a module."""
    for n in range(len(segments), -1, -1):
        p = modules.get((crate, tuple(segments[:n])))
        if p:
            return p
    return None


def strip_tests(text):
    """Removes `#[cfg(test)] mod NAME { ... }` blocks and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def use_paths(text):
    """Every path a file names: expands `use a::{b, c::{d}}` groups."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        paths += expand(m.group(1).replace("\n", " ").strip())
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
        paths.append(m.group(1))
    # Paths relative to the file's own module (`child::item` in code, not only in `use`).
    for m in re.finditer(r"(?<![\w:])([a-z_]\w*(?:::\w+)+)", text):
        paths.append(m.group(1))
    return paths


def expand(tree):
    tree = re.sub(r"\s+as\s+\w+", "", tree).replace(" ", "")
    if "{" not in tree:
        return [tree]
    head, rest = tree.split("{", 1)
    body = rest[: rest.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    parts.append(cur)
    return [x for part in parts if part for x in expand(head + part)]


edges = {p: set() for p in files}
for p, mod in files.items():
    crate = "bin" if p in bin_files else "lib"
    text = strip_tests(open(p, encoding="utf-8").read())
    for path in use_paths(text):
        segs = [s for s in path.split("::") if s and s != "*"]
        if not segs:
            continue
        if segs[0] == "crate":
            target = resolve(crate, segs[1:])
        elif segs[0] == "super":
            base = list(mod)
            while segs and segs[0] == "super":
                # super of a mod.rs/file module is its parent module.
                base = base[:-1]
                segs = segs[1:]
            target = resolve(crate, base + segs)
        elif segs[0] == "self":
            target = resolve(crate, list(mod) + segs[1:])
        elif segs[0] == "ismf" and crate == "bin":
            target = resolve("lib", segs[1:])
        else:
            # A child module named from its parent (`use watch::Watcher` in mod.rs) or an
            # external crate (ignored: not a file of ours).
            target = modules.get((crate, tuple(list(mod) + segs[:1])))
            if target:
                target = resolve(crate, list(mod) + segs)
        if target and target != p:
            edges[p].add(target)

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(edges[v]):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))


for v in sorted(edges):
    if v not in index:
        visit(v)

n_edges = sum(len(e) for e in edges.values())
if sccs:
    for comp in sccs:
        print("import cycle:")
        for a in comp:
            outs = sorted(b for b in edges[a] if b in comp)
            print(f"  {a} -> {', '.join(outs)}")
    sys.exit(1)
print(f"import_cycles: {len(files)} files, {n_edges} file-level imports, no cycle")
