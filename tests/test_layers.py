"""Imports go one way: models < gateways < domain < views < the app factory (issue 8).

Every module under payapp/ has a layer; a module may import its own layer or lower ones, never a
higher one, and payapp modules never import each other in a circle. Domain modules also stay
free of Flask's request-scoped names, so they run the same in tests, commands and requests.
`python tests/test_layers.py` prints the map for docs/developer.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "payapp"

# Longest matching prefix wins; a new module fails test_every_module_has_a_layer until placed.
LAYERS: dict[str, int] = {
    # 0 foundation: data model, values, settings, unbound extensions, engine and sessions
    "payapp.models": 0,
    "payapp.states": 0,
    "payapp.paths": 0,
    "payapp.money": 0,
    "payapp.plaintext": 0,
    "payapp.qr": 0,
    "payapp.clinic": 0,
    "payapp.decline_reasons": 0,
    "payapp.config": 0,
    "payapp.extensions": 0,
    "payapp.ratelimit_store": 0,
    "payapp.logs": 0,
    "payapp.db": 0,
    "payapp.charts": 0,
    "payapp.lru": 0,
    # 1 card gateways: the interface, its implementations, Square's browser hosts and advice
    "payapp.gateways": 1,
    "payapp.sms": 1,  # the Twilio transport, beside the card gateways
    # 2 domain: plain values in, plain results or named errors out
    "payapp.audit": 2,
    "payapp.audit_export": 2,
    "payapp.csp_reports": 2,
    "payapp.alerts": 2,
    "payapp.accounts": 2,
    "payapp.login": 2,
    "payapp.passwords": 2,
    "payapp.deployment": 2,
    "payapp.integrity": 2,
    "payapp.link_requests": 2,
    "payapp.links": 2,
    "payapp.lookup": 2,
    "payapp.metrics": 2,
    "payapp.mfa": 2,
    "payapp.notify": 2,
    "payapp.exports": 2,
    "payapp.payments": 2,
    "payapp.problems": 2,
    "payapp.ratelimits": 2,
    "payapp.refunds": 2,
    "payapp.reminders": 2,
    "payapp.webhook_events": 2,
    "payapp.texting": 2,
    # 3 web and command line: blueprints, request hooks, error pages, commands
    "payapp.views": 3,
    "payapp.views.alerts": 3,
    "payapp.security": 3,
    "payapp.assets": 3,
    "payapp.errors": 3,
    "payapp.htmx": 3,
    "payapp.i18n": 3,
    "payapp.cli": 3,
    "payapp.site_surface": 3,
    # 4 the app factory
    "payapp": 4,
}
LAYER_NAMES = ("foundation", "gateways", "domain", "web and CLI", "app factory")
DOMAIN = 2
# Flask names that only mean something during a request; below the web layer they hide a
# dependency on one (the session in db.py is the one request-scoped thing the lower layers share).
REQUEST_NAMES = {"request", "session", "g", "render_template", "flash", "redirect", "url_for"}
REQUEST_SCOPED_OK = {"payapp.db"}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


def _resolve(name: str, known: set[str]) -> str:
    """The known module ``name`` is or lives in (``payapp.links.LinkError`` -> payapp.links)."""
    while name not in known and "." in name:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str, path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(payapp modules it imports anywhere in the file, Flask names it imports)."""
    is_package = path.name == "__init__.py"
    found, flask_names = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {_resolve(a.name, known) for a in node.names if a.name.startswith("payapp")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "flask":
                flask_names |= {a.name for a in node.names}
            if not target.startswith("payapp"):
                continue
            for alias in node.names:  # `from . import links` imports the module links
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else _resolve(target, known))
    found.discard(module)
    return found, flask_names


def import_graph(package: Path = PACKAGE) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({module: payapp modules it imports}, {module: Flask names it imports})."""
    found = modules(package)
    known = set(found)
    graph, flask = {}, {}
    for name, path in found.items():
        graph[name], flask[name] = imports_of(name, path, known)
    return graph, flask


def layer_of(module: str, layers: dict[str, int] = LAYERS) -> int | None:
    parts = module.split(".")
    for end in range(len(parts), 1, -1):  # the package root matches only itself, below
        if ".".join(parts[:end]) in layers:
            return layers[".".join(parts[:end])]
    return layers.get(module)


def wrong_way_imports(graph: dict[str, set[str]], layers: dict[str, int] = LAYERS) -> set:
    """{(module, imported)} where the imported module sits in a higher layer."""
    return {
        (module, imported)
        for module, targets in graph.items()
        for imported in targets
        if (layer_of(module, layers) or 0) < (layer_of(imported, layers) or 0)
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other, directly or around a circle (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def layer_map_markdown(graph: dict[str, set[str]] | None = None) -> str:
    """The layers and their modules, for docs/developer.md."""
    graph = graph if graph is not None else import_graph()[0]
    lines = ["| Layer | Modules (may import their own layer and the ones above in this table) |"]
    lines.append("|---|---|")
    for number, title in enumerate(LAYER_NAMES):
        names = sorted(
            m.removeprefix("payapp.") or "payapp (create_app)"
            for m in graph
            if layer_of(m) == number
        )
        lines.append(f"| {number} {title} | {', '.join(f'`{n}`' for n in names)} |")
    return "\n".join(lines)


# --- the checks ---------------------------------------------------------------------------------

GRAPH, FLASK_NAMES = import_graph()


def test_every_module_has_a_layer():
    assert [m for m in GRAPH if layer_of(m) is None] == []


def test_no_module_imports_a_higher_layer():
    wrong = wrong_way_imports(GRAPH)
    assert sorted(wrong) == [], "lower layer imports a higher one: " + ", ".join(
        f"{a} (layer {layer_of(a)}) -> {b} (layer {layer_of(b)})" for a, b in sorted(wrong)
    )


def test_payapp_modules_import_no_circle():
    assert import_cycles(GRAPH) == []


def test_layers_below_the_web_use_no_request_scoped_flask_names():
    offenders = {
        m: sorted(names & REQUEST_NAMES)
        for m, names in FLASK_NAMES.items()
        if layer_of(m) <= DOMAIN and names & REQUEST_NAMES
    }
    for allowed in REQUEST_SCOPED_OK:
        offenders.pop(allowed, None)
    assert offenders == {}


# --- the checker checks itself on a made-up package ---------------------------------------------


@pytest.fixture
def fake_package(tmp_path):
    root = tmp_path / "payapp"
    (root / "views").mkdir(parents=True)
    files = {
        "__init__.py": "def create_app():\n    from .views import staff\n",
        "models.py": "",
        "links.py": "from . import models\nfrom .models import X\n",
        "views/__init__.py": "",
        "views/staff.py": "from .. import links\nfrom flask import request\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_the_check_sees_relative_and_absolute_imports(fake_package):
    graph, flask = import_graph(fake_package)
    assert graph["payapp"] == {"payapp.views.staff"}
    assert graph["payapp.links"] == {"payapp.models"}
    assert graph["payapp.views.staff"] == {"payapp.links"}
    assert flask["payapp.views.staff"] == {"request"}
    assert wrong_way_imports(graph) == set()
    assert import_cycles(graph) == []


def test_the_check_catches_a_wrong_way_import_and_a_circle(fake_package):
    # A domain module reaching up into a view (as integrity.py once did) is caught ...
    (fake_package / "links.py").write_text("from .views.staff import page_context\n")
    graph, _ = import_graph(fake_package)
    assert wrong_way_imports(graph) == {("payapp.links", "payapp.views.staff")}
    assert import_cycles(graph) == [["payapp.links", "payapp.views.staff"]]
    # ... and so is a circle inside one layer, and a module that would need a layer.
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("payapp.brand_new") is None


if __name__ == "__main__":
    print(layer_map_markdown())
