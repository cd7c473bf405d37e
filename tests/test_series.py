"""The series' promises on the real patches: each variant runs, and with its flags at their defaults
each patch trains exactly like the variant before it (off means off)."""

import functools
import json
from pathlib import Path

import pytest

import apply
from conftest import TINY_MODEL_FLAGS
from runs import load_module

ROOT = Path(__file__).resolve().parent.parent
PROJECT = apply.Project(ROOT)
ENTRIES = PROJECT.entries()


def train_losses(tree, folder, input_file):
    """Write a variant's files into folder, train it 200 steps at its defaults, return its losses.
    It trains in this process, loaded as its folder's script (runs.load_module), as the probes
    load a variant: a process of its own would spend seconds importing torch for a second's steps."""
    for path, data in tree.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    makemore = load_module(folder / "makemore.py")
    assert makemore.main(["-i", str(input_file), "-o", str(folder / "out"), *TINY_MODEL_FLAGS,
                          "--max-steps", "200", "--eval-interval", "50"]) == 0
    records = [json.loads(line) for line in (folder / "out" / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["train_loss"], r["test_loss"]) for r in records]


@pytest.fixture(scope="module")
def losses(names_file, tmp_path_factory):
    """losses(k): the losses of the spine (k = 0) or of the variant of patch k, each trained once,
    though it is the variant after one patch and the variant before the next."""
    trees = [PROJECT.spine()] + [variant.tree for variant in PROJECT.build()]
    root = tmp_path_factory.mktemp("series")
    return functools.cache(lambda k: train_losses(trees[k], root / str(k), names_file))


@pytest.mark.parametrize("k", range(len(ENTRIES)), ids=ENTRIES)
def test_a_patch_at_its_defaults_trains_exactly_like_the_variant_before(k, losses):
    before, after = losses(k), losses(k + 1)
    assert [step for step, *_ in after] == [0, 50, 100, 150, 200]
    assert after == before
