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


def test_welchs_interval_is_the_textbook_one_and_decides_win_tie_and_loss():
    # means 2 and 5, variances 1 and 1, n = 3 each: se = sqrt(2/3), df = 4, t(0.975, 4) = 2.7764
    gap = plots.difference([1, 2, 3], [4, 5, 6])
    assert gap.mean == pytest.approx(-3) and gap.high == pytest.approx(-3 + 2.7764 * (2 / 3) ** 0.5, abs=1e-4)
    assert gap.low == pytest.approx(-3 - 2.7764 * (2 / 3) ** 0.5, abs=1e-4) and gap.verdict == "loss"
    assert plots.difference([0.3, 0.5, 0.4], [0.41, 0.39, 0.4]).verdict == "tie"
    assert plots.difference([0.5, 0.5], [0.4, 0.4]).verdict == "win"  # no spread on either side
    assert str(plots.difference([1, 2, 3], [4, 5, 6])) == "-3.000 [-5.267, -0.733]"
    with pytest.raises(ValueError, match="at least 2 seeds"):
        plots.difference([1.0], [1.0, 2.0])


def record(step, arm, flags, seed, quality):
    """A final evaluation of the act-tasks kind: accuracy falls with difficulty, from `quality`;
    ACT takes more steps on harder items."""
    values = {"step": step, "train_loss": 1.0, "test_loss": 1.0, "valid_loss": 1.0 - quality,
              "tokens_per_s": 1000.0, "step_ms": 10.0}
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


def write_task_runs(results, last_is_worse=False):
    arms = {"dense": ({}, 0.9), "fixed-1": ({"act-fixed-steps": 1}, 0.6), "fixed-2": ({"act-fixed-steps": 2}, 0.8),
            "fixed-3": ({"act-fixed-steps": 3}, 0.85), "act-tau1e-2": ({"act-max-steps": 3, "ponder-cost": 0.01}, 0.9),
            "act-tau1e-1": ({"act-max-steps": 3, "ponder-cost": 0.1}, 0.7)}
    for arm, (flags, quality) in arms.items():
        flags = {**flags, "answer-sep": "=", "held-out": HELD_OUT}
        for seed in (1, 2, 3):
            config = run_config("act-tasks", f"{arm},seed={seed}", arm=arm, seed=seed, steps=200, flags=flags,
                                variant="act", domains=[f"{t}-{d:02d}" for t, ds in TASK_DOMAINS.items() for d in ds])
            metrics = [record(s, arm, flags, seed, quality * s / 200) for s in (0, 100, 200)]
            if last_is_worse:  # overtrained: the validation loss rises again
                metrics.append(record(300, arm, flags, seed, quality * 0.5))
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


def test_a_run_is_read_at_its_lowest_validation_loss_not_its_last_evaluation(tmp_path):
    write_task_runs(tmp_path, last_is_worse=True)
    run = load_recipe_runs(tmp_path / "act-tasks")[0]
    assert part5.evaluation(run)["step"] == 200 and run.metrics[-1]["step"] == 300


def test_act_gaps_compare_act_with_each_fixed_depth_seed_at_acts_steps(task_groups):
    gaps = part5.act_gaps(task_groups, "addition")
    def held_in(quality, seed):  # the mean over the two trained difficulties
        return quality - 0.075 + 0.01 * seed
    act = [held_in(0.9, seed) for seed in (1, 2, 3)]
    # ACT took 1.75 steps on addition: each fixed seed three quarters of the way from depth 1 to 2
    fixed = [held_in(0.6, seed) + 0.75 * (held_in(0.8, seed) - held_in(0.6, seed)) for seed in (1, 2, 3)]
    assert gaps["act-tau1e-2"] == plots.difference(act, fixed) and gaps["act-tau1e-2"].mean == pytest.approx(0.15)
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


def test_a_gap_whose_interval_holds_zero_is_a_tie():
    assert part5.gap_verdict(plots.difference([0.90, 0.92, 0.91], [0.80, 0.81, 0.79])) == "+0.11"
    assert part5.gap_verdict(plots.difference([0.80, 0.78, 0.83], [0.80, 0.81, 0.79])) == "ties"
    assert part5.gap_verdict(plots.difference([0.60, 0.58, 0.59], [0.80, 0.81, 0.79])) == "-0.21"


def test_the_routing_shift_is_the_share_of_routing_mass_that_moves_between_steps():
    assert part5.routing_shift(np.array([[0.5, 0.5], [1.0, 0.0]])) == pytest.approx(0.5)
    assert part5.routing_shift(np.array([[0.25] * 4, [0.25] * 4])) == pytest.approx(0.0)


def test_a_figure_of_a_recipe_still_training_says_how_much_has_finished(task_groups, tmp_path, monkeypatch):
    """The lab's own results are held to their recipe: act-tasks plans 60 runs, 18 are here."""
    from analysis import parts

    monkeypatch.setattr(parts, "RESULTS_DIR", tmp_path)
    drawing = part5.part.draw(Sources(tmp_path, tmp_path / "benchmarks"), tmp_path / "figures")
    table = next(figure for figure in drawing.figures if figure.path.stem == "table")
    assert table.partial == "18 of 60 runs of act-tasks are finished" and table.stale is None
    assert parts.unfinished("act-tasks", Sources(tmp_path / "elsewhere", tmp_path)) is None  # not the lab's
