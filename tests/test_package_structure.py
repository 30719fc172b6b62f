"""The package's shape: no import cycle between its modules (imports inside functions included), and
no function longer than a newcomer reads in one go without a reason written next to it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "course_utils"
LONGEST_FUNCTION = 60  # lines of code, the docstring not counted
LONG_REASON = "# long:"  # a comment that starts the body of a longer function and says why it is long


def package_imports(source: str, module: str) -> set[str]:
    """The course_utils modules that ``module``'s source imports anywhere, at the top or in a function."""
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "course_utils":
                imported.update(alias.name for alias in node.names)
            elif node.module.startswith("course_utils."):
                imported.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[1] for alias in node.names
                            if alias.name.startswith("course_utils."))
    return imported - {module}


def import_graph() -> dict[str, set[str]]:
    modules = {path.stem: path.read_text() for path in PACKAGE.glob("*.py") if path.stem != "__main__"}
    return {name: package_imports(source, name) & set(modules) for name, source in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    done = set()  # modules from which no cycle can be reached

    def visit(module, path):
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            cycle = visit(imported, path + [module])
            if cycle:
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module, [])
        if cycle:
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function():
    one = "from course_utils.two import thing\n"
    two = "def late():\n    from course_utils import one\n"
    graph = {"one": package_imports(one, "one"), "two": package_imports(two, "two"), "three": set()}
    assert find_cycle(graph) is not None
    assert find_cycle({"one": {"two"}, "two": set(), "three": {"one"}}) is None


def test_no_module_of_the_package_imports_another_in_a_cycle():
    graph = import_graph()
    assert {"training", "history", "checkpoint", "experiments", "modes"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def module_map() -> dict[str, set[str]]:
    """CONTRIBUTING.md's table of modules: {module: the package modules it says the module imports}."""
    import re

    text = (PACKAGE.parent / "CONTRIBUTING.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|$", text, re.M)
    return {module: set(re.findall(r"`(\w+)`", imports)) for module, imports in rows}


def test_contributings_module_map_names_every_module_and_what_it_imports():
    declared, actual = module_map(), import_graph()
    actual = {module: imports for module, imports in actual.items() if module != "__init__"}
    assert set(declared) == set(actual), f"modules missing from or stale in the map: {set(declared) ^ set(actual)}"
    wrong = {module: {"map": sorted(declared[module]), "code": sorted(actual[module])}
             for module in actual if declared[module] != actual[module]}
    assert wrong == {}, f"CONTRIBUTING.md's module map differs from the imports: {wrong}"
    order = list(declared)  # each module imports only modules above it in the table
    assert all(order.index(imported) < order.index(module) for module in order for imported in declared[module])


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines of code) of every function over LONGEST_FUNCTION lines without a written reason."""
    found = []
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        if isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str) and len(body) > 1:
            body = body[1:]  # the docstring does not count
        first, last = body[0].lineno, node.end_lineno
        code = [line for line in lines[first - 1:last] if line.strip() and not line.strip().startswith("#")]
        reason = any(line.strip().startswith(LONG_REASON) for line in lines[node.lineno - 1:first])
        if len(code) > LONGEST_FUNCTION and not reason:
            found.append((node.name, len(code)))
    return found


def test_the_length_check_counts_code_not_docstrings():
    short = "def f():\n    '''" + "doc\n" * 100 + "'''\n    return 1\n"
    long = "def g():\n" + "    x = 1\n" * (LONGEST_FUNCTION + 1)
    assert long_functions(short) == [] and long_functions(long) == [("g", LONGEST_FUNCTION + 1)]


def test_no_function_in_the_package_is_over_60_lines_without_a_reason():
    too_long = {f"{path.stem}.{name}": count for path in sorted(PACKAGE.glob("*.py"))
                for name, count in long_functions(path.read_text())}
    assert too_long == {}, f"functions over {LONGEST_FUNCTION} lines of code: {too_long}"


def named_references(source: str) -> list[str]:
    """Every ``module.name`` (optionally ``course_utils.module.name``) in the docstrings and comments of
    ``source`` whose first part is a module of the package, as written."""
    import re

    modules = {path.stem for path in PACKAGE.glob("*.py")}
    tree = ast.parse(source)
    texts = [ast.get_docstring(node) for node in ast.walk(tree)
             if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    texts = [text for text in texts if text] + re.findall(r"#.*", source)
    found = []
    for text in texts:
        for match in re.finditer(r"``(?:course_utils\.)?([a-z_]+)\.([A-Za-z_]\w*)", text):
            if match.group(1) in modules:
                found.append(f"{match.group(1)}.{match.group(2)}")
        for match in re.finditer(r"(?<![\w.])course_utils\.([a-z_]+)", text):
            found.append(match.group(1))  # a module named in prose: "the experiment fast of course_utils.experiments"
    return found


def test_the_reference_finder_finds_a_named_function_and_a_module():
    source = '"""See ``training.fit`` and course_utils.devices."""\n# ``history.History`` too\n'
    assert named_references(source) == ["training.fit", "devices", "history.History"]


def test_every_module_and_name_a_docstring_or_comment_names_exists_where_it_says():
    """A name moved to another module leaves stale references behind (``training.plain_data`` after it
    moved to history): each must resolve, in the module it names, not merely be importable from it."""
    import importlib

    stale = []
    for path in sorted([*PACKAGE.glob("*.py"), *(PACKAGE.parent / "benchmarks").glob("*.py")]):
        for reference in named_references(path.read_text()):
            module_name, _, name = reference.partition(".")
            try:
                module = importlib.import_module(f"course_utils.{module_name}")
            except ModuleNotFoundError:
                stale.append(f"{path.name}: course_utils.{module_name} (no such module)")
                continue
            if not name:
                continue
            target = getattr(module, name, None)
            home = getattr(target, "__module__", module.__name__)  # constants have no home of their own
            if target is None or home != module.__name__:
                stale.append(f"{path.name}: {reference}" + (f" (it lives in {home})" if target is not None else ""))
    assert not stale, "references to names that are not (or no longer) there:\n" + "\n".join(stale)
