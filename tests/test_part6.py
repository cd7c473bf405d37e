"""Part 6's figures: APGR, the calibration split and the cost per correct answer on hand-made
numbers, and a redraw from synthetic run folders (tests/support.py plus the two files a
--tool on run writes) that draws every figure."""

import json

import numpy as np
import pytest

from analysis import part6, plots
from analysis.parts import Sources
from runs.store import Run, load_recipe_runs, write_json
from support import run_config, write_run

TYPES = part6.TYPES


def test_apgr_is_half_for_random_calling_and_more_for_calling_where_it_helps_first():
    random = [{"calls": c, "acc": 0.2 + 0.6 * c} for c in np.linspace(0, 1, 11)]
    assert part6.apgr(random, never=0.2, always=0.8) == pytest.approx(0.5)
    helps_first = [{"calls": 0.0, "acc": 0.2}, {"calls": 0.3, "acc": 0.8}, {"calls": 1.0, "acc": 0.8}]
    assert part6.apgr(helps_first, never=0.2, always=0.8) == pytest.approx(0.85)  # 0.15 + 0.7
    assert np.isnan(part6.apgr(random, never=0.5, always=0.5))  # no gap to recover


def evaluation(called, own, with_tool, cost=0.2):
    """tool_eval.json of 4 items per type, the policy's decisions given."""
    n = len(called)
    items = {"type": [TYPES[i % 3] for i in range(n)], "query": ["1+1"] * n, "answer": ["2"] * n,
             "p_call": [0.9 if c else 0.1 for c in called], "called": called, "off": ["2"] * n,
             "always": ["2"] * n, "off_correct": own, "always_correct": with_tool}
    policy = np.where(called, with_tool, own)
    baselines = {"policy": {"acc": float(policy.mean()), "calls": float(np.mean(called)), "utility": 0.0},
                 "never": {"acc": float(np.mean(own)), "calls": 0.0, "utility": 0.0},
                 "always": {"acc": float(np.mean(with_tool)), "calls": 1.0, "utility": 0.0},
                 "random": {"acc": 0.5, "calls": float(np.mean(called)), "utility": 0.0},
                 "oracle": {"acc": float(np.mean(np.maximum(own, with_tool))), "calls": 0.5, "utility": 0.0}}
    thresholds = [{"threshold": None, "calls": 0.0, "acc": baselines["never"]["acc"]},
                  {"threshold": 0.5, "calls": baselines["policy"]["calls"], "acc": baselines["policy"]["acc"]}]
    return {"step": 100, "round": 1, "cost": cost, "types": list(TYPES), "summary": {}, "baselines": baselines,
            "thresholds": thresholds, "items": items}


def test_the_calibration_split_compares_own_answers_where_it_called_and_where_it_did_not(tmp_path):
    e = evaluation(called=[True, True, False, False], own=[False, True, True, True],
                   with_tool=[True, True, False, True])
    run = Run(tmp_path, config={}, summary=None)
    write_json(tmp_path / "tool_eval.json", e)
    split = part6.calibration(run)
    assert split["called"] == {"own": 0.5, "policy": 1.0, "n": 2}
    assert split["did not call"] == {"own": 1.0, "policy": 1.0, "n": 2}


def test_the_cost_per_correct_answer_is_what_the_calls_cost_over_what_is_right():
    assert part6.spent({"calls": 0.5, "acc": 0.8}, 0.4) == pytest.approx(0.25)
    assert np.isnan(part6.spent({"calls": 0.5, "acc": 0.0}, 0.4))


def summary(acc, calls):
    return {key: {"acc": acc, "acc_off": acc / 2, "acc_always": acc, "calls": calls, "n": 200}
            for key in ("all", *TYPES)}


def write_tool_runs(results):
    arms = {"base": {"tool-warmup": 1.0}, "labels-c0": {"tool-cost": 0.0}, "labels-c0.5": {"tool-cost": 0.5},
            "dream-c0.2": {"tool-cost": 0.2, "dream-rounds": 3}}
    for arm, flags in arms.items():
        for seed in (1, 2):
            config = run_config("tool-economics", f"{arm},seed={seed}", arm=arm, seed=seed, steps=200,
                                flags={"tool": "on", **flags}, variant="tool-token",
                                domains=[*TYPES, *(f"{t}.test" for t in TYPES)])
            metrics = []
            for step in (0, 100, 200):
                record = {"step": step, "train_loss": 1.0, "test_loss": 1.0, "tokens_per_s": 100.0, "step_ms": 10.0}
                for t in TYPES:
                    record.update({f"tool/acc/{t}": 0.5 + 0.1 * seed, f"tool/acc_off/{t}": 0.4,
                                   f"tool/calls/{t}": 0.0 if arm == "base" else 0.3 * seed})
                metrics.append(record)
            directory = write_run(results, config, metrics, {"parameters": {"total": 1000, "active": 1000}})
            write_json(directory / "tool_eval.json", evaluation(
                called=[seed == 1, True, False, seed == 2] * 3, own=[False, True, True, False] * 3,
                with_tool=[True, True, False, True] * 3))
            rounds = [{"round": 1, "step": 75, "kind": "labels", "before": summary(0.4, 0.0)}]
            rounds += [{"round": r, "step": 75 + 30 * r, "kind": "dream", "before": summary(0.5, 0.3)}
                       for r in (2, 3, 4)]
            write_json(directory / "tool_rounds.json", {"step": 200, "round": 4, "cost": 0.2, "types": list(TYPES),
                                                        "rounds": rounds, "now": summary(0.6, 0.4)})


def test_a_redraw_draws_every_part6_figure(tmp_path):
    write_tool_runs(tmp_path)
    groups = plots.group_runs(load_recipe_runs(tmp_path / "tool-economics"), label=part6.arm_name)
    assert [g.name for g in part6.learned(groups, "labels")] == ["labels-c0", "labels-c0.5"]
    drawing = part6.part.draw(Sources(tmp_path, tmp_path / "benchmarks"), tmp_path / "figures")
    assert {figure.path.stem for figure in drawing.figures} == {
        "accuracy-vs-calls", "calls-by-type", "calibration-split", "cost-per-correct", "dream-rounds", "table"}
    assert not drawing.skipped
    labels = part6.round_labels(json.loads((tmp_path / "tool-economics" / "dream-c0.2,seed=1" /
                                            "tool_rounds.json").read_text()))
    assert labels == ["before labels", "after labels", "after dream 1", "after dream 2", "end"]


def test_the_share_of_the_gap_to_the_oracle_is_what_the_policy_recovers(tmp_path):
    # own answers right on 2 of 4, the tool right on 3 of 4; the policy calls on the two it gets wrong
    e = evaluation(called=[True, True, False, False], own=[False, False, True, True],
                   with_tool=[True, False, True, True])
    run = Run(tmp_path, config={}, summary=None)
    write_json(tmp_path / "tool_eval.json", e)
    assert part6.oracle_share(run) == pytest.approx(1.0)  # never 0.5, oracle 0.75, policy 0.75
    e = evaluation(called=[False, True, False, False], own=[False, False, True, True],
                   with_tool=[True, False, True, True])
    write_json(tmp_path / "tool_eval.json", e)
    assert part6.oracle_share(run) == pytest.approx(0.0)  # it called only where the tool is wrong too


def test_the_dream_headline_compares_with_labels_from_one_round_at_the_same_cost():
    def group(name, accuracies):
        runs = [type("Run", (), {"metrics": [{"tool/acc/computed": a}]})() for a in accuracies]
        return type("Group", (), {"name": name, "runs": runs, "resolved": {"tool-cost": 0.2}})()
    dream, single = group("dream-c0.2", [0.96, 0.97, 0.98]), group("labels-c0.2", [0.95, 0.96, 0.97])
    assert part6.dream_headline(dream, single) == ("Computed sums at cost 0.2: 0.97 ± 0.01 right with dream rounds, "
                                                   "0.96 ± 0.01 with labels from one round: a tie")
    ahead = group("labels-c0.2", [0.80, 0.81, 0.82])
    assert part6.dream_headline(dream, ahead).endswith("0.81 ± 0.01 with labels from one round: ahead")
