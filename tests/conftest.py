"""Shared by the training tests: a tiny names dataset, and the flags of a tiny model."""

import pytest

from runs.datasets import census_first_names, write_items

# A model small enough that a few hundred steps take about a second on one core.
TINY_MODEL_FLAGS = ["--n-layer", "2", "--n-head", "2", "--n-embd", "16", "--n-embd2", "16", "--batch-size", "16",
                    "--sample-interval", "0", "--eval-batches", "1"]


@pytest.fixture(scope="session")
def names_file(tmp_path_factory):
    """400 real first names, one per line."""
    return write_items(census_first_names()[:400], tmp_path_factory.mktemp("data") / "names.txt")
