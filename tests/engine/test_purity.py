"""The engine is pure Python: nothing under ``negotiation/engine`` may use Django or Channels."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
ENGINE_DIR = ROOT / "negotiation" / "engine"
FORBIDDEN = frozenset({"django", "channels", "daphne", "channels_redis"})


def engine_files() -> list[Path]:
    files = sorted(ENGINE_DIR.rglob("*.py"))
    modules = [p for p in files if p.name != "__init__.py"]
    assert modules, f"negotiation/engine has no modules ({ENGINE_DIR})"
    return files


def called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return None


def forbidden_imports(source: str, label: str) -> list[str]:
    """Every import of a forbidden package in ``source``, as ``label:line: module``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=label)):
        if not isinstance(node, ast.stmt | ast.expr):
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and called_name(node) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        found += [
            f"{label}:{node.lineno}: {name}" for name in names if name.split(".")[0] in FORBIDDEN
        ]
    return found


def test_scanner_finds_every_kind_of_import() -> None:
    source = (
        "import os, django\n"
        "from channels.layers import get_channel_layer\n"
        "def f():\n"
        "    import importlib\n"
        "    return importlib.import_module('django.conf')\n"
        "from djangoish import x\n"
    )
    assert forbidden_imports(source, "x.py") == [
        "x.py:1: django",
        "x.py:2: channels.layers",
        "x.py:5: django.conf",
    ]


def test_engine_source_imports_no_django_or_channels() -> None:
    problems = [
        problem
        for path in engine_files()
        for problem in forbidden_imports(
            path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))
        )
    ]
    assert not problems, "the engine must stay pure Python:\n" + "\n".join(problems)


IMPORT_EVERY_MODULE = """
import json, pkgutil, sys, importlib
import negotiation.engine as engine
names = sorted(m.name for m in pkgutil.walk_packages(engine.__path__, "negotiation.engine."))
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {forbidden})
print(json.dumps({{"modules": names, "forbidden": loaded}}))
"""


def test_importing_every_engine_module_loads_no_django_or_channels() -> None:
    engine_files()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    code = IMPORT_EVERY_MODULE.format(forbidden=repr(set(FORBIDDEN)))
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["modules"], "negotiation.engine has no modules to import"
    assert report["forbidden"] == [], f"importing the engine loaded {report['forbidden']}"
