"""No function over MAX_LINES lines in mxlab/, agent/, cdk/, localzoo/, bench/ (issue 18).

A function's length is its span from `def` to its last line; functions and classes nested in it
count toward it (a closure is part of its parent's job), methods of a module-level class each
count alone. A long function is split by concern into named functions, not waved through.
"""
import ast
import textwrap
from tests.paths import REPO

ROOTS = ("mxlab", "agent", "cdk", "localzoo", "bench")
MAX_LINES = 60

# (path, function): allowed over MAX_LINES, each for a stated reason. What is left here is what
# remains to split; the next session empties the second group.
ALLOWED = {
    # Argument tables: one add_argument per flag, read as a table; splitting them scatters the CLI.
    ("mxlab/cli.py", "build_parser"),
    ("agent/arguments.py", "build_parser"),
    # Still to split: these files were being rewritten by other work when the rest were split.
}


def long_functions(source, limit=MAX_LINES):
    """[(name, first line, lines)] of the outermost functions in `source` over `limit` lines."""
    found = []

    def walk(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = child.end_lineno - child.lineno + 1
                if lines > limit:
                    found.append((child.name, child.lineno, lines))
                # what is nested in it counts toward it: not walked on its own
            else:
                walk(child)
    walk(ast.parse(source))
    return found


def test_no_function_is_over_the_limit():
    over = []
    for root in ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            for name, line, lines in long_functions(path.read_text()):
                if (rel, name) not in ALLOWED:
                    over.append("%s:%d %s: %d lines" % (rel, line, name, lines))
    assert not over, ("functions over %d lines (split them by concern):\n" % MAX_LINES) + "\n".join(over)


def test_the_measure_counts_nested_functions_toward_their_parent():
    inner = "\n".join("        x%d = %d" % (n, n) for n in range(MAX_LINES))
    source = textwrap.dedent("""\
        def outer():
            def inner():
        %s
            return inner

        class C:
            def short(self):
                return 1
        """) % inner
    # outer spans MAX_LINES + 3 lines, most of them inner's: outer is the long one, inner not listed.
    assert long_functions(source) == [("outer", 1, MAX_LINES + 3)]
    assert long_functions("def f():\n" + "    pass\n" * (MAX_LINES - 1)) == []  # exactly MAX_LINES
