"""The shape of the code (docs/architecture.md): the import graph of ``evstream`` and ``app`` has no circle
and no import from a lower layer to a higher one (imports inside functions count too), and no class or
function grows past its size limit. Static: the files are parsed, nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# lowest first; a module may import its own layer (without a circle) and the layers below
LAYERS = [
    ["evstream.errors", "evstream.paths", "evstream.events", "evstream.fileio", "evstream.stream", "evstream.jit",
     "evstream.workers"],
    ["evstream.readers", "evstream.writers", "evstream.filters", "evstream.slicing", "evstream.augment",
     "evstream.representations", "evstream.emulator", "evstream.energy", "evstream.monitors", "evstream.streams",
     "evstream.cache"],
    ["evstream.sources", "evstream.datasets", "evstream.serve", "evstream.synth"],
    ["evstream.snn"],
    ["evstream.inputs", "evstream.distributed", "evstream.loader"],
    ["evstream.train", "evstream.evaluate", "evstream.pretrain", "evstream.calibrate", "evstream.live",
     "evstream.stream_eval", "evstream.export"],
    ["evstream.pipeline", "evstream.cli", "evstream.__main__", "evstream", "app"],
]
MAX_CLASS, MAX_FUNCTION = 300, 80


def modules() -> dict[str, Path]:
    out = {}
    for root in ("evstream", "app"):
        for p in sorted((REPO / root).rglob("*.py")):
            parts = p.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imports(name: str, path: Path, known) -> set[str]:
    """The project modules ``name`` imports (``from pkg import sub`` counts as ``pkg.sub`` when that is a module)."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # a name inside a module: the module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def layer_of(mod: str) -> int:
    best = None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    assert best is not None, f"{mod} is in no layer of tests/test_architecture.py: add it"
    return best[0]


def graph():
    known = modules()
    return {m: imports(m, p, known) for m, p in known.items()}


def test_every_module_has_a_layer():
    for m in modules():
        layer_of(m)


def test_no_import_goes_up_a_layer():
    bad = [f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
           for a, deps in graph().items() for b in deps if layer_of(b) > layer_of(a)]
    assert not bad, "\n".join(bad)


def find_cycle(g):
    """One import circle as a list of modules, or None (depth-first search)."""
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(g.get(m, ())):
            # a package importing its own submodules is how packages are built, not a circle
            if d.startswith(m + "."):
                continue
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_circle():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a.x"}, "a.x": set()}) is None


def _numba_kernel(node) -> bool:
    return any("njit" in ast.unparse(d) or "numba" in ast.unparse(d) or ast.unparse(d).startswith("nb.")
               for d in node.decorator_list)


@pytest.mark.parametrize("root", ["evstream", "app"])
def test_no_class_or_function_too_long(root):
    long = []
    for p in sorted((REPO / root).rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            n = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, ast.ClassDef) and n > MAX_CLASS:
                long.append(f"{p.relative_to(REPO)}: class {node.name} has {n} lines (max {MAX_CLASS})")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and n > MAX_FUNCTION \
                    and not _numba_kernel(node):
                long.append(f"{p.relative_to(REPO)}: {node.name}() has {n} lines (max {MAX_FUNCTION})")
    assert not long, "\n".join(long)
