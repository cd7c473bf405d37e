"""Shared by the training tests: their torch threads, a tiny names dataset, the flags of a tiny
model, and one smoke run of the MoE speed benchmark."""

import os
import subprocess
import sys
from pathlib import Path

# One torch thread for the models trained in this process and in the processes it starts (as the
# runner gives each training of a recipe trained in parallel), and threads that sleep rather than
# spin when idle, for the trainings to which the runner gives every core. The tests' models are so
# small that a second thread only adds hand-offs, and on a busy two-core machine a spinning one
# made trainings two to four times slower. Set before anything imports torch; values set by hand
# are kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from runs.datasets import build, census_first_names, write_items  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# A model small enough that a few hundred steps take about a second on one core.
TINY_MODEL_FLAGS = ["--n-layer", "2", "--n-head", "2", "--n-embd", "16", "--n-embd2", "16", "--batch-size", "16",
                    "--sample-interval", "0", "--eval-batches", "1"]


@pytest.fixture(scope="session")
def names_file(tmp_path_factory):
    """400 real first names, one per line."""
    return write_items(census_first_names()[:400], tmp_path_factory.mktemp("data") / "names.txt")


@pytest.fixture(scope="session")
def moe_speed_smoke(names_file, tmp_path_factory):
    """benchmarks/moe_speed.py end to end once, on two domains, with two rounds of two steps and a
    record: test_benchmarks.py reads what it prints, test_part4.py the record it writes (another
    run would spend seconds starting torch for the same smoke). (stdout, stderr, the record's path)"""
    folder = tmp_path_factory.mktemp("moe-speed")
    sums = write_items(build("arithmetic", seed=0, count=100)["arithmetic"], folder / "arithmetic.txt")
    record = folder / "benchmarks" / "moe_speed.json"
    result = subprocess.run([sys.executable, "benchmarks/moe_speed.py", "--input", f"{names_file},{sums}",
                             "--steps", "2", "--warmup", "0", "--rounds", "2", "--record", str(record)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr, record
