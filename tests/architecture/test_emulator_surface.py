"""Tests use the emulator through its public surface only, so its insides can change without
breaking them: what ``reconciler.emulator`` exports (``EmulatorHandle`` and its settings,
``EmulatorConfig``, ``Faults``, ``ServiceModes``, ``InProcessEmulator``...) and the private
index's own module. A test that needs to observe or steer something asks the handle (request
listeners, counts, the account's settings and clock) rather than reaching past it.

Each test file (``tests/support`` included) is read with ``ast`` and refused if it
- imports an emulator module that is not public (one exception: the fault injector's own
  unit test, ``UNIT_TESTED``);
- reads an underscore attribute, or the registry, of an emulator object (``emu._server``,
  ``emu.backend()._scopes``, ``emu.registry``);
- assigns to an attribute of an emulator object, or patches one (``setattr``,
  ``monkeypatch.setattr``, ``mock.patch``) or anything under ``reconciler.emulator``.

An emulator object is a name bound to something the emulator's modules provide (imported,
annotated with one of its types, or made by one of its functions), or the fixture names
``emu`` and ``emulator``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from reconciler import emulator

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
EMULATOR = "reconciler.emulator"
PUBLIC_MODULES = frozenset({EMULATOR, f"{EMULATOR}.private_index"})
"""The package (its ``__all__``) and the private index (a second emulator, dev-only: its
dependencies are the ``dev`` extra's, so the package cannot export it)."""
UNIT_TESTED = {"tests/emulator/test_emulator_faults.py": f"{EMULATOR}.faults"}
"""The fault injector's seeded draws (the 5xx share, the latency range) and its token bucket
on a clock of the test's own are not observable through the handle without timing, so its
unit test draws from it directly."""
FIXTURE_NAMES = frozenset({"emu", "emulator"})
HELPERS = frozenset({"start_emulator"})
"""Functions of the test harness that return an emulator (``tests/support/emulator.py``)."""
PATCHERS = frozenset({"setattr", "patch", "object", "delattr"})


def _emulator_module(module: str | None) -> bool:
    return module is not None and (module == EMULATOR or module.startswith(EMULATOR + "."))


def _root(node: ast.expr) -> str | None:
    """The name ``a.b(c)[d].e`` starts from: ``a``, or ``b`` when ``a`` is ``self``."""
    first = None
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        if isinstance(node, ast.Attribute):
            first = node.attr
        node = node.func if isinstance(node, ast.Call) else node.value
    if not isinstance(node, ast.Name):
        return None
    return first if node.id in ("self", "cls") else node.id


def _chain(node: ast.expr) -> Iterator[str]:
    """The attribute names along ``a.b(c)[d].e``, outermost first."""
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        if isinstance(node, ast.Attribute):
            yield node.attr
        node = node.func if isinstance(node, ast.Call) else node.value


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class _Reader(ast.NodeVisitor):
    def __init__(self, relative: str) -> None:
        self.relative = relative
        self.findings: list[str] = []
        self.provided: set[str] = set(HELPERS)
        """Names the emulator's modules provide (types, functions, modules)."""
        self.objects: set[str] = set(FIXTURE_NAMES)
        """Names bound to emulator objects."""

    def _refuse(self, node: ast.AST, what: str) -> None:
        self.findings.append(f"{self.relative}:{getattr(node, 'lineno', 0)}: {what}")

    def _public(self, module: str | None) -> bool:
        return module in PUBLIC_MODULES or UNIT_TESTED.get(self.relative) == module

    def _is_object(self, node: ast.expr) -> bool:
        root = _root(node)
        return root is not None and (root in self.objects or root in self.provided)

    def _mentions_provided(self, node: ast.expr | None) -> bool:
        """Whether an annotation names one of the emulator's types (``EmulatorHandle | None``)."""
        if node is None:
            return False
        if isinstance(node, ast.Constant) and isinstance(node.value, str):  # "EmulatorHandle"
            node = ast.parse(node.value, mode="eval").body
        return any(isinstance(n, ast.Name) and n.id in self.provided for n in ast.walk(node))

    # -- what is bound to the emulator -------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if _emulator_module(alias.name):
                if not self._public(alias.name):
                    self._refuse(node, f"imports {alias.name}, not the emulator's public surface")
                self.provided.add((alias.asname or alias.name).split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if _emulator_module(node.module):
            if not self._public(node.module):
                self._refuse(node, f"imports from {node.module}, not the emulator's public surface")
            elif node.module == EMULATOR:  # from reconciler.emulator import server: a module
                for alias in node.names:
                    if alias.name not in emulator.__all__:
                        self._refuse(node, f"imports {alias.name}, not in {EMULATOR}.__all__")
            self.provided.update(alias.asname or alias.name for alias in node.names)
        elif node.module == "reconciler":  # from reconciler import emulator
            self.provided.update(
                alias.asname or alias.name for alias in node.names if alias.name == "emulator"
            )

    def _bind(self, target: ast.expr, value: ast.expr | None, annotation: ast.expr | None) -> None:
        elements = target.elts if isinstance(target, ast.Tuple | ast.List) else [target]
        names = [n.id for n in elements if isinstance(n, ast.Name)]
        names += [  # self.emu = emu: an attribute of this object is an emulator object
            n.attr
            for n in elements
            if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name)
            and n.value.id in ("self", "cls")
        ]
        if self._mentions_provided(annotation) or (value is not None and self._is_object(value)):
            self.objects.update(names)

    def visit_arg(self, node: ast.arg) -> None:
        if self._mentions_provided(node.annotation):
            self.objects.add(node.arg)

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            if item.optional_vars is not None:
                self._bind(item.optional_vars, item.context_expr, None)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._bind(node.target, node.value, node.annotation)
        self.generic_visit(node)

    # -- what reaches past it ----------------------------------------------------------

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if isinstance(target, ast.Attribute) and self._is_object(target.value):
                self._refuse(node, f"assigns to {ast.unparse(target)}, an emulator attribute")
            self._bind(target, node.value, None)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if (_private(node.attr) or node.attr == "registry") and self._is_object(node.value):
            self._refuse(node, f"reads {ast.unparse(node)}, inside the emulator")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.attr if isinstance(node.func, ast.Attribute) else None
        if isinstance(node.func, ast.Name):
            name = node.func.id
        if name == "getattr" and len(node.args) >= 2 and self._is_object(node.args[0]):
            attr = node.args[1]
            if not isinstance(attr, ast.Constant) or _private(str(attr.value)):
                self._refuse(node, f"reads {ast.unparse(node)}, inside the emulator")
        if name in PATCHERS and node.args:
            target = node.args[0]
            named = isinstance(target, ast.Constant) and str(target.value).startswith(EMULATOR)
            if named or (not isinstance(target, ast.Constant) and self._is_object(target)):
                self._refuse(node, f"patches {ast.unparse(target)}, part of the emulator")
        self.generic_visit(node)


def reaches_into_the_emulator(path: Path, root: Path = ROOT) -> list[str]:
    """What ``path`` (a test file) uses of the emulator beyond its public surface."""
    reader = _Reader(path.relative_to(root).as_posix())
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    # bindings first (a fixture's parameter may be used above its own definition)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            reader.visit(node)
    reader.findings.clear()
    reader.visit(tree)
    return reader.findings


def test_no_test_reaches_into_the_emulator() -> None:
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 100, "the scan must see the test tree"
    findings = [f for path in files for f in reaches_into_the_emulator(path)]
    assert findings == []


SAMPLES = {
    "emu._server.open_connections()": "reads emu._server",
    "emu.registry.account.clock = clock": "emu.registry",
    "emu.backend('ws')._scopes.clear()": "reads emu.backend('ws')._scopes",
    "emu.config = EmulatorConfig()": "assigns to emu.config",
    "monkeypatch.setattr(Workspace, 'record', record)": "patches Workspace",
    "monkeypatch.setattr('reconciler.emulator.account.Account.issue', issue)": "patches",
    "setattr(handle, 'port', 1)": "patches handle",
    "backend = emu.backend('ws'); backend.put_secret = put": "assigns to backend.put_secret",
    "self.emu = emu; setattr(self.emu.backend('ws'), 'put_secret', put)": "patches self.emu",
    "from reconciler.emulator import server": "imports server, not in reconciler.emulator.__all__",
    "getattr(emu, '_server')": "reads getattr(emu, '_server')",
    "getattr(emu, name)": "reads getattr(emu, name)",
}


def test_the_scan_refuses_each_way_of_reaching_in(tmp_path: Path) -> None:
    folder = tmp_path / "tests" / "cli"
    folder.mkdir(parents=True)
    header = (
        "from reconciler.emulator import EmulatorConfig, EmulatorHandle, running_emulator\n"
        "from reconciler.emulator.workspaces import Workspace\n"
        "def test(emu, monkeypatch, clock, record, issue, put, self) -> None:\n"
        "    with running_emulator() as handle:\n"
        "        pass\n"
    )
    (folder / "test_imports.py").write_text(header)
    assert reaches_into_the_emulator(folder / "test_imports.py", tmp_path) == [
        "tests/cli/test_imports.py:2: imports from reconciler.emulator.workspaces, "
        "not the emulator's public surface"
    ]
    for i, (line, expected) in enumerate(SAMPLES.items()):
        path = folder / f"test_{i}.py"
        path.write_text(header + f"    {line}\n")
        found = reaches_into_the_emulator(path, tmp_path)
        assert any(f"test_{i}.py:6: " in f and expected in f for f in found), (line, found)
    # an emulator object however it is named: annotated, or made by the emulator
    typed = folder / "test_typed.py"
    typed.write_text(
        "from reconciler.emulator import EmulatorHandle, InProcessEmulator\n"
        "def test(service: EmulatorHandle) -> None:\n"
        "    service._listeners.clear()\n"
        "    made = InProcessEmulator()\n"
        "    made._registry.get('ws')\n"
    )
    assert [f.split(": ")[0] for f in reaches_into_the_emulator(typed, tmp_path)] == [
        "tests/cli/test_typed.py:3",
        "tests/cli/test_typed.py:5",
    ]


def test_the_public_surface_and_the_tests_own_helpers_pass(tmp_path: Path) -> None:
    folder = tmp_path / "tests" / "support"
    folder.mkdir(parents=True)
    path = folder / "helpers.py"
    path.write_text(
        "import os\n"
        "from reconciler.emulator import ADMIN_TOKEN, EmulatorHandle, Faults\n"
        "from reconciler.emulator.private_index import running_index\n"
        "class Port:\n"
        "    def __init__(self, emu: EmulatorHandle) -> None:\n"
        "        self._emu = emu\n"
        "        self._seen = []\n"
        "        emu.add_request_listener(self._seen.append)\n"
        "        emu.set_faults('ws', Faults(error_rate=1.0))\n"
        "        emu.backend('ws').create_scope(emu.admin, 'scope')\n"
        "def test(emu, monkeypatch, tmp_path) -> None:\n"
        "    monkeypatch.setattr(os, 'environ', {})\n"
        "    monkeypatch.setenv('DATABRICKS_TOKEN', ADMIN_TOKEN)\n"
        "    emu.reset_counts()\n"
        "    with running_index(tmp_path) as index:\n"
        "        assert index.url\n"
    )
    assert reaches_into_the_emulator(path, tmp_path) == []
    own = tmp_path / "tests" / "emulator"
    own.mkdir(parents=True)
    unit = "from reconciler.emulator.faults import FaultInjector\n"
    (own / "test_emulator_faults.py").write_text(unit)
    assert reaches_into_the_emulator(own / "test_emulator_faults.py", tmp_path) == []
    (own / "test_emulator_other.py").write_text(unit)  # the exception is that file's only
    assert reaches_into_the_emulator(own / "test_emulator_other.py", tmp_path) != []
