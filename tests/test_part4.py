"""Part 4's figures (a mixture of experts) on synthetic run folders written in the documented format
(runs/README.md): the routing statistics they rest on, and the drawing of every figure. Synthetic
results are for tests only; committed figures come from real runs."""

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

import apply
from analysis import __main__ as analysis_main
from analysis import part4, plots
from runs.store import ROOT, file_sha256, load_recipe_runs

SPINE_SHA = file_sha256(ROOT / "upstream" / "makemore.py")
PATCH_SHA = file_sha256(ROOT / "patches" / "01-moe.patch")
MOE_DIGEST = apply.Project(ROOT).code_digest("moe")
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


def routing_metrics(collapse, n_expert, step, domains):
    """A record's moe/l<l>/... keys: load drifting onto expert 1 at the rate `collapse`, faster in
    later layers, and domain d's tokens preferring expert d."""
    record = {}
    for layer in range(N_LAYERS):
        skew = collapse * step / STEPS[-1] * (layer + 1) / N_LAYERS
        weights = np.exp(-skew * np.arange(n_expert) * 2)
        share = weights / weights.sum()
        prefix = f"moe/l{layer}/"
        record.update({f"{prefix}load/e{e}": float(share[e]) for e in range(n_expert)})
        record.update({f"{prefix}cv": float(share.std() / share.mean()), f"{prefix}maxvio": float(share.max() * n_expert - 1),
                       f"{prefix}dead": float((share < 0.01).sum()), f"{prefix}token_entropy": 0.9 - 0.4 * step / 1000,
                       f"{prefix}mean_entropy": 1.0 - skew / 10, f"{prefix}aux_loss": 1.0, f"{prefix}z_loss": 2.0,
                       f"{prefix}drop_rate": 0.0})
        if len(domains) > 1:
            record.update({f"{prefix}tokens/{d}/e{e}": 100.0 * (1 + 3 * (e == i % n_expert) * layer / N_LAYERS)
                           for i, d in enumerate(domains) for e in range(n_expert)})
    return record


def names_routing(n_expert):
    """probes.json's routing of a names model: the start token all to expert 1, vowels mostly to
    expert 2, everything else spread evenly; 8 positions."""
    vocab = ["<start/stop>", *LETTERS]

    def by_input(e):
        return [30 * (e == 0) if i == 0 else (20 if e == 1 else 5) if char in "aeiouy" else 10
                for i, char in enumerate(vocab)]

    layer = {"by_input": [by_input(e) for e in range(n_expert)],
             "by_target": [[12] + [10] * len(LETTERS) for _ in range(n_expert)],
             "by_position": [[30 * (e == 0), 8, 7, 6, 5, 4, 3, 2] for e in range(n_expert)],
             "by_domain": [[sum(by_input(e))] for e in range(n_expert)]}
    return {"tokens": vocab, "domains": ["names"], "layers": [layer] * N_LAYERS}


def write_moe_run(results_dir, recipe, arm, flags, seed, final_loss=None, collapse=None, patch_sha=PATCH_SHA):
    """A finished run folder of a moe recipe as the runner writes it. Seeds 1, 2, 3 end 0.005 below,
    on and above the arm's final loss, and their load piles up 5% slower, as fast, 5% faster."""
    name = f"{arm},seed={seed}"
    directory = Path(results_dir) / recipe / name
    directory.mkdir(parents=True)
    domains = ("arithmetic", "code", "names") if recipe == part4.DOMAINS else ("names",)
    run_flags = {"eval-interval": 250, "sample-interval": 0, **flags}
    argv = ["variants/moe/makemore.py", "-i", ",".join(f"data/{d}.txt" for d in domains), "-o", str(directory),
            "--seed", str(seed), "--max-steps", str(STEPS[-1]), *(f"--{k}={v}" for k, v in run_flags.items())]
    config = {"recipe": recipe, "run": name, "arm": arm, "variant": "moe", "file": "variants/moe/makemore.py",
              "seed": seed, "steps": STEPS[-1], "quick": False, "flags": run_flags, "argv": argv,
              "command": "python " + " ".join(argv),
              "dataset": {"builder": "mixture", "seed": 0, "args": {},
                          "files": [{"domain": d, "path": f"data/{d}.txt", "sha256": "ab" * 32} for d in domains]},
              "code": {"digest": MOE_DIGEST if patch_sha == PATCH_SHA else "0" * 64,
                       "spine": {"path": "upstream/makemore.py", "sha256": SPINE_SHA},
                       "patches": [{"name": "01-moe.patch", "sha256": patch_sha}]},
              "torch": "2.13.0+cpu", "python": "3.11.7", "threads": 1}
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
            record.update(routing_metrics(rate, n_expert, step, domains))
        records.append(record)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    probes = {"samples": {"n": 10, "in_train": 2, "in_test": 1, "new": 7},
              "parameters": {"total": 200_000 * max(n_expert, 1), "active": 200_000}}
    if n_expert:
        probes["routing"] = names_routing(n_expert)
    (directory / "probes.json").write_text(json.dumps(probes))
    summary = {"steps": STEPS[-1], "params": probes["parameters"]["total"], "final_test_loss": records[-1]["test_loss"],
               "best_test_loss": records[-1]["test_loss"], "best_step": STEPS[-1], "step_ms": records[-1]["step_ms"]}
    (directory / "summary.json").write_text(json.dumps(summary))
    return directory


def write_recipes(results_dir, domain_arms=DOMAIN_ARMS, names_arms=NAMES_ARMS):
    for recipe, arms in ((part4.DOMAINS, domain_arms), (part4.NAMES, names_arms)):
        for arm, flags in arms.items():
            for seed in (1, 2, 3):
                write_moe_run(results_dir, recipe, arm, flags, seed)


PART4_FIGURES = ["domain-loss", "expert-domain", "nmi-by-arm", "load-over-training", "balance-over-training",
                 "routing-entropy", "table", "names-loss", "expert-characters"]


@pytest.fixture(scope="module")
def redrawn(tmp_path_factory):
    """`python -m analysis` once over both recipes, the patch figures left out (tested elsewhere):
    (the results and figures folders, stdout)."""
    root = tmp_path_factory.mktemp("part4")
    write_recipes(root / "results")
    output = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(output):
        patch.setattr(analysis_main, "draw_patches", lambda figures_dir: [])
        assert analysis_main.main(["--results", str(root / "results"), "--figures", str(root / "figures")]) == 0
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
    counts, n_classes, columns = part4.character_counts(names_routing(4))
    assert (n_classes, columns) == (3, ["start", "vowel", "consonant", "1st letter", "→ end"])
    layer = counts[0]
    assert layer[:, 0].tolist() == [30, 0, 0, 0]  # the start token, all to expert 1
    assert layer[:, 3].tolist() == [8] * 4  # position 1
    assert layer[:, 4].tolist() == [12] * 4  # target 0
    assert layer[:, :3].sum() == sum(sum(row) for row in names_routing(4)["layers"][0]["by_input"])


def test_step_time_ratio_skips_step_0_and_averages_over_evaluations_and_seeds(tmp_path):
    for seed in (1, 2):
        write_moe_run(tmp_path, part4.DOMAINS, "dense", {}, seed)  # 11 and 12 ms a step
        write_moe_run(tmp_path, part4.DOMAINS, "moe-e4", {"n-expert": 4}, seed)  # 15 and 16 ms
    dense, moe = plots.group_runs(load_recipe_runs(tmp_path / part4.DOMAINS), label=lambda c: c["arm"])
    assert part4.mean_step_ms(dense.runs[0]) == pytest.approx(11.0)  # step 0 has no step time
    assert part4.step_time_ratio(moe, dense) == pytest.approx(15.5 / 11.5)


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
    part4.expert_domain(groups_of(root / "results"), tmp_path)
    for suffix in (".png", ".svg"):
        assert (tmp_path / "part4" / f"expert-domain{suffix}").read_bytes() == \
               (root / "figures" / "part4" / f"expert-domain{suffix}").read_bytes()


def test_recipes_without_results_are_listed_as_missing(tmp_path):
    assert part4.draw(tmp_path / "nothing", tmp_path / "figures") == ([], [part4.DOMAINS, part4.NAMES])


def test_a_missing_arm_is_said_and_its_figures_not_drawn(tmp_path, capsys):
    write_recipes(tmp_path / "results", domain_arms={}, names_arms={"moe-e8": {"n-expert": 8}})
    assert part4.draw(tmp_path / "results", tmp_path / "figures") == ([], [part4.DOMAINS])
    out = capsys.readouterr().out
    assert "part4: names-loss not drawn: no dense baseline to compare with" in out
    assert "part4: expert-characters not drawn: no moe-e4 runs" in out


def test_stale_runs_are_drawn_apart_and_marked(tmp_path):
    write_recipes(tmp_path / "results", names_arms={})
    write_moe_run(tmp_path / "results", part4.DOMAINS, "moe-e4", {"n-expert": 4}, 4, patch_sha="0" * 64)
    groups = groups_of(tmp_path / "results")
    current, stale = part4.of_arms(groups, ["moe-e4"])
    assert (current.stale, [r.config["seed"] for r in current.runs]) == (None, [1, 2, 3])
    assert stale.label == "moe-e4 (stale)" and [r.config["seed"] for r in stale.runs] == [4]
    assert part4.of_arm(groups, "moe-e4") is current  # one-seed figures show current runs
    [figure] = part4.domain_loss(groups, tmp_path / "figures")
    assert figure.stale == "the code of its patches (01-moe.patch) has changed since it ran"
