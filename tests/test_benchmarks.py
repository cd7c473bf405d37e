"""Smoke tests of benchmarks/: each runs end to end on a tiny dataset with a handful of steps and
prints every line a reader looks for. The timings themselves are not checked: they are the result."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEW_STEPS = ["--steps", "3", "--warmup", "1", "--rounds", "1"]


def run_benchmark(name, *args):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


def test_moe_speed_times_every_configuration_and_gives_the_verdict(moe_speed_smoke):
    stdout, stderr, _ = moe_speed_smoke  # conftest.py: one run, whose record test_part4.py reads
    assert "2 domain(s)" in stdout
    assert re.search(r"padding .*: \d+\.\d% of each batch", stdout)
    for moe in ("moe E=4 top-1", "moe E=8 top-2"):
        assert re.search(rf"check {moe}: .*: the same function", stdout), stdout
    for config in ("dense", "dense, real tokens only", "moe E=4 top-1", "moe E=8 top-2",
                   "moe E=4 top-1, masked reference", "moe E=8 top-2, masked reference"):
        assert re.search(rf"^ *{re.escape(config)} +\d+\.\d\d +\S+ +\d+\.\d\dx +\d+\.\d\dx$", stdout, re.M), stdout
        assert f"round 2/2 {config:>31}:" in stderr  # progress goes to stderr
    assert re.search(r"^E=4 top-1 sparse step time is \d+\.\d\dx dense \(target <= 1\.5x\)$", stdout, re.M)


def test_spine_speed_times_every_loop(names_file):
    stdout, _ = run_benchmark("spine_speed.py", "--input-file", str(names_file), "--num-workers", "1", *FEW_STEPS)
    for loop in ("dataloader", "in-memory", "cut", "spine"):
        assert re.search(rf"^ *{loop}: +\d+\.\d steps/s .* the dataloader loop$", stdout, re.M), stdout


def test_synthesis_speed_counts_nodes_with_and_without_a_guide(tmp_path):
    runs = tmp_path / "neuro-symbolic-cycles"
    run = runs / "remedy,seed=1"  # a finished run's records, without its model: (a) is skipped
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"arm": "remedy", "seed": 1, "threads": 1}')
    (run / "summary.json").write_text('{"wall_s": 420.0}')
    (run / "synth.json").write_text('{"wakes": [{"cpu_s": {"wake": 30.0, "answers": 0.0, "sleep": 2.0}},'
                                    ' {"cpu_s": {"wake": 20.0, "answers": 1.0, "sleep": 2.0}}]}')
    stdout, _ = run_benchmark("synthesis_speed.py", "--nodes", "300", "--max-cost", "8", "--runs", str(runs))
    assert re.search(r"^enumeration: \d+ programs .*: \d+ programs/s$", stdout, re.M), stdout
    assert re.search(r"^search: \d+ nodes .*: \d+ nodes/s$", stdout, re.M), stdout
    assert re.search(r"^\(a\) trained guide: skipped: no finished run", stdout, re.M), stdout
    oracle = re.escape("(b) oracle unigram guide (upper bound)")
    assert re.search(rf"^{oracle}: solved within 300 nodes: \d+/50 unguided, \d+/50 guided", stdout, re.M), stdout
    assert re.search(rf"^{oracle}: unguided/guided nodes .*= \d+\.\d\dx, median per task \d+\.\d\dx$", stdout, re.M)
    assert re.search(rf"^{oracle}: target: the guide cuts nodes 10x or more: (meets|does NOT meet) it", stdout, re.M)
    assert re.search(r"^remedy,seed=1: 2 wake\(s\): synthesiser CPU 0\.92 min .*: target <= 10 CPU-min per seed: "
                     r"meets the target", stdout, re.M), stdout
