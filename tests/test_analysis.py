"""The figures side of the analysis, on synthetic run folders written in the documented format
(runs/README.md). Synthetic results are for tests only; committed figures come from real runs."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import apply
from analysis import part3, plots, style
from analysis.__main__ import main
from runs.store import ROOT, file_sha256, load_recipe_runs, load_run, read_samples

SPINE_SHA = file_sha256(ROOT / "upstream" / "makemore.py")
PART3_FIGURES = ["loss-curves", "mlp-vs-transformer", "samples", "attention", "attention-heads", "activations",
                 "gradients", "final-table"]
STEPS = list(range(0, 1001, 100))
SPINE_DIGEST = apply.Project(ROOT).code_digest("spine")
FLOOR = {"bigram": 2.45, "mlp": 2.2, "transformer": 2.05}  # where each type's synthetic test loss levels off


# -----------------------------------------------------------------------------
# fixture runs


def synthetic_losses(model_type, seed):
    """Exponential decay from ln(27) to the type's floor; seeds 1, 2, 3 sit 0.01 below, on, above it."""
    return [FLOOR[model_type] + (3.3 - FLOOR[model_type]) * math.exp(-s / 300) + 0.01 * (seed - 2) for s in STEPS]


def write_run(recipe_dir, model_type, seed, test_losses=None, step_ms=None, spine_sha=SPINE_SHA, probes=True,
              domains=()):
    """A finished run folder of recipe part3-baseline as the runner writes it: one arm per model type."""
    name = f"{model_type},seed={seed}"
    directory = Path(recipe_dir) / name
    directory.mkdir(parents=True)
    test_losses = test_losses or synthetic_losses(model_type, seed)
    steps = STEPS[:len(test_losses)]
    step_ms = step_ms or [None] + [{"bigram": 1.0, "mlp": 4.0, "transformer": 15.0}[model_type]] * (len(steps) - 1)
    flags = {"eval-interval": 100, "sample-interval": 0, "type": model_type,
             **({"learning-rate": 0.01} if model_type == "bigram" else {})}
    argv = ["upstream/makemore.py", "-i", "data/cache/names-1a2b3c4d5e6f/names.txt", "-o", str(directory),
            "--seed", str(seed), "--max-steps", str(steps[-1]), *(f"--{k}={v}" for k, v in flags.items())]
    config = {"recipe": Path(recipe_dir).name, "run": name, "arm": model_type, "variant": "spine",
              "file": "upstream/makemore.py", "seed": seed, "steps": steps[-1], "quick": False, "flags": flags,
              "argv": argv, "command": "python " + " ".join(argv),
              "dataset": {"builder": "names", "seed": 0, "args": {},
                          "files": [{"domain": "names", "path": argv[2], "sha256": "ab" * 32}]},
              "code": {"digest": SPINE_DIGEST if spine_sha == SPINE_SHA else "0" * 64,
                       "spine": {"path": "upstream/makemore.py", "sha256": spine_sha}, "patches": []},
              "torch": "2.13.0+cpu", "python": "3.11.2", "threads": 1}
    records = []
    for i, (step, loss, ms) in enumerate(zip(steps, test_losses, step_ms)):
        record = {"step": step, "train_loss": loss - 0.1 * i / len(steps), "test_loss": loss,
                  "tokens_per_s": None if ms is None else 6000 / ms, "step_ms": ms}
        record.update({f"test_loss/{d}": loss + 0.1 * k for k, d in enumerate(domains)})
        records.append(record)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (directory / "samples.txt").write_text(SAMPLES_TXT)
    counts = {"n": 6, "in_train": 2 + seed % 2, "in_test": 1, "new": 3 - seed % 2}
    if probes:
        (directory / "probes.json").write_text(json.dumps({"samples": counts, **synthetic_probes(model_type)}))
    summary = {"steps": steps[-1], "params": {"bigram": 729, "mlp": 12_000, "transformer": 200_000}[model_type],
               "final_train_loss": records[-1]["train_loss"], "final_test_loss": test_losses[-1],
               "best_test_loss": min(test_losses), "best_step": steps[test_losses.index(min(test_losses))],
               "final_test_loss_by_domain": {}, "best_test_loss_by_domain": {},
               "tokens_per_s": 6000 / step_ms[-1], "step_ms": step_ms[-1], "wall_s": 10.0,
               "samples": counts}
    (directory / "summary.json").write_text(json.dumps(summary))
    return directory


# print_samples' format; one new sample is empty (the model stopped at once)
SAMPLES_TXT = "\n".join(["-" * 80, "2 samples that are in train:", "emma", "ava",
                         "1 samples that are in test:", "zoe",
                         "3 samples that are new:", "kaylen", "", "mariah", "-" * 80, ""])


def causal_maps(n_layers, n_heads, length):
    """Head 0 looks at the previous position, every other head spreads evenly over the past."""
    def head(h):
        return [[(1.0 if k == max(q - 1, 0) else 0.0) if h == 0 else (1 / (q + 1) if k <= q else 0.0)
                 for k in range(length)] for q in range(length)]
    return [[head(h) for h in range(n_heads)] for _ in range(n_layers)]


def histogram_layer(name, kind, saturated):
    edges = [-1 + 0.2 * i for i in range(11)]
    return {"name": name, "kind": kind, "edges": edges, "counts": [5, 3, 2, 1, 1, 1, 1, 2, 3, 5],
            "mean": 0.0, "std": 0.6, "saturated": saturated}


def synthetic_probes(model_type):
    if model_type == "bigram":
        return {}
    if model_type == "mlp":
        layers, weights = [("mlp.1 (tanh)", "tanh")], ["wte.weight", "mlp.0.weight", "mlp.2.weight"]
    else:
        layers = [(f"blocks.{b}.mlp (GELU)", "gelu") for b in range(2)]
        weights = ["wte.weight", "wpe.weight", "blocks.0.attn.c_attn.weight", "blocks.1.mlp.c_fc.weight",
                   "lm_head.weight"]
    probes = {"activations": {
        when: {"layers": [histogram_layer(name, kind, saturated) for name, kind in layers],
               "grads": [{"name": w, "grad_std": 0.01, "data_std": 0.1 * (i + 1), "ratio": 0.1 / (i + 1) / scale}
                         for i, w in enumerate(weights)],
               "loss": 3.29 if when == "init" else 2.1}
        for when, saturated, scale in (("init", 0.01, 1), ("trained", 0.2, 10))}}
    if model_type == "transformer":
        texts = ["emma", "olivia"]
        probes["attention"] = {"texts": texts, "tokens": [[".", *t] for t in texts],
                               "maps": [causal_maps(2, 2, len(t) + 1) for t in texts]}
    return probes


@pytest.fixture
def recipe_dir(tmp_path):
    """part3-baseline with every type trained for seeds 1 to 3."""
    directory = tmp_path / "results" / part3.RECIPE
    for model_type in ("bigram", "mlp", "transformer"):
        for seed in (1, 2, 3):
            write_run(directory, model_type, seed)
    return directory


@pytest.fixture(scope="module")
def redrawn(tmp_path_factory):
    """`python -m analysis` once over a fixture recipe: (its folder, stdout, the modules it imported)."""
    root = tmp_path_factory.mktemp("redraw")
    for model_type in ("bigram", "mlp", "transformer"):
        for seed in (1, 2, 3):
            write_run(root / "results" / part3.RECIPE, model_type, seed)
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "analysis", "--results", str(root / "results"),
                             "--figures", str(root / "figures")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    return root, result.stdout, imported


# -----------------------------------------------------------------------------
# grouping and curves


def test_runs_that_differ_only_in_seed_form_one_group(recipe_dir):
    groups = plots.group_runs(load_recipe_runs(recipe_dir))
    assert [g.label for g in groups] == ["bigram", "mlp", "transformer"]  # the recipe's arm names
    assert [[r.config["seed"] for r in g.runs] for g in groups] == [[1, 2, 3]] * 3
    assert not any(g.stale for g in groups)


def test_labels_name_the_variant_and_the_flags_that_differ(recipe_dir):
    configs = [load_run(recipe_dir / name).config for name in ("mlp,seed=1", "transformer,seed=1")]
    moe = json.loads(json.dumps(configs[1]))
    moe.update(variant="moe", flags={**moe["flags"], "n-expert": 4})
    assert plots.distinguishing_labels([*configs, moe], ["", "", ""]) == [
        "spine mlp", "spine transformer", "moe transformer n-expert=4"]


def test_band_is_the_mean_and_range_over_seeds(tmp_path):
    recipe = tmp_path / "part3-baseline"
    for seed, losses in ((1, [3.3, 2.5, 2.1]), (2, [3.3, 2.7, 2.4]), (3, [3.3, 2.6, 2.0])):
        write_run(recipe, "mlp", seed, test_losses=losses, step_ms=[None, 10.0, 20.0])
    [group] = plots.group_runs(load_recipe_runs(recipe))
    curve = plots.band(group, "test_loss")
    assert curve.x.tolist() == [0, 100, 200]
    assert curve.mean.tolist() == pytest.approx([3.3, 2.6, 6.5 / 3])
    assert curve.low.tolist() == pytest.approx([3.3, 2.5, 2.0])
    assert curve.high.tolist() == pytest.approx([3.3, 2.7, 2.4])
    # 100 steps at 10 ms, then 100 at 20 ms
    assert plots.band(group, "test_loss", x="seconds").x.tolist() == pytest.approx([0.0, 1.0, 3.0])


def test_stale_runs_are_marked_and_never_averaged_with_current_ones(recipe_dir):
    write_run(recipe_dir, "mlp", 4, test_losses=[9.0] * len(STEPS), spine_sha="0" * 64)
    groups = plots.group_runs(load_recipe_runs(recipe_dir))
    current, stale = [g for g in groups if "mlp" in g.label]
    assert (current.label, current.stale) == ("mlp", None)
    assert stale.label == "mlp (stale)" and "spine has changed" in stale.stale
    assert [r.config["seed"] for r in stale.runs] == [4]
    assert plots.band(current, "test_loss").high.max() < 9.0  # the stale run's 9.0 is in no current curve


def test_a_figure_with_stale_runs_says_so_in_the_index(tmp_path, capsys):
    recipe = tmp_path / "results" / part3.RECIPE
    for seed in (1, 2, 3):
        write_run(recipe, "mlp", seed, probes=False)
    write_run(recipe, "mlp", 4, spine_sha="0" * 64, probes=False)
    figures, _ = part3.draw(recipe.parent, tmp_path / "direct")
    assert [f.stale for f in figures] == ["the spine has changed since it ran"] * len(figures)
    figures_dir = tmp_path / "figures"
    assert main(["--results", str(recipe.parent), "--figures", str(figures_dir)]) == 0
    lines = (figures_dir / "README.md").read_text().splitlines()
    curves_line = next(line for line in lines if line.startswith("- [part3/loss-curves.png]"))
    assert "STALE: the spine has changed since it ran" in curves_line
    assert "[STALE" in capsys.readouterr().out


def test_read_samples_keeps_the_groups_and_empty_samples(recipe_dir):
    samples = read_samples(recipe_dir / "mlp,seed=1")
    assert samples == {"in train": ["emma", "ava"], "in test": ["zoe"], "new": ["kaylen", "", "mariah"]}


# -----------------------------------------------------------------------------
# the commands


def test_redraw_draws_every_part3_figure_and_indexes_it(redrawn):
    root, output, _ = redrawn
    for name in PART3_FIGURES:
        for suffix in (".png", ".svg"):
            assert (root / "figures" / "part3" / (name + suffix)).stat().st_size > 1000
        assert f"part3/{name}.png" in output
    index = (root / "figures" / "README.md").read_text()
    for name in PART3_FIGURES:
        assert f"- [part3/{name}.png](part3/{name}.png): " in index
    assert "recipe `part3-baseline`, runs: bigram,seed=1, bigram,seed=2, bigram,seed=3, mlp,seed=1" in index
    assert "STALE" not in index and "`part3-baseline` has no finished results" not in index


def test_redraw_is_byte_identical(redrawn, tmp_path):
    """Lines and bands, heatmaps (embedded images) and text tables: one figure of each, drawn again."""
    root, _, _ = redrawn
    groups = part3.model_groups(load_recipe_runs(root / "results" / part3.RECIPE))
    for draw_figure in (part3.loss_curves, part3.attention, part3.samples):
        draw_figure(groups, tmp_path)
    for name in ("loss-curves", "attention", "samples"):
        for suffix in (".png", ".svg"):
            assert (tmp_path / "part3" / (name + suffix)).read_bytes() == \
                   (root / "figures" / "part3" / (name + suffix)).read_bytes(), name + suffix


def test_save_is_deterministic(tmp_path):
    for stem in ("a", "b"):
        fig, ax = style.figure()
        ax.plot([0, 1], [2, 3], label="line")
        ax.legend()
        style.save(fig, tmp_path / stem)
    for suffix in (".png", ".svg"):
        assert (tmp_path / f"a{suffix}").read_bytes() == (tmp_path / f"b{suffix}").read_bytes()
    # no version or date stamp: a matplotlib update or another day changes no file
    assert b"Software" not in (tmp_path / "a.png").read_bytes()
    assert b"<dc:date>" not in (tmp_path / "a.svg").read_bytes()


def test_a_recipe_without_results_is_listed_as_not_drawn(tmp_path, capsys):
    assert main(["--results", str(tmp_path / "empty"), "--figures", str(tmp_path / "figures")]) == 0
    index = (tmp_path / "figures" / "README.md").read_text()
    assert "## Not drawn yet" in index
    assert "`part3-baseline` has no finished results: run `python -m runs part3-baseline`" in index
    assert not (tmp_path / "figures" / "part3").exists() or not any((tmp_path / "figures" / "part3").iterdir())
    assert "python -m runs part3-baseline" in capsys.readouterr().out


def test_missing_probes_skip_only_the_probe_figures(tmp_path, capsys):
    recipe = tmp_path / "results" / part3.RECIPE
    for model_type in ("bigram", "mlp", "transformer"):
        write_run(recipe, model_type, 1, probes=False)
    figures, missing = part3.draw(tmp_path / "results", tmp_path / "figures")
    assert missing == []
    assert [f.path.stem for f in figures] == ["loss-curves", "mlp-vs-transformer", "samples", "final-table"]
    assert "attention not drawn: transformer,seed=1 has no 'attention' probe" in capsys.readouterr().out


def test_compare_on_a_recipe_dir_writes_png_and_svg(tmp_path, capsys):
    for seed in (1, 2):
        write_run(tmp_path / "recipe", "mlp", seed, domains=("names", "sums"))
    write_run(tmp_path / "recipe", "transformer", 1, domains=("names", "sums"))
    assert main(["compare", str(tmp_path / "recipe"), "-o", str(tmp_path / "out" / "cmp")]) == 0
    assert (tmp_path / "out" / "cmp.png").is_file() and (tmp_path / "out" / "cmp.svg").is_file()
    assert capsys.readouterr().out.split() == [str(tmp_path / "out" / "cmp.png"), str(tmp_path / "out" / "cmp.svg")]


def test_compare_on_a_bad_path_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "analysis", "compare", str(tmp_path / "nowhere")], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is neither a run folder" in result.stderr
    assert result.stdout == ""


def test_drawing_does_not_import_torch(redrawn):
    _, _, imported = redrawn
    assert "matplotlib" in imported  # the import log was read
    assert "torch" not in imported  # torch takes seconds to import, and drawing needs none of it


def test_index_captions_are_literal_markdown(tmp_path):
    from analysis.index import Figure, write_index

    figure = Figure(path=Path("patches/01-x/hunk-1.html"), caption="hunk 1: Block.__init__ (+2 *new*)",
                    source="patches/01-x.patch")
    text = write_index([figure], tmp_path, missing=[]).read_text()
    assert r"Block.\_\_init\_\_ (+2 \*new\*)" in text
