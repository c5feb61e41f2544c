"""Layout checks of a package folder: long files, long functions, protocol-kind switches
and import arrows that run the wrong way.

Usage::

    python scripts/check_layout.py [FOLDER] [--max-lines 500] [--max-function 100] [--top 10]

Prints, for FOLDER (default ``mfrkit/bench``):

* the files over ``--max-lines`` lines and the ``--top`` longest functions (a function's
  length is its ``def`` line to its last line, decorators and docstring included; a
  nested function counts inside its parent too);
* every comparison against a protocol kind (``kind == "all-pairs"``, ``p.kind in
  (VERIFICATION, ALL_PAIRS)``, ...) anywhere in ``mfrkit/`` outside the evaluator
  registry (``mfrkit/bench/evaluators/``) and the protocol kind registry
  (``mfrkit/protocols/kinds.py``);
* the imports from ``mfrkit.bench`` in the packages below it, and the import cycles
  between ``mfrkit``'s packages and between ``mfrkit.bench``'s sub-packages (function-level
  imports count: they are arrows too);
* the arrows between ``mfrkit``'s packages (its sub-folders; top-level modules such as
  ``align.py`` are left out of the listing), by layer: a package of layer *k* imports
  packages of lower layers only, so the order can be read off (e.g. ``data`` below
  ``landmarks`` below ``data_cards``).

Exits 1 when any check fails, so it can run in CI.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mfrkit"
#: Packages that must not import ``mfrkit.bench`` (they sit below it in the data flow).
BELOW_BENCH = ("packs", "models", "data", "landmarks", "maskgen", "protocols")
#: Where a switch on protocol kind is allowed: the registries themselves.
KIND_REGISTRIES = ("mfrkit/bench/evaluators/", "mfrkit/protocols/kinds.py")
PROTOCOL_KINDS = {"verification", "identification", "all-pairs", "1:1", "1:N"}
KIND_CONSTANTS = {"VERIFICATION", "IDENTIFICATION", "ALL_PAIRS", "VERIFICATION_KINDS", "KINDS"}


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def rel(path: Path) -> str:
    return path.resolve().relative_to(ROOT).as_posix()


def function_lengths(path: Path) -> list[tuple[int, str, int]]:
    """(lines, qualified name, first line) of every function of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                out.append((child.end_lineno - start + 1, f"{prefix}{child.name}", child.lineno))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _is_kind_value(node: ast.AST) -> bool:
    """A protocol-kind literal, a kind constant, or a tuple/list/set of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value in PROTOCOL_KINDS
    if isinstance(node, ast.Name):
        return node.id in KIND_CONSTANTS
    if isinstance(node, ast.Attribute):
        return node.attr in KIND_CONSTANTS
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return bool(node.elts) and any(_is_kind_value(e) for e in node.elts)
    return False


def _mentions_kind(node: ast.AST) -> bool:
    """``kind``, ``x.kind``, ``x.get("kind")`` or ``x["kind"]``."""
    if isinstance(node, ast.Name):
        return "kind" in node.id.lower()
    if isinstance(node, ast.Attribute):
        return node.attr == "kind"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == "kind"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "kind"
    return False


def kind_switches(path: Path) -> list[tuple[int, str]]:
    """(line, source) of every comparison of a protocol kind in ``path``."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    out = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        if any(_is_kind_value(s) for s in sides) and (any(_mentions_kind(s) for s in sides)
                                                        or any(isinstance(o, (ast.In, ast.NotIn)) for o in node.ops)):
            out.append((node.lineno, lines[node.lineno - 1].strip()))
    return out


def module_name(path: Path) -> str:
    parts = list(path.resolve().relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the ``mfrkit`` modules ``path`` imports (at any depth)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("mfrkit"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("mfrkit"):
                out.add(target)
                # ``from . import metrics``: the imported names may be modules
                out.update(f"{target}.{a.name}" for a in node.names)
    return out


def _group(module: str, depth: int) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:depth]) if len(parts) >= depth else None


def package_arrows(files: list[Path], prefix: str) -> dict[str, set[str]]:
    """Arrows between the sub-packages (or modules) of ``prefix``: importer -> imported."""
    depth = prefix.count(".") + 2
    known = {module_name(p) for p in files}
    graph: dict[str, set[str]] = defaultdict(set)
    for path in files:
        src = _group(module_name(path), depth)
        if src is None or not module_name(path).startswith(prefix + "."):
            continue
        for target in imports_of(path):
            if not target.startswith(prefix + "."):
                continue
            while target not in known and "." in target:  # ``from x import name``: name is no module
                target = target.rpartition(".")[0]
            dst = _group(target, depth)
            if dst and dst != src:
                graph[src].add(dst)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in list(graph):
        if v not in index:
            strong(v)
    return out


def layers(graph: dict[str, set[str]], nodes: set[str]) -> list[list[str]]:
    """``nodes`` by layer of an acyclic ``graph`` (importer -> imported): layer 0 imports
    none of ``nodes``, layer *k* imports some node of layer *k - 1* and none above it."""
    level: dict[str, int] = {}

    def depth(v: str) -> int:
        if v not in level:
            level[v] = 1 + max((depth(w) for w in graph.get(v, ()) if w in nodes), default=-1)
        return level[v]

    out: list[list[str]] = []
    for v in sorted(nodes):
        k = depth(v)
        out.extend([] for _ in range(k + 1 - len(out)))
        out[k].append(v)
    return out


def print_package_layers(graph: dict[str, set[str]]) -> None:
    """The arrows between ``mfrkit``'s packages, lowest layer first (see :func:`layers`)."""
    packages = {f"mfrkit.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    print("arrows between mfrkit's packages, by layer (a package imports lower layers only):")
    for k, layer in enumerate(layers(graph, packages)):
        for a in layer:
            down = sorted(b.rpartition(".")[2] for b in graph.get(a, ()) if b in packages)
            print(f"  {k}  {a.rpartition('.')[2]}" + (f" -> {', '.join(down)}" if down else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", nargs="?", default="mfrkit/bench")
    ap.add_argument("--max-lines", type=int, default=500)
    ap.add_argument("--max-function", type=int, default=100)
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args(argv)
    folder = (ROOT / args.folder).resolve()
    failed = False

    files = python_files(folder)
    sizes = sorted(((len(p.read_text(encoding="utf-8").splitlines()), rel(p)) for p in files), reverse=True)
    long_files = [(n, p) for n, p in sizes if n > args.max_lines]
    print(f"files in {rel(folder)}: {len(files)}; longest: {sizes[0][0] if sizes else 0} lines; "
          f"over {args.max_lines}: {len(long_files)}")
    for n, p in long_files:
        print(f"  {n:5d}  {p}")
    funcs = sorted(((n, f"{rel(p)}:{line} {name}") for p in files for n, name, line in function_lengths(p)), reverse=True)
    over = [f for f in funcs if f[0] > args.max_function]
    print(f"functions: {len(funcs)}; over {args.max_function} lines: {len(over)}; the {args.top} longest:")
    for n, where in funcs[: max(args.top, len(over))]:
        print(f"  {n:5d}  {where}")
    failed |= bool(long_files or over)

    switches = [(rel(p), line, src) for p in python_files(PACKAGE) for line, src in kind_switches(p)
                if not rel(p).startswith(KIND_REGISTRIES)]
    print(f"protocol-kind switches outside {', '.join(KIND_REGISTRIES)}: {len(switches)}")
    for p, line, src in switches:
        print(f"  {p}:{line}: {src}")
    failed |= bool(switches)

    all_files = python_files(PACKAGE)
    up = [(rel(p), t) for p in all_files if module_name(p).split(".")[1:2] and module_name(p).split(".")[1] in BELOW_BENCH
          for t in sorted(imports_of(p)) if t == "mfrkit.bench" or t.startswith("mfrkit.bench.")]
    print(f"imports of mfrkit.bench from {', '.join(BELOW_BENCH)}: {len(up)}")
    for p, t in up:
        print(f"  {p} -> {t}")
    failed |= bool(up)

    for prefix in ("mfrkit", "mfrkit.bench"):
        graph = package_arrows(all_files, prefix)
        found = cycles(graph)
        print(f"import cycles between the packages of {prefix}: {len(found)}")
        for comp in found:
            arrows = [f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp]
            print(f"  {', '.join(comp)}: {'; '.join(arrows)}")
        failed |= bool(found)
        if prefix == "mfrkit" and not found:
            print_package_layers(graph)
        if prefix == "mfrkit.bench":
            print("arrows between mfrkit.bench's sub-packages:")
            for a in sorted(graph):
                print(f"  {a.rpartition('.')[2]} -> {', '.join(sorted(b.rpartition('.')[2] for b in graph[a]))}")
    print("FAILED" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
