"""Runtime and development dependencies: pyproject.toml declares them, two locks pin them, the image has runtime only.

``requirements.lock`` (runtime, what the Docker image installs) and ``requirements-dev.lock`` (runtime + the
``dev`` group, what ``make install`` installs) must agree on every runtime version, so the tests run the
versions that production runs.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
DEV_ONLY = {"pytest", "pytest-xdist", "moto", "playwright", "aiosmtpd", "mkdocs", "schemathesis"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s*;\s*(.+))?$")


def pins(lock: Path) -> dict[str, set[tuple[str, str]]]:
    """Package name -> its (version, marker) entries (a universal lock may pin a name once per marker)."""
    found: dict[str, set[tuple[str, str]]] = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            name, version, marker = match.groups()
            found.setdefault(canonicalize_name(name), set()).add((version, marker or ""))
        else:
            assert not line or line.startswith(("#", " ")), f"{lock.name}: unexpected line {line!r}"
    return found


def declared(requirements: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, requirements)}


def test_runtime_versions_are_identical_in_both_locks():
    runtime, dev = pins(RUNTIME_LOCK), pins(DEV_LOCK)
    assert len(runtime) > 200
    moved = {name: (entries, dev.get(name)) for name, entries in runtime.items() if dev.get(name) != entries}
    assert not moved, f"runtime packages pinned differently (requirements.lock, requirements-dev.lock): {moved}"


def test_dev_packages_are_only_in_the_dev_lock():
    runtime, dev = pins(RUNTIME_LOCK), pins(DEV_LOCK)
    assert DEV_ONLY <= set(dev)
    assert not DEV_ONLY & set(runtime)
    group = declared(PYPROJECT["dependency-groups"]["dev"])
    assert set(group) == DEV_ONLY
    assert not set(group) & set(declared(PYPROJECT["project"]["dependencies"]))


def test_every_declared_dependency_is_locked_at_its_pin():
    """Both locks are made from pyproject.toml as it is (``make lock`` after each change there)."""
    for lock, requirements in (
        (RUNTIME_LOCK, PYPROJECT["project"]["dependencies"]),
        (DEV_LOCK, PYPROJECT["project"]["dependencies"] + PYPROJECT["dependency-groups"]["dev"]),
    ):
        locked = pins(lock)
        for name, requirement in declared(requirements).items():
            assert name in locked, f"{name} is declared but not in {lock.name}"
            for version, _ in locked[name]:
                assert requirement.specifier.contains(version, prereleases=True), (lock.name, name, version)
    runtime = pins(RUNTIME_LOCK)
    # They share site-packages/pyspark: one version for both (stack notes).
    assert runtime["pyspark"] == runtime["pyspark-client"]
    assert all(int(version.split(".")[0]) < 3 for version, _ in runtime["pandas"])


def test_the_locks_are_compiled_from_pyproject():
    runtime_header, dev_header = (lock.read_text().splitlines()[1] for lock in (RUNTIME_LOCK, DEV_LOCK))
    assert "uv pip compile pyproject.toml" in runtime_header and "--group" not in runtime_header
    assert "uv pip compile pyproject.toml --group dev -c requirements.lock" in dev_header
    assert not (ROOT / "requirements.in").exists()


def dockerfile_commands() -> list[list[str]]:
    """Each shell command of the Dockerfile's RUN instructions (continuations joined, split at ``&&``)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        if line.startswith("RUN "):
            commands += [shlex.split(part) for part in line[4:].split("&&")]
    return commands


def install_arguments(command: list[str]) -> tuple[list[str], list[str]] | None:
    """(requirement files, packages) of a ``pip install`` / ``uv pip install`` command, else None."""
    words = command[1:] if command[:1] == ["uv"] else command
    if words[:2] != ["pip", "install"]:
        return None
    files, packages, options = [], [], iter(words[2:])
    for word in options:
        if word in ("-r", "--requirement"):
            files.append(next(options))
        elif word == "--python":
            next(options)
        elif not word.startswith("-"):
            packages.append(word)
    return files, packages


def test_the_docker_image_installs_the_runtime_lock_only():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = re.search(r"^COPY\s+(?:--\S+\s+)*requirements\.lock\s+(\S+)$", dockerfile, re.M)
    assert copied, "the Dockerfile copies requirements.lock"
    installs = [args for args in map(install_arguments, dockerfile_commands()) if args]
    files = [f for f, _ in installs for f in f]
    packages = [p for _, p in installs for p in p]
    assert files == [copied.group(1)]
    uv_version = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert packages == [f"uv=={uv_version}"], "nothing but the installer besides the lock"
    assert "requirements-dev.lock" not in dockerfile and "--group" not in dockerfile
    assert "devenv" not in dockerfile, "the development tooling stays out of the image"
    for name in DEV_ONLY:
        assert not re.search(rf"\b{name}\b", dockerfile, re.I), name


def test_make_install_syncs_the_dev_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(STAMP\): requirements-dev\.lock$", makefile, re.M)
    assert re.search(r"uv pip sync .*requirements-dev\.lock$", makefile, re.M)
