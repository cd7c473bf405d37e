"""Train: recipes, datasets, the runner and its results."""

import hashlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project root: upstream/, patches/, runs/, ...


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def folder_problem(path, flag):
    """Why a folder cannot be made at path (a file stands there, or where one of its parents
    would be), as one line naming the flag; None when it can."""
    path = Path(path)
    for place in (path, *path.parents):
        if place.exists():
            return None if place.is_dir() else f"{flag} {path}: {place} is a file, not a folder"
    return None


def load_module(path):
    """A variant file as a module; named after its path, since the spine and its variants all
    call themselves makemore."""
    spec = importlib.util.spec_from_file_location(f"variant_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(Path(path).parent))  # its own modules beside it, as when it runs as a script
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(Path(path).parent))
    return module
