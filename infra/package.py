"""Build the artifacts the CloudFormation template points at.

`layer.zip` is the Lambda layer: the `dotmac` package and its runtime dependencies under
`python/`. `<app>.zip` is one per folder of `functions/`: its `app.py` (and `chalicelib/`, if
any) at the zip root. Zips are deterministic: sorted entries, fixed timestamps and modes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from infra.bootstrap import LAMBDA_RUNTIME
from infra.resources import FUNCTIONS_DIR, REPO_ROOT

LAYER_SOURCE = REPO_ROOT / "layers" / "dotmac" / "python"
PYPROJECT = REPO_ROOT / "pyproject.toml"
LOCKFILE = REPO_ROOT / "uv.lock"
LAYER_ZIP = "layer.zip"
LAMBDA_ARCHITECTURE = "x86_64"
LAYER_ROOT = "python"
APP_CONTENT = ("app.py", "chalicelib")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
SKIPPED_DIRS = frozenset({"__pycache__"})
SKIPPED_SUFFIXES = frozenset({".pyc", ".pyo"})


class PackageError(RuntimeError):
    """The artifacts cannot be built as asked."""


def app_zip_name(app: str) -> str:
    """The artifact name of `functions/<app>/`."""
    return f"{app}.zip"


def runtime_dependencies(pyproject: Path = PYPROJECT) -> list[str]:
    """The `[project].dependencies` requirement strings: what the layer ships."""
    with pyproject.open("rb") as file:
        return list(tomllib.load(file)["project"]["dependencies"])


def locked_versions(lockfile: Path = LOCKFILE) -> list[str]:
    """`name==version` for every registry package `uv.lock` pins to a single version."""
    with lockfile.open("rb") as file:
        packages = [p for p in tomllib.load(file)["package"] if "registry" in p["source"]]
    versions: dict[str, set[str]] = {}
    for package in packages:
        versions.setdefault(package["name"], set()).add(package["version"])
    return [f"{n}=={v}" for n, (v, *others) in sorted(versions.items()) if not others]


def install_dependencies(requirements: list[str], target: Path) -> None:
    """`pip install --target` the requirements as Lambda wheels, constrained to `uv.lock`."""
    with tempfile.TemporaryDirectory(prefix="dotmac-constraints-") as scratch:
        constraints = Path(scratch) / "constraints.txt"
        constraints.write_text("\n".join(locked_versions()) + "\n")
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "--target",
            str(target),
            "--constraint",
            str(constraints),
            "--platform",
            f"manylinux2014_{LAMBDA_ARCHITECTURE}",
            "--implementation",
            "cp",
            "--python-version",
            LAMBDA_RUNTIME.removeprefix("python"),
            "--only-binary=:all:",
            *requirements,
        ]
        subprocess.run(command, check=True)  # noqa: S603 - fixed argv, no shell


def _files(root: Path) -> Iterator[Path]:
    """Every file under `root` except bytecode caches, in sorted order."""
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if (
            path.is_file()
            and not SKIPPED_DIRS.intersection(relative.parts)
            and path.suffix not in SKIPPED_SUFFIXES
        ):
            yield path


def _tree(root: Path, prefix: str) -> dict[str, Path]:
    """Archive names (`prefix/<relative path>`) for every file under `root`."""
    return {"/".join(filter(None, (prefix, *p.relative_to(root).parts))): p for p in _files(root)}


def _merge(*trees: Mapping[str, Path]) -> dict[str, Path]:
    """Union of archive trees; two sources for one archive name is an error."""
    merged: dict[str, Path] = {}
    for tree in trees:
        for name, source in tree.items():
            if name in merged:
                raise PackageError(f"{name} comes from both {merged[name]} and {source}")
            merged[name] = source
    return merged


def write_zip(path: Path, entries: Mapping[str, Path]) -> Path:
    """Write `entries` (archive name -> file) with fixed timestamps and modes, sorted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            source = entries[name]
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if os.access(source, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, source.read_bytes(), compresslevel=9)
    return path


def build_layer(out_dir: Path, *, install_deps: bool = True) -> Path:
    """`layer.zip`: the `dotmac` package, plus the runtime dependencies unless told not to."""
    with tempfile.TemporaryDirectory(prefix="dotmac-layer-") as scratch:
        dependencies = Path(scratch)
        if install_deps:
            install_dependencies(runtime_dependencies(), dependencies)
        entries = _merge(_tree(LAYER_SOURCE, LAYER_ROOT), _tree(dependencies, LAYER_ROOT))
        return write_zip(out_dir / LAYER_ZIP, entries)


def build_app(app_dir: Path, out_dir: Path) -> Path:
    """`<app>.zip`: what Chalice bundles for an app, `app.py` (and `chalicelib/`) at the root."""
    entries = _merge(
        *(
            {name: app_dir / name} if (app_dir / name).is_file() else _tree(app_dir / name, name)
            for name in APP_CONTENT
            if (app_dir / name).exists()
        )
    )
    if "app.py" not in entries:
        raise PackageError(f"{app_dir} has no app.py")
    return write_zip(out_dir / app_zip_name(app_dir.name), entries)


def app_dirs(functions_dir: Path = FUNCTIONS_DIR) -> list[Path]:
    """The app folders of `functions/`, sorted by name."""
    return sorted(p for p in functions_dir.iterdir() if p.is_dir() and p.name not in SKIPPED_DIRS)


def build(out_dir: Path, *, install_deps: bool = True) -> list[Path]:
    """Build `layer.zip` and every `<app>.zip` into `out_dir`; returns their paths."""
    return [build_layer(out_dir, install_deps=install_deps)] + [
        build_app(app_dir, out_dir) for app_dir in app_dirs()
    ]
