"""Train: recipes, datasets, the runner and its results."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project root: upstream/, patches/, runs/, ...
