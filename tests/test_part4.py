"""Part 4's figures (a mixture of experts) on synthetic run folders written by tests/support.py
(the committed results format): the routing statistics they rest on, the drawing of every figure,
and the benchmark record the step-time figure is drawn from."""

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from analysis import __main__ as analysis_main
from analysis import part4, plots
from analysis.parts import Sources, save
from runs.store import ROOT, load_recipe_runs, load_run, write_json
from support import code, run_config, write_run

STEPS = (0, 250, 500)
N_LAYERS = 4
LETTERS = "abcdefghijklmnopqrstuvwxyz"

DOMAIN_ARMS = {"dense": {}, "dense-wide": {"n-expert": 1, "expert-hidden": 1024, "balance": "none"},
               "moe-e4": {"n-expert": 4}, "moe-e4-thin": {"n-expert": 4, "expert-hidden": 64},
               "moe-e4-none": {"n-expert": 4, "balance": "none"}, "moe-e4-bias": {"n-expert": 4, "balance": "bias"},
               "moe-e4-top2": {"n-expert": 4, "expert-top-k": 2}}
NAMES_ARMS = {"dense": {}, "moe-e4": {"n-expert": 4}, "moe-e8": {"n-expert": 8}}
FINAL_LOSS = {"dense": 2.10, "dense-wide": 2.00, "moe-e4": 2.05, "moe-e4-thin": 2.15, "moe-e4-none": 2.06,
              "moe-e4-bias": 2.05, "moe-e4-top2": 2.03, "moe-e8": 2.04}
COLLAPSE = {"moe-e4-none": 4.0, "moe-e4-bias": 1.0}  # how fast an arm's load piles onto expert 1; others 0.3


# -----------------------------------------------------------------------------
# fixture runs


def routing_metrics(collapse, n_expert, step):
    """A record's moe/l<L>/... keys, those the patch logs at each evaluation: load drifting onto
    expert 1 at the rate `collapse`, faster in later layers."""
    record = {}
    for layer in range(N_LAYERS):
        skew = collapse * step / STEPS[-1] * (layer + 1) / N_LAYERS
        weights = np.exp(-skew * np.arange(n_expert) * 2)
        share = weights / weights.sum()
        prefix = f"moe/l{layer}/"
        record.update({f"{prefix}load/e{e}": float(share[e]) for e in range(n_expert)})
        record.update({f"{prefix}maxvio": float(share.max() * n_expert - 1),
                       f"{prefix}dead": float((share < 0.01).sum()), f"{prefix}drop_rate": 0.0,
                       f"{prefix}token_entropy": 0.9 - 0.4 * step / 1000,
                       f"{prefix}mean_entropy": 1.0 - skew / 10})
    return record


def routing_probe(n_expert, domains=("names",)):
    """probes.json's routing of the best model: the start token all to expert 1, vowels mostly to
    expert 2, everything else spread evenly, 8 positions; domain d's tokens prefer expert d, the more
    the later the layer."""
    vocab = ["<start/stop>", *LETTERS]

    def by_input(e):
        return [30 * (e == 0) if i == 0 else (20 if e == 1 else 5) if char in "aeiouy" else 10
                for i, char in enumerate(vocab)]

    def layer(index):
        return {"by_input": [by_input(e) for e in range(n_expert)],
                "by_target": [[12] + [10] * len(LETTERS) for _ in range(n_expert)],
                "by_position": [[30 * (e == 0), 8, 7, 6, 5, 4, 3, 2] for e in range(n_expert)],
                "by_domain": [[round(100 * (1 + 3 * (e == d % n_expert) * index / N_LAYERS))
                               for d in range(len(domains))] for e in range(n_expert)]}

    return {"tokens": vocab, "domains": list(domains), "layers": [layer(i) for i in range(N_LAYERS)]}


def write_moe_run(results_dir, recipe, arm, flags, seed, final_loss=None, collapse=None, changed=None):
    """A finished run of a moe recipe. Seeds 1, 2, 3 end 0.005 below, on and above the arm's final
    loss, and their load piles up 5% slower, as fast, 5% faster."""
    domains = ("arithmetic", "code", "names") if recipe == part4.DOMAINS else ("names",)
    config = run_config(recipe, f"{arm},seed={seed}", arm=arm, seed=seed, steps=STEPS[-1], variant="moe",
                        flags={"eval-interval": 250, "sample-interval": 0, **flags}, domains=domains,
                        changed=changed)
    n_expert = flags.get("n-expert", 0)
    records = []
    for step in STEPS:
        loss = (final_loss or FINAL_LOSS[arm]) + 0.005 * (seed - 2) + 2.0 * (1 - step / STEPS[-1])
        ms = None if step == 0 else 10.0 * (1 + 0.1 * n_expert) + seed
        record = {"step": step, "train_loss": loss - 0.05, "test_loss": loss, "tokens_per_s": ms and 5000 / ms,
                  "step_ms": ms}
        if len(domains) > 1:
            record.update({f"test_loss/{d}": loss + 0.5 * (k - 1) for k, d in enumerate(domains)})
        if n_expert:
            rate = (collapse or COLLAPSE.get(arm, 0.3)) * (1 + 0.05 * (seed - 2))
            record.update(routing_metrics(rate, n_expert, step))
        records.append(record)
    probes = {"parameters": {"total": 200_000 * max(n_expert, 1), "active": 200_000}}
    if n_expert:
        probes["routing"] = routing_probe(n_expert, domains)
    return write_run(Path(results_dir), config, records, probes)


def write_recipes(results_dir, domain_arms=DOMAIN_ARMS, names_arms=NAMES_ARMS):
    for recipe, arms in ((part4.DOMAINS, domain_arms), (part4.NAMES, names_arms)):
        for arm, flags in arms.items():
            for seed in (1, 2, 3):
                write_moe_run(results_dir, recipe, arm, flags, seed)


def speed_record(x_dense=(1.0, 0.8, 1.1, 1.2, 2.3, 2.5), changed=None):
    """A benchmark record as `benchmarks/moe_speed.py --record` writes it, with these ratios to dense
    (dense, dense on real tokens, the two MoEs, their masked references) and two rounds each."""
    moe4 = {"n_expert": 4, "expert_hidden": 256}
    moe8 = {"n_expert": 8, "expert_top_k": 2, "expert_hidden": 128}
    configs = [("dense", "dense", {"n_expert": 0}), ("dense, real tokens only", "sparse", {"n_expert": 1}),
               ("moe E=4 top-1", "sparse", moe4), ("moe E=8 top-2", "sparse", moe8),
               ("moe E=4 top-1, masked reference", "masked", moe4),
               ("moe E=8 top-2, masked reference", "masked", moe8)]
    return {"benchmark": "moe_speed", "command": "python benchmarks/moe_speed.py --record r.json",
            "data": "../shared/data/names.txt", "padding": 0.55,
            "model": {"n_layer": 4, "n_embd": 64, "n_head": 4},
            "batch_size": 32, "threads": 1, "seed": 3407, "steps": 200, "warmup": 20, "rounds": 2,
            "configs": [{"label": label, "dispatch": dispatch, "settings": settings, "ms_per_step": 10 * x,
                         "round_medians": [10 * x * 0.98, 10 * x * 1.02], "x_dense": x,
                         "x_dense_real": x / x_dense[1]}
                        for (label, dispatch, settings), x in zip(configs, x_dense)],
            "variant": "moe", "code": code("moe", changed), "torch": "2.13.0+cpu", "python": "3.11.7"}


PART4_FIGURES = ["domain-loss", "names-loss", "expert-domain", "nmi-by-arm", "expert-characters",
                 "load-over-training", "balance-over-training", "routing-entropy", "table", "moe-speed"]


@pytest.fixture(scope="module")
def redrawn(tmp_path_factory):
    """`python -m analysis` once over both recipes and a benchmark record, the patch figures left out
    (tested elsewhere): (the results and figures folders, stdout)."""
    root = tmp_path_factory.mktemp("part4")
    write_recipes(root / "results")
    write_json(root / "benchmarks" / "moe_speed.json", speed_record())
    output = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(output):
        patch.setattr(analysis_main, "draw_patches", lambda *args, **kwargs: ([], None))
        assert analysis_main.main(["--results", str(root / "results"), "--benchmarks",
                                   str(root / "benchmarks"), "--figures", str(root / "figures")]) == 0
    return root, output.getvalue()


# -----------------------------------------------------------------------------
# the statistics


def test_nmi_is_zero_when_experts_ignore_the_class():
    independent = np.outer([10, 30, 60], [1, 2, 5])  # every class split over the experts alike
    assert part4.nmi(independent) == pytest.approx(0.0, abs=1e-12)


def test_nmi_is_one_when_each_expert_serves_one_class():
    assert part4.nmi(np.diag([5, 10, 20])) == pytest.approx(1.0)
    # more experts than classes: two experts per class still give the class away entirely
    assert part4.nmi([[7, 0], [3, 0], [0, 4], [0, 9]]) == pytest.approx(1.0)


def test_nmi_by_hand():
    # p = [[1/4, 0], [1/4, 1/2]]: I = 1/4 log 2 + 1/4 log(2/3) + 1/2 log(4/3), H(class) = log 2
    expected = (0.25 * math.log(2) + 0.25 * math.log(2 / 3) + 0.5 * math.log(4 / 3)) / math.log(2)
    assert part4.nmi([[1, 0], [1, 2]]) == pytest.approx(expected)
    assert expected == pytest.approx(0.3113, abs=1e-4)


def test_lift_is_a_class_share_over_the_experts_overall_share():
    counts = np.array([[30, 10], [10, 50]])  # experts x classes
    overall = counts.sum(axis=1) / counts.sum()  # expert 1: 40/100, expert 2: 60/100
    # class 1: 75% to expert 1 (0.75 / 0.4), 25% to expert 2 (0.25 / 0.6); class 2: 1/6 and 5/6
    assert part4.lift(counts, overall) == pytest.approx(np.array([[0.75 / 0.4, (1 / 6) / 0.4],
                                                                  [0.25 / 0.6, (5 / 6) / 0.6]]))


def test_character_classes():
    tokens = ["<start/stop>", "a", "b", "y", "E", "-", "z"]
    assert [part4.character_class(i, t) for i, t in enumerate(tokens)] == [
        "start", "vowel", "consonant", "vowel", "vowel", "other", "consonant"]
    counts, present = part4.class_counts([[1, 2, 3, 4, 5, 6, 7], [0, 1, 0, 1, 0, 1, 0]], tokens)
    assert present == ["start", "vowel", "consonant", "other"]
    assert counts.tolist() == [[1, 2 + 4 + 5, 3 + 7, 6], [0, 2, 0, 1]]


def test_character_counts_add_the_first_letter_and_the_end_as_overlapping_columns():
    counts, n_classes, columns = part4.character_counts(routing_probe(4))
    assert (n_classes, columns) == (3, ["start", "vowel", "consonant", "1st letter", "→ end"])
    layer = counts[0]
    assert layer[:, 0].tolist() == [30, 0, 0, 0]  # the start token, all to expert 1
    assert layer[:, 3].tolist() == [8] * 4  # position 1
    assert layer[:, 4].tolist() == [12] * 4  # target 0
    assert layer[:, :3].sum() == sum(sum(row) for row in routing_probe(4)["layers"][0]["by_input"])


def test_moe_layers_are_the_layers_the_routing_probe_counted(tmp_path):
    moe = load_run(write_moe_run(tmp_path, part4.DOMAINS, "moe-e4", {"n-expert": 4}, 1))
    dense = load_run(write_moe_run(tmp_path, part4.DOMAINS, "dense", {}, 1))
    assert list(part4.moe_layers(moe)) == list(range(N_LAYERS))
    assert list(part4.moe_layers(dense)) == []  # no routing probe: no layer routes


def test_expert_domain_counts_come_from_the_best_models_probe(tmp_path):
    run = load_run(write_moe_run(tmp_path, part4.DOMAINS, "moe-e4", {"n-expert": 4}, 1))
    assert not any("/tokens/" in key for record in run.metrics for key in record)  # the metrics count none
    counts = part4.domain_counts(run)
    assert [c.tolist() for c in counts] == [layer["by_domain"] for layer in run.probes["routing"]["layers"]]
    assert counts[0].shape == (4, 3)  # experts x routing.domains
    assert part4.nmi(counts[0]) == pytest.approx(0.0)  # layer 1 of the fixture: every domain spread alike
    assert part4.nmi(counts[3]) > part4.nmi(counts[1]) > 0


# -----------------------------------------------------------------------------
# headlines


def groups_of(results_dir, recipe=part4.DOMAINS):
    return plots.group_runs(load_recipe_runs(results_dir / recipe), label=lambda c: c["arm"])


def test_headlines_call_a_tie_when_the_seeds_cannot_separate(tmp_path):
    for seed in (1, 2, 3):  # 0.001 apart, seeds 0.005 apart; the same rate of collapse
        write_moe_run(tmp_path, part4.DOMAINS, "dense", {}, seed, final_loss=2.100)
        for arm in ("moe-e4", "moe-e4-thin", "moe-e4-none"):
            write_moe_run(tmp_path, part4.DOMAINS, arm, DOMAIN_ARMS[arm], seed, final_loss=2.101, collapse=1.0)
    groups = groups_of(tmp_path)
    assert part4.matched_headline(groups, list(DOMAIN_ARMS)) == (
        "final test loss: moe-e4 ties dense (same active compute: 2.101 vs 2.100); "
        "moe-e4-thin ties dense (same parameters: 2.101 vs 2.100)")
    assert part4.maxvio_headline(part4.of_arms(groups, part4.BALANCING)).endswith(
        "with the aux loss (a tie with moe-e4-none)")


def test_the_busiest_expert_headline_reports_collapse(tmp_path):
    for arm in part4.BALANCING:
        for seed in (1, 2, 3):
            write_moe_run(tmp_path, part4.DOMAINS, arm, DOMAIN_ARMS[arm], seed)
    headline = part4.busiest_headline(part4.of_arms(groups_of(tmp_path), part4.BALANCING))
    assert headline.startswith("without balancing the busiest expert ends with 100% of its layer's tokens (")
    assert "dead experts); with the aux loss 5" in headline  # 0.3: the last layer's busiest share
    assert headline.endswith("; uniform: 25%")


# -----------------------------------------------------------------------------
# drawing


def test_redraw_draws_every_part4_figure_and_indexes_it(redrawn):
    root, output = redrawn
    for name in PART4_FIGURES:
        for suffix in (".png", ".svg"):
            assert (root / "figures" / "part4" / (name + suffix)).stat().st_size > 1000, name
        assert f"part4/{name}.png" in output
    index = (root / "figures" / "README.md").read_text()
    for name in PART4_FIGURES:
        assert f"- [part4/{name}.png](part4/{name}.png): " in index
    assert "recipe `moe-domains`, runs: dense,seed=1, dense,seed=2, dense,seed=3, dense-wide,seed=1" in index
    assert "recipe `moe-names`, runs: dense,seed=1" in index
    assert "STALE" not in index and "moe-domains` has no finished results" not in index


def test_redraw_is_byte_identical(redrawn, tmp_path):
    root, _ = redrawn
    save(part4.expert_domain(groups_of(root / "results")), tmp_path / "expert-domain")
    save(part4.moe_speed(speed_record()), tmp_path / "moe-speed")
    for name in ("expert-domain", "moe-speed"):
        for suffix in (".png", ".svg"):
            assert (tmp_path / f"{name}{suffix}").read_bytes() == \
                   (root / "figures" / "part4" / f"{name}{suffix}").read_bytes(), name + suffix


def sources(results_dir, benchmarks_dir=None):
    return Sources(Path(results_dir), Path(benchmarks_dir or Path(results_dir) / "no-benchmarks"))


def test_recipes_without_results_are_listed_as_missing(tmp_path):
    drawing = part4.part.draw(sources(tmp_path / "nothing"), tmp_path / "figures")
    assert (drawing.figures, drawing.missing) == ([], [part4.DOMAINS, part4.NAMES, part4.LONG])


def test_a_missing_arm_is_said_and_its_figures_not_drawn(tmp_path, capsys):
    write_recipes(tmp_path / "results", domain_arms={}, names_arms={"moe-e8": {"n-expert": 8}})
    drawing = part4.part.draw(sources(tmp_path / "results"), tmp_path / "figures")
    assert (drawing.figures, drawing.missing) == ([], [part4.DOMAINS, part4.LONG])
    out = capsys.readouterr().out
    assert "part4: names-loss not drawn: no dense baseline to compare with" in out
    assert "part4: expert-characters not drawn: no moe-e4 runs" in out


PATCH_CHANGED = "the code of its patches (01-moe.patch) has changed since it ran"


def test_stale_runs_are_drawn_apart_and_marked(tmp_path):
    write_recipes(tmp_path / "results", names_arms={})
    write_moe_run(tmp_path / "results", part4.DOMAINS, "moe-e4", {"n-expert": 4}, 4, changed="patches")
    groups = groups_of(tmp_path / "results")
    current, stale = part4.of_arms(groups, ["moe-e4"])
    assert (current.stale, [r.config["seed"] for r in current.runs]) == (None, [1, 2, 3])
    assert stale.label == "moe-e4 (stale)" and [r.config["seed"] for r in stale.runs] == [4]
    assert part4.of_arm(groups, "moe-e4") is current  # one-seed figures show current runs
    drawn = part4.domain_loss(groups)
    assert plots.stale_reason(drawn.groups) == PATCH_CHANGED
    assert "(stale)" not in drawn.headline  # the headline speaks for current runs only


def test_the_table_has_no_step_times(redrawn):
    """Step times of training runs on a shared machine would mislead in a figure seen alone."""
    root, _ = redrawn
    drawn = part4.table(groups_of(root / "results"))
    cells = [text.get_text() for text in drawn.fig.axes[0].texts]
    assert cells[:3] == ["arm", "parameters\ntotal / active", "test loss\nall"]
    assert not any("step" in cell or "×" in cell for cell in cells)


# -----------------------------------------------------------------------------
# the step-time figure, from the benchmark's record


def test_moe_speed_draws_the_ratios_of_the_record():
    drawn = part4.moe_speed(speed_record())
    assert drawn.headline == ("a training step of moe E=4 top-1 takes 1.10× dense's time, "
                              "moe E=8 top-2 1.20×; computing every expert and masking, 2.30× and 2.50×")
    [ax] = drawn.fig.axes
    assert [bar.get_width() for bar in ax.patches] == [1.0, 0.8, 1.1, 1.2, 2.3, 2.5]
    assert [tick.get_text() for tick in ax.get_yticklabels()][2] == "moe E=4 top-1"


def test_moe_speed_is_skipped_without_a_record_and_stale_when_the_moe_code_changed(tmp_path, capsys):
    record = tmp_path / "benchmarks" / "moe_speed.json"
    drawing = part4.part.draw(sources(tmp_path / "results", record.parent), tmp_path / "figures")
    assert drawing.skipped == [("part4/moe-speed", f"no benchmark record {record}: "
                                                   f"run `python benchmarks/moe_speed.py --record {record}`")]
    write_json(record, speed_record(changed="patches"))
    [figure] = part4.part.draw(sources(tmp_path / "results", record.parent), tmp_path / "figures").figures
    assert (str(figure.path), figure.stale) == ("part4/moe-speed.png", PATCH_CHANGED)


def test_the_benchmark_records_what_it_measured(moe_speed_smoke):
    """A smoke run (a few steps: the numbers mean nothing; conftest.py's, whose output
    test_benchmarks.py reads) that writes the record the figure reads."""
    record = json.loads(moe_speed_smoke[2].read_text())
    assert [c["label"] for c in record["configs"]] == [
        "dense", "dense, real tokens only", "moe E=4 top-1", "moe E=8 top-2",
        "moe E=4 top-1, masked reference", "moe E=8 top-2, masked reference"]
    dense = record["configs"][0]
    for config in record["configs"]:
        assert len(config["round_medians"]) == 2
        assert config["x_dense"] == pytest.approx(config["ms_per_step"] / dense["ms_per_step"])
    assert (record["steps"], record["rounds"], record["threads"]) == (2, 2, 1)
    assert record["command"].startswith("python benchmarks/moe_speed.py --input ")
    assert record["code"] == code("moe")  # what makes the record stale when the moe code changes
    assert part4.moe_speed(record).headline.startswith("a training step of moe E=4 top-1 takes ")


# -----------------------------------------------------------------------------
# the matched arms trained until they settle (moe-domains-long)


def write_long_runs(results_dir, best_at):
    """Each arm's test loss falls to its floor at step best_at[arm], then rises (overfitting)."""
    floors = {"dense": 1.90, "dense-wide": 1.85, "moe-e4": 1.902, "moe-e4-top2": 1.86, "moe-e8": 1.92}
    for arm, floor in floors.items():
        for seed in (1, 2, 3):
            steps = range(0, 20001, 500)
            losses = [floor + 1.5 * math.exp(-s / 2000) + 1e-4 * max(0, s - best_at[arm]) + 0.002 * (seed - 2)
                      for s in steps]
            metrics = [{"step": s, "train_loss": loss - 0.2, "test_loss": loss, "tokens_per_s": 1000.0,
                        "step_ms": 10.0} for s, loss in zip(steps, losses)]
            config = run_config(part4.LONG, f"{arm},seed={seed}", arm=arm, seed=seed, steps=20000, variant="moe",
                                flags={"eval-interval": 500, **DOMAIN_ARMS.get(arm, {"n-expert": 8})},
                                domains=("arithmetic", "code", "names"))
            write_run(results_dir, config, metrics, {"parameters": {"total": 1000, "active": 1000}})


def test_the_settled_comparison_uses_each_arms_best_and_says_where_it_stopped(tmp_path):
    write_long_runs(tmp_path, {"dense": 9000, "dense-wide": 8000, "moe-e4": 9000, "moe-e4-top2": 7000,
                               "moe-e8": 10000})
    groups = plots.group_runs(load_recipe_runs(tmp_path / part4.LONG), label=part4.arm_name)
    assert part4.best_steps(part4.of_arm(groups, "dense-wide")) == [8000] * 3
    headline = part4.settled_headline(groups)
    assert headline.startswith("Best test loss, dense-wide past its best by step 8,000: dense-wide 1.877")
    assert "moe-e4 1.919 (ties dense)" in headline  # 0.002 above dense, seeds 0.002 apart
    drawn = part4.settled(groups)
    assert drawn.groups and "20,000 steps" in drawn.caption  # the runs' own length


def test_the_settled_headline_names_arms_still_improving_and_an_unsettled_leader(tmp_path):
    write_long_runs(tmp_path, {"dense": 20000, "dense-wide": 8000, "moe-e4": 9000, "moe-e4-top2": 7000,
                               "moe-e8": 10000})
    groups = plots.group_runs(load_recipe_runs(tmp_path / part4.LONG), label=part4.arm_name)
    assert part4.settled_headline(groups).startswith(
        "Best test loss, dense-wide past its best by step 8,000; dense still improving at 20,000: ")
    write_long_runs(tmp_path / "again", {"dense": 9000, "dense-wide": 20000, "moe-e4": 9000,
                                         "moe-e4-top2": 7000, "moe-e8": 10000})
    groups = plots.group_runs(load_recipe_runs(tmp_path / "again" / part4.LONG), label=part4.arm_name)
    assert part4.settled_headline(groups).startswith("Best test loss, not settled: dense-wide still improving")
