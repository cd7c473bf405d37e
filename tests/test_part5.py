"""Part 5's figures: the numbers their headlines and points are computed from, and a redraw from
synthetic run folders (tests/support.py) that draws every figure."""

import numpy as np
import pytest

from analysis import part5, plots
from analysis.parts import Sources
from runs.store import load_recipe_runs
from support import run_config, write_run

TASK_DOMAINS = {"parity": [2, 8, 14], "addition": [0, 2, 4], "parens": [1, 4, 7], "ordered": [2, 8, 14]}
HELD_OUT = "parity-14,addition-04,parens-07,ordered-14"


def test_spearman_ranks_ties_by_their_average_and_is_zero_for_a_flat_side():
    assert part5.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert part5.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert part5.ranks([5, 1, 5, 3]) == [2.5, 0.0, 2.5, 1.0]
    assert part5.spearman([1, 2, 3], [2, 2, 2]) == 0.0


def test_fixed_depth_is_interpolated_between_the_nearest_depths():
    curve = {1: [0.5, 0.5], 2: [0.7, 0.9], 4: [1.0, 1.0]}
    assert part5.interpolate(curve, 1.5) == pytest.approx(0.65)
    assert part5.interpolate(curve, 3.0) == pytest.approx(0.9)


def record(step, arm, flags, seed, quality):
    """A final evaluation of the act-tasks kind: accuracy falls with difficulty, from `quality`;
    ACT takes more steps on harder items."""
    values = {"step": step, "train_loss": 1.0, "test_loss": 1.0, "tokens_per_s": 1000.0, "step_ms": 10.0}
    k = flags.get("act-max-steps")
    for task, difficulties in TASK_DOMAINS.items():
        for rank, d in enumerate(difficulties):
            name = f"{task}-{d:02d}"
            values[f"answer_acc/{name}"] = max(0.0, min(1.0, quality - 0.15 * rank + 0.01 * seed))
            if k:
                values[f"act/steps/{name}"] = 1.5 + 0.5 * rank
                values[f"act/answer_steps/{name}"] = 2.0 + rank
    if k:
        values.update({"act/mean_steps": 2.0, "act/max_steps": float(k), "act/ponder": 2.6})
        values.update({f"act/hist/s{n}": 1.0 / k for n in range(1, k + 1)})
    return values


def write_task_runs(results):
    arms = {"dense": ({}, 0.9), "fixed-1": ({"act-fixed-steps": 1}, 0.6), "fixed-2": ({"act-fixed-steps": 2}, 0.8),
            "fixed-3": ({"act-fixed-steps": 3}, 0.85), "act-tau1e-2": ({"act-max-steps": 3, "ponder-cost": 0.01}, 0.9),
            "act-tau1e-1": ({"act-max-steps": 3, "ponder-cost": 0.1}, 0.7)}
    for arm, (flags, quality) in arms.items():
        flags = {**flags, "answer-sep": "=", "held-out": HELD_OUT}
        for seed in (1, 2, 3):
            config = run_config("act-tasks", f"{arm},seed={seed}", arm=arm, seed=seed, steps=200, flags=flags,
                                variant="act", domains=[f"{t}-{d:02d}" for t, ds in TASK_DOMAINS.items() for d in ds])
            metrics = [record(s, arm, flags, seed, quality * s / 200) for s in (0, 100, 200)]
            write_run(results, config, metrics, {"parameters": {"total": 1000, "active": 1000}})


@pytest.fixture
def task_groups(tmp_path):
    write_task_runs(tmp_path)
    return plots.group_runs(load_recipe_runs(tmp_path / "act-tasks"), label=part5.arm_name)


def test_accuracy_is_averaged_over_trained_or_held_out_difficulties(task_groups):
    run = next(g for g in task_groups if g.name == "fixed-2").runs[0]
    assert part5.domains(run, "parity") == ["parity-02", "parity-08"]
    assert part5.domains(run, "parity", extrapolation=True) == ["parity-14"]
    assert part5.accuracy(run, "parity") == pytest.approx((0.81 + 0.66) / 2)
    assert part5.mean_steps(run, "parity") == 2  # a fixed depth is its steps
    act = next(g for g in task_groups if g.name == "act-tau1e-2").runs[0]
    assert part5.mean_steps(act, "parity") == pytest.approx(1.75)  # ACT's measured steps, trained domains


def test_act_gaps_compare_each_seed_with_fixed_depth_at_its_own_steps(task_groups):
    gaps = part5.act_gaps(task_groups, "addition")
    def held_in(quality, seed):  # the mean over the two trained difficulties
        return quality - 0.075 + 0.01 * seed
    fixed_1, fixed_2 = held_in(0.6, 2), held_in(0.8, 2)  # the mean over seeds 1-3 is seed 2's
    at_its_steps = fixed_1 + 0.75 * (fixed_2 - fixed_1)  # ACT took 1.75 steps on addition
    assert gaps["act-tau1e-2"][0] == pytest.approx(held_in(0.9, 1) - at_its_steps)
    assert part5.pareto_headline(task_groups).startswith(
        "ACT minus tied fixed depth at the same mean steps, best to worst tau: parity")


def test_steps_rise_with_difficulty_in_the_synthetic_runs(task_groups):
    run = next(g for g in task_groups if g.name == "act-tau1e-2").runs[0]
    assert part5.rho(run, "parity") == pytest.approx(1.0)


def test_a_redraw_draws_every_part5_figure_it_has_results_for(task_groups, tmp_path):
    drawing = part5.part.draw(Sources(tmp_path, tmp_path / "benchmarks"), tmp_path / "figures")
    drawn = {figure.path.stem for figure in drawing.figures}
    assert {"accuracy-vs-steps", "steps-vs-difficulty", "accuracy-vs-difficulty", "halting-over-training",
            "table"} <= drawn
    assert "part5/wall-time" in dict(drawing.skipped)  # no benchmark record here


def speed_config(label, mean_steps, ms, same_work, against_max):
    return {"label": label, "mean_steps": mean_steps, "ms_per_step": ms, "x_fixed_same_work": same_work,
            "x_fixed_max": against_max}


def test_the_wall_time_headline_says_whether_time_tracks_work():
    act = [speed_config("act tau=0.01", 2.5, 16.0, 1.64, 0.74), speed_config("act tau=0.1", 1.2, 10.0, 1.91, 0.47)]
    assert part5.wall_time_headline(act, 6) == ("ACT's time falls with its work, plus an overhead: ACT costs "
                                                "1.64-1.91x the fixed depth doing the same mean steps; at 1.2 "
                                                "steps, 0.47x fixed depth 6")
    within = [speed_config("act tau=0.01", 2.5, 11.0, 1.10, 0.5)]
    assert part5.wall_time_headline(within, 6).startswith("ACT's time tracks its work: ACT costs 1.10x")


def test_a_gap_within_its_seeds_spread_is_a_tie_and_the_headline_shows_best_and_worst_tau():
    assert part5.gap_verdict([0.10, 0.12, 0.11]) == "+0.11"
    assert part5.gap_verdict([0.01, -0.02, 0.02]) == "ties"
    assert part5.gap_verdict([-0.20, -0.22, -0.21]) == "-0.21"


def test_the_routing_shift_is_the_share_of_routing_mass_that_moves_between_steps():
    assert part5.routing_shift(np.array([[0.5, 0.5], [1.0, 0.0]])) == pytest.approx(0.5)
    assert part5.routing_shift(np.array([[0.25] * 4, [0.25] * 4])) == pytest.approx(0.0)
