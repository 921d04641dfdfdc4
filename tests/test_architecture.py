"""The layout is the architecture: mxlab's subpackages import only the ones their __init__ allows (MAY_IMPORT: no
back arrows), and no module imports itself round a circle, function-level imports included. Read from the
source with ast, so a lazy import counts as much as a top-level one."""
import ast

import pytest

from mxlab.offline import REPO_ROOT

# mxlab/*.py besides cli/__main__: the basics every layer may use; they import no subpackage.
ENTRY_POINTS = {"mxlab.cli", "mxlab.__main__"}


def modules(package):
    """{dotted module name: path} of a package in the checkout."""
    found = {}
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        found[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return found


def imports_of(path, known):
    """The modules of `known` that the file imports, anywhere in it."""
    package = next(iter(known)).split(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == package:
            for alias in node.names:
                child = node.module + "." + alias.name
                found.add(child if child in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
    return found


def graph(package):
    known = modules(package)
    return {name: sorted(d for d in imports_of(path, known) if d in known and d != name)
            for name, path in known.items()}


def subpackage(name):
    """'lab' for mxlab.lab.deploy; None for a module of mxlab itself."""
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (REPO_ROOT / "mxlab" / parts[1]).is_dir()) else None


def may_import(package_dir):
    tree = ast.parse((package_dir / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["MAY_IMPORT"]:
            return set(ast.literal_eval(node.value))
    raise AssertionError("%s/__init__.py does not say what it may import (MAY_IMPORT)" % package_dir.name)


def back_arrows(edges, allowed):
    """'a -> b' for every import that crosses into a subpackage its own does not allow."""
    wrong = []
    for source, targets in edges.items():
        if source in ENTRY_POINTS:
            continue
        mine = subpackage(source)
        for target in targets:
            theirs = subpackage(target)
            if target in ENTRY_POINTS:
                wrong.append("%s -> %s (the CLI is the top)" % (source, target))
            elif theirs is None or theirs == mine:
                continue
            elif mine is None:
                wrong.append("%s -> %s (mxlab's own modules are the base: they import no subpackage)"
                             % (source, target))
            elif theirs not in allowed[mine]:
                wrong.append("%s -> %s (%s may import %s)" % (source, target, mine, sorted(allowed[mine]) or
                                                             "no other subpackage"))
    return wrong


def circles(edges):
    """The module sets that import each other round a circle (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def allowed_imports():
    return {d.name: may_import(d) for d in sorted((REPO_ROOT / "mxlab").iterdir())
            if (d / "__init__.py").is_file()}


def test_every_subpackage_says_what_it_owns_and_may_import_and_names_only_real_ones():
    allowed = allowed_imports()
    assert set(allowed) >= {"lab", "hosts", "remote", "results", "runs", "workshop", "offline"}
    for name, targets in allowed.items():
        assert ast.get_docstring(ast.parse((REPO_ROOT / "mxlab" / name / "__init__.py").read_text())), name
        assert targets <= set(allowed) - {name}, (name, targets)


def test_mxlabs_imports_have_no_back_arrow():
    assert back_arrows(graph("mxlab"), allowed_imports()) == []


@pytest.mark.parametrize("package", ["mxlab", "cdk", "localzoo", "agent", "bench"])
def test_no_module_imports_itself_round_a_circle(package):
    assert circles(graph(package)) == []


def test_the_checks_catch_a_back_arrow_and_a_circle():
    """On a made-up graph: the checks above are not vacuous."""
    edges = {"mxlab.lab.targets": ["mxlab.hosts.session"], "mxlab.hosts.session": ["mxlab.lab.targets"],
             "mxlab.errors": ["mxlab.runs.fleet"], "mxlab.runs.fleet": ["mxlab.cli"]}
    allowed = {"lab": set(), "hosts": {"lab"}, "runs": {"lab", "hosts"}}
    assert back_arrows(edges, allowed) == [
        "mxlab.lab.targets -> mxlab.hosts.session (lab may import no other subpackage)",
        "mxlab.errors -> mxlab.runs.fleet (mxlab's own modules are the base: they import no subpackage)",
        "mxlab.runs.fleet -> mxlab.cli (the CLI is the top)"]
    assert circles(edges) == [["mxlab.hosts.session", "mxlab.lab.targets"]]
