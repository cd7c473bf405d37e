"""Train: recipes, datasets, the runner and its results."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project root: upstream/, patches/, runs/, ...


def load_module(path):
    """A variant file as a module; named after its path, since the spine and its variants all
    call themselves makemore."""
    spec = importlib.util.spec_from_file_location(f"variant_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
