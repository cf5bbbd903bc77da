"""The package's layout shows its layers: each layer a subpackage (the core at the top
level), no import pointing up a layer, no import cycle, and modules small enough to read."""
import ast
from collections import defaultdict
from pathlib import Path

from conftest import REPO

# Lowest first; a module may import its own layer and the ones below it. docs/developing.md
# describes each layer.
LAYERS = (
    ("core", ("sar_prompt.errors", "sar_prompt.io", "sar_prompt.catalog", "sar_prompt.templates",
              "sar_prompt.vocabulary", "sar_prompt.sar", "sar_prompt.config",
              "sar_prompt.modeling", "sar_prompt.novel", "sar_prompt.data", "sar_prompt.world",
              "sar_prompt.classnames", "sar_prompt.published", "sar_prompt.configs")),
    ("dassl glue", ("sar_prompt.dassl_glue", "sar_prompt.trainers", "sar_prompt.datasets")),
    ("runs", ("sar_prompt.runs",)),
    ("results", ("sar_prompt.results",)),
    ("orchestration", ("sar_prompt.orchestration",)),
    ("front door", ("sar_prompt.cli", "sar_prompt.train", "sar_prompt.__main__", "sar_prompt")),
)
TOP_LEVEL_LIMIT, MODULE_LIMIT, BASE_TRAINER_LIMIT = 10, 450, 300


def modules():
    """{module name: file} of the installed package (trainers/ and datasets/ are mapped into
    it, as setup.py maps them)."""
    found = {}
    for root, package in ((REPO / "sar_prompt", "sar_prompt"), (REPO / "trainers",
                          "sar_prompt.trainers"), (REPO / "datasets", "sar_prompt.datasets")):
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports(name, path, known):
    """The package's modules that `name` (at `path`) imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("sar_prompt") and target != name:
                out.add(target)
    return out


def layer_of(name):
    best = max((prefix for _, prefixes in LAYERS for prefix in prefixes
                if name == prefix or name.startswith(prefix + ".")), key=len)
    return next(i for i, (_, prefixes) in enumerate(LAYERS) if best in prefixes)


def graph():
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_no_import_points_up_a_layer():
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
              for a, targets in graph().items() for b in sorted(targets)
              if layer_of(b) > layer_of(a)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    edges = graph()
    # a package's __init__ that re-exports its modules is not a cycle with them
    edges = {a: {b for b in bs if not a.startswith(b + ".")} for a, bs in edges.items()}
    state, cycles = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_an_upward_import_and_a_cycle():
    """The two tests above can fail: an edge from the core to the runner is upward, and
    two modules importing each other are a cycle."""
    assert layer_of("sar_prompt.orchestration.runner") > layer_of("sar_prompt.sar")
    known = modules()
    assert "sar_prompt.runs.identity" in imports("sar_prompt.runs.protocols",
                                                 known["sar_prompt.runs.protocols"], known)


def test_module_sizes_and_names():
    known = modules()
    top = sorted(p.name for p in (REPO / "sar_prompt").glob("*.py"))
    assert len(top) <= TOP_LEVEL_LIMIT, top
    long = {name: n for name, path in known.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LIMIT}
    assert not long, long
    assert len((REPO / "trainers" / "base.py").read_text().splitlines()) <= BASE_TRAINER_LIMIT
    by_name = defaultdict(list)
    for name, path in known.items():
        if path.stem not in ("__init__", "__main__"):
            by_name[path.stem].append(name)
    shared = {stem: names for stem, names in by_name.items() if len(names) > 1}
    assert not shared, shared


def test_the_import_paths_users_write_keep_working():
    import importlib

    for module, name in (("sar_prompt.sar", "SimilarityAlignment"),
                         ("sar_prompt.results", "build_table"),
                         ("sar_prompt.novel", "load"), ("sar_prompt.data", "doctor"),
                         ("sar_prompt", "extend_cfg"), ("sar_prompt", "register")):
        imported = importlib.import_module(module)
        assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), \
            f"{module}.{name}"
