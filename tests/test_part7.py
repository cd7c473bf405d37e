"""Part 7's figures: the numbers their headlines are computed from, on synthetic run folders
(tests/support.py plus the synth.json a --synth-cycles run writes, built here: test data, never
results), a redraw that draws every figure, and no crash without results."""

import json

import pytest

from analysis import __main__ as analysis_main
from analysis import part7, plots
from analysis.parts import Sources
from runs import file_sha256
from runs.store import load_recipe_runs, write_json
from support import run_config, write_run

RECIPE = part7.RECIPE
TRAIN = ["double", "head", "tail"]
HELD_OUT = ["add-4", "drop-3", "index-5", "sum", "reverse"]
TRIVIAL = ["drop-3"]  # solved within 200 nodes at the first wake
HARD = [name for name in HELD_OUT if name not in TRIVIAL]
INVENTION = {"name": "fn_0", "body": "(map (lam (+ $0 #0)) #1)", "arity": 2}


def found(program, nodes, inlined=None, by="search"):
    return {"program": program, "inlined": inlined or program, "cost": 5.0, "nodes": nodes, "seconds": 0.01,
            "by": by}


def unsolved():
    return {"program": None, "cost": None, "nodes": 3001, "seconds": 0.2, "by": "search"}


def hard_solved(arm, seed, cycle):
    """remedy: add-4 at wake 0, lost at wake 1, then add-4 and index-5, then sum too (and reverse
    with seed 3); no-guide: add-4 at every wake."""
    if arm == "no-guide":
        return ["add-4"]
    by_cycle = [["add-4"], [], ["add-4", "index-5"], ["add-4", "index-5", "sum"]]
    return by_cycle[cycle] + (["reverse"] if seed == 3 and cycle == 3 else [])


def synth_record(arm, seed):
    """synth.json of a run of the arm, four wakes, as SynthTraining.save writes it."""
    guided, wakes = arm == "remedy", []
    for cycle in range(4):
        library = [INVENTION] if guided and cycle >= 1 else []
        tasks = {"double": found("(fn_0 1 $0)", 90, inlined="(map (lam (+ $0 1)) $0)") if library
                 else found("(map (lam (+ $0 1)) $0)", 900),
                 "head": found("(car $0)", 10), "tail": unsolved(),
                 "drop-3": found("(cdr (cdr (cdr $0)))", 20 if guided else 50)}
        solved_hard = hard_solved(arm, seed, cycle)
        for i, name in enumerate(HARD):
            tasks[name] = found("(car $0)", (100 if guided else 1000) * (i + 1)) if name in solved_hard else unsolved()
        tasks = {name: tasks[name] for name in TRAIN + HELD_OUT}  # training tasks first, as the variant
        lost = []
        if cycle > 0:
            lost = [{"task": name, "program": "(car $0)", "cost_then": 5.0, "cost_now": 7.5, "nodes_then": 100}
                    for name in hard_solved(arm, seed, cycle - 1) if name not in solved_hard]
        n_held = sum(tasks[name]["program"] is not None for name in HELD_OUT)
        wake = {"cycle": cycle, "step": cycle * 100, "library": library, "tasks": tasks,
                "solved": {"train": 2, "test": n_held, "test_hard": len(solved_hard), "n_train": 3,
                           "n_test": 5, "n_test_hard": 4},
                "lost": lost, "neural": [], "cpu_s": {"wake": 1.0, "answers": 0.0}}
        if cycle < 3:
            wake["accepted"] = [{**INVENTION, "uses": 1, "gain": 2.0}] if guided and cycle == 0 else []
            wake["rows"] = {"replays": 2, "fantasies": 5, "answers": 10, "rows": 17}
            wake["cpu_s"]["sleep"] = 0.5
        else:  # the model right on every length-7 input, wrong on every length-8 one
            wake["neural"] = [{"task": name, "length": length, "neural": length == 7,
                               "symbolic": tasks[name]["program"] is not None,
                               "router": tasks[name]["program"] is not None or length == 7}
                              for name in HELD_OUT for length in (7, 8)]
        wakes.append(wake)
    return {"trivial": TRIVIAL, "wakes": wakes, "state": {}}


def write_synth_runs(results, arms=("remedy", "no-guide"), seeds=(1, 2, 3), synth=True):
    """Finished runs of neuro-symbolic-cycles; the held-out names in a lists.test file of their own."""
    data = results / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "lists.test.txt").write_text("".join(json.dumps({"name": name}) + "\n" for name in HELD_OUT))
    (data / "lists.txt").write_text("".join(json.dumps({"name": name}) + "\n" for name in TRAIN))
    for arm in arms:
        flags = {"synth-cycles": 3, "synth-nodes": 3000}
        flags.update({"remedy": {"synth-frontiers": "keep"}, "no-guide": {"synth-guide": "off"}}.get(arm, {}))
        for seed in seeds:
            config = run_config(RECIPE, f"{arm},seed={seed}", arm=arm, seed=seed, steps=300, flags=flags,
                                variant="neuro-symbolic", domains=("lists", "lists.test"))
            config["dataset"].update(builder="list_tasks", files=[
                {"domain": d, "path": str(data / f"{d}.txt"), "sha256": file_sha256(data / f"{d}.txt")}
                for d in ("lists", "lists.test")])
            metrics = [{"step": s, "train_loss": 1.0, "test_loss": 1.0, "tokens_per_s": 100.0, "step_ms": 10.0}
                       for s in (0, 300)]
            directory = write_run(results, config, metrics, {"parameters": {"total": 1000}})
            if synth:
                write_json(directory / "synth.json", synth_record(arm, seed), indent=None)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    write_synth_runs(results)
    return results


@pytest.fixture(scope="module")
def groups(results):
    return part7.synthesised(plots.group_runs(load_recipe_runs(results / RECIPE), label=part7.arm_name))


def test_program_sizes_count_names_and_variables_not_lambdas():
    assert part7.size("(map (lam (+ $0 1)) $0)") == 5
    assert part7.size("$0") == 1
    assert part7.readable(INVENTION) == "(map (lam (+ $0 a)) b)"


def test_held_out_names_come_from_the_dataset_file_or_are_rebuilt(results, groups):
    assert part7.held_out(groups[0].runs[0]) == tuple(HELD_OUT)
    run = groups[0].runs[0]
    gone = {**run.config, "dataset": {**run.config["dataset"], "files": [
        {"domain": "lists.test", "path": str(results / "gone.txt"), "sha256": "ab" * 32}]}}
    rebuilt = part7.held_out(type(run)(run.directory, gone, run.summary))
    assert len(rebuilt) == 50 and "add-4" in rebuilt  # runs.datasets.build("list_tasks", seed=0)


def test_the_numbers_per_arm(groups):
    remedy, no_guide = part7.arm(groups, "remedy"), part7.arm(groups, "no-guide")
    assert [g.name for g in groups] == ["remedy", "no-guide"]  # the recipe's order
    shares = part7.per_wake(remedy, part7.hard_share)
    assert shares.mean(axis=0) == pytest.approx([0.25, 0.0, 0.5, (0.75 + 0.75 + 1.0) / 3])
    assert [part7.lost_counts(r) for r in remedy.runs] == [[1, 0, 0]] * 3
    assert part7.dilutions(remedy.runs[0]) == [(1, 2.5)]
    assert part7.library_size(part7.last(remedy.runs[0])) == 1
    terms, inlined = part7.solution_sizes(part7.last(remedy.runs[0]))  # double 3 / 5, head, drop-3, 3 x (car $0)
    assert (terms, inlined) == (pytest.approx((3 + 2 + 4 + 2 * 3) / 6), pytest.approx((5 + 2 + 4 + 2 * 3) / 6))
    assert part7.uses(part7.last(remedy.runs[0]), "fn_0") == (1, 1)
    # nodes with the guide / without, on the tasks both solve in every seed: add-4 0.1, drop-3 0.4
    ratios = part7.guide_ratios(remedy, no_guide, edge=6000)
    assert ratios == {"add-4": pytest.approx(0.1), "drop-3": pytest.approx(0.4)}
    assert part7.seed_ratios(remedy, no_guide) == [pytest.approx(0.25)] * 3
    # the hard tasks' inputs only (drop-3 is trivial): seed 1 solves 3 of the 4, the model is right at length 7
    assert part7.overall(remedy.runs[0]) == {"neural": 0.5, "symbolic": 0.75, "router": 0.875}
    assert part7.answers_by_length(remedy.runs[0])[8] == {"neural": 0.0, "symbolic": 0.75, "router": 0.75}


def test_the_numbers_are_printed_by_the_numbers_command(results, capsys):
    assert analysis_main.main(["--results", str(results), "numbers"]) == 0
    out = capsys.readouterr().out
    assert "part7: remedy (3 seeds): hard held-out solved by wake 25 ± 0%, 0 ± 0%, 50 ± 0%, 83 ± 14%" in out
    assert "part7: remedy: lost per cycle 1.0 ± 0.0, 0.0 ± 0.0, 0.0 ± 0.0; inventions at the last wake 1.0" in out
    assert "guide node ratio (remedy / no-guide, last wake): median 0.25 over 2 held-out tasks" in out
    assert "remedy, hard tasks' held-out inputs: neural 0.500 ± 0.000, symbolic 0.833 ± 0.144, router 0.917 ± 0.072" in out


def test_a_redraw_draws_every_part7_figure(results, tmp_path):
    drawing = part7.part.draw(Sources(results, tmp_path / "benchmarks"), tmp_path / "figures")
    assert not drawing.skipped and not drawing.missing
    stems = [figure.path.stem for figure in drawing.figures]
    assert stems == ["solved", "search-cost", "library", "inventions", "neural-vs-symbolic", "lost"]
    assert all((tmp_path / "figures" / f.path).is_file() for f in drawing.figures)
    assert all(f.recipe == RECIPE and not f.stale for f in drawing.figures)
    assert "1 trivial ones" in drawing.figures[0].caption
    assert "Median ratio with/without the guide over the 2 tasks both solve in every seed: 0.25" in \
        drawing.figures[1].caption
    assert drawing.numbers  # the redraw prints them after the figures


def test_no_results_and_runs_without_synth_json_draw_nothing_and_do_not_crash(tmp_path, capsys):
    drawing = part7.part.draw(Sources(tmp_path / "none", tmp_path / "b"), tmp_path / "figures")
    assert drawing.missing == [RECIPE] and not drawing.figures and drawing.numbers == []
    write_synth_runs(tmp_path / "results", arms=("remedy",), seeds=(1,), synth=False)
    drawing = part7.part.draw(Sources(tmp_path / "results", tmp_path / "b"), tmp_path / "figures")
    assert not drawing.figures and len(drawing.skipped) == 6
    assert drawing.numbers == ["no finished run of neuro-symbolic-cycles has a complete synth.json"]
    assert "part7: solved not drawn: no finished run with a complete synth.json" in capsys.readouterr().out
