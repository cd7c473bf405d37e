"""The series' promises on the real patches: each variant runs, and with its flags at their defaults
each patch trains exactly like the variant before it (off means off)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import apply
from conftest import TINY_MODEL_FLAGS

ROOT = Path(__file__).resolve().parent.parent
PROJECT = apply.Project(ROOT)
ENTRIES = PROJECT.entries()


def train_losses(tree, folder, input_file):
    """Write a variant's files into folder, train it 200 steps at its defaults, return its losses."""
    for path, data in tree.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    subprocess.run([sys.executable, str(folder / "makemore.py"), "-i", str(input_file), "-o", str(folder / "out"),
                    *TINY_MODEL_FLAGS, "--max-steps", "200", "--eval-interval", "50"],
                   check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    records = [json.loads(line) for line in (folder / "out" / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["train_loss"], r["test_loss"]) for r in records]


@pytest.mark.parametrize("k", range(len(ENTRIES)), ids=ENTRIES)
def test_a_patch_at_its_defaults_trains_exactly_like_the_variant_before(k, names_file, tmp_path):
    trees = [PROJECT.spine()] + [variant.tree for variant in PROJECT.build()]
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    before = train_losses(trees[k], tmp_path / "before", names_file)
    after = train_losses(trees[k + 1], tmp_path / "after", names_file)
    assert [step for step, *_ in after] == [0, 50, 100, 150, 200]
    assert after == before
