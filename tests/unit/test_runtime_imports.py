"""The code the Docker image ships (dags/, plugins/, spark_jobs/) imports only runtime dependencies.

Development tooling (``devenv``) and test packages are not in the image; every third-party module the
runtime imports is a declared runtime dependency, not one that only arrives through another package.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_DIRS = ("dags", "plugins", "spark_jobs")
FORBIDDEN = {"devenv", "tests", "aiosmtpd", "pytest", "moto", "playwright", "mkdocs"}
LOCAL = {"movielens", "spark_jobs"}


def runtime_imports() -> dict[str, set[str]]:
    """Top-level module -> the runtime files importing it (absolute imports, at any depth)."""
    found: dict[str, set[str]] = {}
    for folder in RUNTIME_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_runtime_code_imports_no_dev_tooling_or_test_package():
    imports = runtime_imports()
    assert "airflow" in imports and "movielens" in imports  # the walk sees the code
    bad = {name: sorted(files) for name, files in imports.items() if name in FORBIDDEN}
    assert not bad, f"runtime code imports development or test packages: {bad}"


def test_every_third_party_import_is_a_declared_runtime_dependency():
    declared = {
        canonicalize_name(Requirement(r).name)
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    providers = packages_distributions()
    undeclared = {}
    for name, files in runtime_imports().items():
        if name in LOCAL or name in sys.stdlib_module_names:
            continue
        distributions = {canonicalize_name(d) for d in providers.get(name, [])}
        assert distributions, f"{name} (imported by {sorted(files)}) is not installed"
        if not distributions & declared:
            undeclared[name] = sorted(distributions)
    assert not undeclared, f"imported by runtime code but only transitive (add to pyproject.toml): {undeclared}"
