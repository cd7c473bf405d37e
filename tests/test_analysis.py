"""The figures side of the analysis: the Part driver, the redraw command, grouping, curves and
compare, on synthetic run folders written by tests/support.py (the committed results format)."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.text import Annotation

import apply
from analysis import __main__ as analysis_main
from analysis import part3, plots, style
from analysis.__main__ import main
from analysis.parts import Drawn, Part, Skip, Sources
from runs import runner
from runs.store import ROOT, load_recipe_runs, load_run, read_samples, write_json
from support import code, run_config, write_run

PART3_FIGURES = ["loss-curves", "mlp-vs-transformer", "samples", "attention", "attention-heads", "activations",
                 "gradients", "final-table"]
STEPS = list(range(0, 1001, 100))
FLOOR = {"bigram": 2.45, "mlp": 2.2, "transformer": 2.05}  # where each type's synthetic test loss levels off
PARAMS = {"bigram": 729, "mlp": 12_000, "transformer": 200_000}


# -----------------------------------------------------------------------------
# fixture runs


def synthetic_losses(model_type, seed):
    """Exponential decay from ln(27) to the type's floor; seeds 1, 2, 3 sit 0.01 below, on, above it."""
    return [FLOOR[model_type] + (3.3 - FLOOR[model_type]) * math.exp(-s / 300) + 0.01 * (seed - 2) for s in STEPS]


def write_part3_run(results_dir, model_type, seed, test_losses=None, step_ms=None, changed=None, probes=True,
                    recipe=part3.RECIPE, domains=("names",), quick=False):
    """A finished run of recipe part3-baseline: one arm per model type. changed: see support.run_config."""
    test_losses = test_losses or synthetic_losses(model_type, seed)
    steps = STEPS[:len(test_losses)]
    step_ms = step_ms or [None] + [{"bigram": 1.0, "mlp": 4.0, "transformer": 15.0}[model_type]] * (len(steps) - 1)
    flags = {"eval-interval": 100, "sample-interval": 0, "type": model_type,
             **({"learning-rate": 0.01} if model_type == "bigram" else {})}
    config = run_config(recipe, f"{model_type},seed={seed}", arm=model_type, seed=seed, steps=steps[-1],
                        flags=flags, domains=domains, quick=quick, changed=changed)
    records = []
    for i, (step, loss, ms) in enumerate(zip(steps, test_losses, step_ms)):
        record = {"step": step, "train_loss": loss - 0.1 * i / len(steps), "test_loss": loss,
                  "tokens_per_s": None if ms is None else 6000 / ms, "step_ms": ms}
        if len(domains) > 1:
            record.update({f"test_loss/{d}": loss + 0.1 * k for k, d in enumerate(domains)})
        records.append(record)
    measured = {"parameters": {"total": PARAMS[model_type], "active": PARAMS[model_type]},
                **(synthetic_probes(model_type) if probes else {})}
    return write_run(Path(results_dir), config, records, measured, samples=samples_of(seed))


def samples_of(seed):
    """Odd seeds have one more sample in the training set and one fewer new one; seed 2 has an
    empty new sample (the model stopped at once)."""
    return {"in train": ["emma", "ava", *(["mia"] if seed % 2 else [])], "in test": ["zoe"],
            "new": ["kaylen", "", *([] if seed % 2 else ["mariah"])]}


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


PATCH_FIXTURES = ROOT / "tests" / "fixtures" / "patches"


def project(root, patches):
    """A project root: the fixture spine, pinned, and a series of the given {name: text} patches."""
    (root / "upstream").mkdir(parents=True)
    shutil.copy(PATCH_FIXTURES / "makemore.py", root / "upstream" / "makemore.py")
    apply.Project(root).pin()
    (root / "patches").mkdir()
    for name, text in patches.items():
        (root / "patches" / name).write_text(text)
    (root / "patches" / "series").write_text("".join(f"{name}\n" for name in patches))
    return root


@pytest.fixture(scope="module")
def no_patches(tmp_path_factory):
    """A project with an empty series: for redraws whose test is not about the patch figures (the
    lab's own take seconds to draw)."""
    return project(tmp_path_factory.mktemp("project"), {})


def redraw(results_dir, figures_dir, root):
    return analysis_main.redraw(sources(results_dir), figures_dir, root=root)


def write_part3_results(results_dir):
    """part3-baseline with every type trained for seeds 1 to 3."""
    for model_type in ("bigram", "mlp", "transformer"):
        for seed in (1, 2, 3):
            write_part3_run(results_dir, model_type, seed)
    return results_dir


@pytest.fixture
def results(tmp_path):
    """part3-baseline with every type trained for seeds 1 to 3: the results folder."""
    return write_part3_results(tmp_path / "results")


@pytest.fixture(scope="module")
def drawn(tmp_path_factory, no_patches):
    """The figures folder a redraw of those results leaves, drawn once for the tests that start
    from one: each takes a copy (drawn_into), since a redraw takes seconds."""
    root = tmp_path_factory.mktemp("drawn")
    assert redraw(write_part3_results(root / "results"), root / "figures", no_patches) == 0
    return root / "figures"


def drawn_into(drawn, tmp_path):
    """tmp_path/figures: a copy of the drawn figures folder, as if this test had redrawn it."""
    return Path(shutil.copytree(drawn, tmp_path / "figures", symlinks=True))


def sources(results_dir, benchmarks_dir=None):
    return Sources(Path(results_dir), Path(benchmarks_dir or Path(results_dir) / "no-benchmarks"))


def groups_of(results_dir):
    return plots.group_runs(load_recipe_runs(Path(results_dir) / part3.RECIPE), label=part3.part.label)


@pytest.fixture(scope="module")
def redrawn(tmp_path_factory):
    """`python -m analysis` once over a fixture recipe: (its folder, stdout, the modules it imported)."""
    root = tmp_path_factory.mktemp("redraw")
    write_part3_results(root / "results")
    # the lab's patch figures as last drawn: the redraw keeps them (rendering all would take minutes)
    shutil.copytree(ROOT / "analysis" / "figures" / "patches", root / "figures" / "patches")
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "analysis", "--results", str(root / "results"),
                             "--benchmarks", str(root / "benchmarks"), "--figures", str(root / "figures")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    return root, result.stdout, imported


# -----------------------------------------------------------------------------
# the support helper writes what the runner would


def test_the_support_helper_summarizes_a_run_as_the_runner_does(results):
    directory = results / part3.RECIPE / "mlp,seed=1"
    write_json(directory / runner.STATE_FILE, {"wall_s": 10.0})
    assert runner.summarize(directory) == json.loads((directory / "summary.json").read_text())


def test_read_samples_keeps_the_groups_and_empty_samples(results):
    samples = read_samples(results / part3.RECIPE / "mlp,seed=2")
    assert samples == {"in train": ["emma", "ava"], "in test": ["zoe"], "new": ["kaylen", "", "mariah"]}


# -----------------------------------------------------------------------------
# grouping and curves


def test_runs_that_differ_only_in_seed_form_one_group(results):
    groups = plots.group_runs(load_recipe_runs(results / part3.RECIPE))
    assert [g.label for g in groups] == ["bigram", "mlp", "transformer"]  # the recipe's arm names
    assert [[r.config["seed"] for r in g.runs] for g in groups] == [[1, 2, 3]] * 3
    assert not any(g.stale for g in groups)


def test_labels_name_the_variant_and_the_flags_that_differ(results):
    configs = [load_run(results / part3.RECIPE / run).config for run in ("mlp,seed=1", "transformer,seed=1")]
    moe = json.loads(json.dumps(configs[1]))
    moe.update(variant="moe", flags={**moe["flags"], "n-expert": 4})
    assert plots.distinguishing_labels([*configs, moe], ["", "", ""]) == [
        "spine mlp", "spine transformer", "moe transformer n-expert=4"]


def test_labels_tell_quick_from_full_runs_not_by_their_evaluation_interval():
    def config(arm, quick):
        steps, interval = (200, 20) if quick else (3000, 250)
        return run_config("moe-names", f"{arm},seed=1", arm=arm, seed=1, steps=steps, quick=quick, variant="moe",
                          flags={"eval-interval": interval, "n-expert": 4})
    configs = [config(arm, quick) for quick in (True, False) for arm in ("moe-e4", "moe-e8")]
    assert plots.distinguishing_labels(configs, [None] * 4) == [
        "moe-e4 quick", "moe-e8 quick", "moe-e4 full", "moe-e8 full"]
    longer = [config("moe-e4", False), {**config("moe-e4", False), "steps": 6000}]
    assert plots.distinguishing_labels(longer, [None] * 2) == ["3,000 steps", "6,000 steps"]


def test_band_is_the_mean_and_range_over_seeds(tmp_path):
    for seed, losses in ((1, [3.3, 2.5, 2.1]), (2, [3.3, 2.7, 2.4]), (3, [3.3, 2.6, 2.0])):
        write_part3_run(tmp_path, "mlp", seed, test_losses=losses, step_ms=[None, 10.0, 20.0])
    [group] = groups_of(tmp_path)
    curve = plots.band(group, "test_loss")
    assert curve.x.tolist() == [0, 100, 200]
    assert curve.mean.tolist() == pytest.approx([3.3, 2.6, 6.5 / 3])
    assert curve.low.tolist() == pytest.approx([3.3, 2.5, 2.0])
    assert curve.high.tolist() == pytest.approx([3.3, 2.7, 2.4])
    # 100 steps at 10 ms, then 100 at 20 ms
    assert plots.band(group, "test_loss", x="seconds").x.tolist() == pytest.approx([0.0, 1.0, 3.0])


def test_stale_runs_are_marked_and_never_averaged_with_current_ones(results):
    write_part3_run(results, "mlp", 4, test_losses=[9.0] * len(STEPS), changed="spine")
    groups = plots.group_runs(load_recipe_runs(results / part3.RECIPE))
    current, stale = [g for g in groups if "mlp" in g.label]
    assert (current.label, current.stale) == ("mlp", None)
    assert stale.label == "mlp (stale)" and "spine has changed" in stale.stale
    assert [r.config["seed"] for r in stale.runs] == [4]
    assert plots.band(current, "test_loss").high.max() < 9.0  # the stale run's 9.0 is in no current curve


def test_a_stale_group_without_a_current_twin_keeps_its_name(tmp_path):
    """The figure's stale note says it once; "(stale)" after every name would only lengthen the headline."""
    for seed in (1, 2):
        write_part3_run(tmp_path, "mlp", seed, changed="spine")
    [group] = groups_of(tmp_path)
    assert group.stale and (group.label, group.legend) == ("MLP", "MLP (2 seeds)")


def test_a_figure_with_stale_runs_says_so_in_the_index(tmp_path, capsys, no_patches):
    for seed in (1, 2, 3):
        write_part3_run(tmp_path / "results", "mlp", seed, probes=False)
    write_part3_run(tmp_path / "results", "mlp", 4, changed="spine", probes=False)
    drawing = part3.part.draw(sources(tmp_path / "results"), tmp_path / "direct")
    assert [f.stale for f in drawing.figures] == ["the spine has changed since it ran"] * len(drawing.figures)
    figures_dir = tmp_path / "figures"
    assert redraw(tmp_path / "results", figures_dir, no_patches) == 0
    lines = (figures_dir / "README.md").read_text().splitlines()
    curves_line = next(line for line in lines if line.startswith("- [part3/loss-curves.png]"))
    assert "STALE: the spine has changed since it ran" in curves_line
    assert "[STALE" in capsys.readouterr().out


# -----------------------------------------------------------------------------
# the stale note


def test_the_stale_note_covers_neither_data_nor_legend_and_leaves_the_headline_alone():
    headline = "a headline long enough to take two lines at the width of a blog column, or so"
    drawn = {}
    for stale in (None, "the code of its patches (01-moe.patch) has changed since it ran"):
        fig, ax = style.figure(height=3.5)
        ax.plot([0, 1], [0, 1], label="a line with a legend entry")
        fig.legend(loc="outside lower center")
        style.title(fig, headline, stale)
        fig.canvas.draw()
        drawn[stale] = fig
    fig = drawn["the code of its patches (01-moe.patch) has changed since it ran"]
    [note] = [artist for artist in fig.artists if isinstance(artist, Annotation)]
    assert note.get_text().replace("\n", " ") == \
        "Stale results: the code of its patches (01-moe.patch) has changed since it ran"
    assert note.get_color() == style.STALE_RED
    renderer = fig.canvas.get_renderer()
    box = note.get_window_extent(renderer)
    for other in (fig.axes[0], fig.legends[0]):
        assert not box.overlaps(other.get_window_extent(renderer)), other
    assert fig.get_suptitle().strip() == drawn[None].get_suptitle()  # the same headline lines, and no more


# -----------------------------------------------------------------------------
# a Part: figures declared once, drawn by one driver


def test_a_part_draws_what_its_figures_return_and_says_what_they_skip(results, tmp_path, capsys):
    demo = Part("demo", label=part3.part.label)

    @demo.figure(part3.RECIPE)
    def mlp_curve(groups):
        mlp = part3.of_type(groups, "mlp")
        fig, ax = style.figure()
        plots.draw_band(ax, mlp, "test_loss")
        return Drawn(fig, "the mlp", "The MLP's test loss.", [mlp])

    @demo.figure(part3.RECIPE)
    def nothing_yet(groups):
        return Skip("no such runs")

    @demo.figure("never-trained")
    def needs_runs(groups):
        raise AssertionError("not called without runs")

    @demo.figure(record="speed")
    def speed(record):
        fig, _ = style.figure()
        return Drawn(fig, f"{record['ratio']}x", "From a record.")

    drawing = demo.draw(sources(results, tmp_path / "benchmarks"), tmp_path / "figures")
    assert [str(f.path) for f in drawing.figures] == ["demo/mlp-curve.png"]
    assert (tmp_path / "figures" / "demo" / "mlp-curve.svg").is_file()
    [figure] = drawing.figures
    assert (figure.recipe, figure.stale) == ("part3-baseline", None)
    assert figure.runs == ["mlp,seed=1", "mlp,seed=2", "mlp,seed=3"]
    assert drawing.missing == ["never-trained"]
    assert [what for what, _ in drawing.skipped] == ["demo/nothing-yet", "demo/speed"]
    out = capsys.readouterr().out
    assert "demo: nothing-yet not drawn: no such runs" in out
    assert "demo: speed not drawn: no benchmark record " in out and "benchmarks/speed.py --record" in out

    record = tmp_path / "benchmarks" / "speed.json"
    write_json(record, {"ratio": 1.5, "variant": "spine", "code": code("spine")})
    [_, drawn] = demo.draw(sources(results, record.parent), tmp_path / "again").figures
    assert (str(drawn.path), drawn.recipe, drawn.stale) == ("demo/speed.png", None, None)
    assert drawn.source == str(record)
    write_json(record, {"ratio": 1.5, "variant": "spine", "code": code("spine", changed="spine")})
    [_, drawn] = demo.draw(sources(results, record.parent), tmp_path / "stale").figures
    assert drawn.stale == "the spine has changed since it ran"


def test_missing_probes_skip_only_the_probe_figures(tmp_path, capsys):
    for model_type in ("bigram", "mlp", "transformer"):
        write_part3_run(tmp_path, model_type, 1, probes=False)
    drawing = part3.part.draw(sources(tmp_path), tmp_path / "figures")
    assert drawing.missing == []
    assert [f.path.stem for f in drawing.figures] == [
        "loss-curves", "mlp-vs-transformer", "samples", "final-table"]
    assert "attention not drawn: transformer,seed=1 has no 'attention' probe" in capsys.readouterr().out
    assert ("part3/activations", "mlp,seed=1 has no 'activations' probe; "
                                 "transformer,seed=1 has no 'activations' probe") in drawing.skipped


# -----------------------------------------------------------------------------
# the redraw command


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
    assert "- `part4/moe-speed`: no benchmark record " in index


def test_redraw_is_byte_identical(redrawn, tmp_path):
    """Lines and bands, heatmaps (embedded images) and text tables: one figure of each, drawn again."""
    root, _, _ = redrawn
    groups = groups_of(root / "results")
    for draw_figure in (part3.loss_curves, part3.attention, part3.samples):
        stem = draw_figure.__name__.replace("_", "-")
        analysis_parts_save(draw_figure(groups), tmp_path / stem)
        for suffix in (".png", ".svg"):
            assert (tmp_path / (stem + suffix)).read_bytes() == \
                   (root / "figures" / "part3" / (stem + suffix)).read_bytes(), stem + suffix


def analysis_parts_save(drawn, stem):
    from analysis.parts import save
    return save(drawn, stem)


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


def test_a_recipe_without_results_is_listed_as_not_drawn(tmp_path, capsys, no_patches):
    assert redraw(tmp_path / "empty", tmp_path / "figures", no_patches) == 0
    index = (tmp_path / "figures" / "README.md").read_text()
    assert "## Not drawn yet" in index
    assert "`part3-baseline` has no finished results: run `python -m runs part3-baseline`" in index
    assert not (tmp_path / "figures" / "part3").exists() or not any((tmp_path / "figures" / "part3").iterdir())
    assert "python -m runs part3-baseline" in capsys.readouterr().out


def test_a_redraw_replaces_its_figures_and_keeps_notes_written_by_hand(results, tmp_path, no_patches):
    figures_dir = tmp_path / "figures"
    for path in ("part3/README.md", "part3/gone.png", "part3/gone.svg", "patches/07/a.html", "other/x.png"):
        (figures_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (figures_dir / path).write_text("old")
    assert redraw(results, figures_dir, no_patches) == 0
    assert (figures_dir / "part3" / "README.md").read_text() == "old"  # a post's findings, written by hand
    assert (figures_dir / "other" / "x.png").read_text() == "old"  # no part's folder: not the redraw's
    assert not any((figures_dir / "part3" / gone).exists() for gone in ("gone.png", "gone.svg"))
    assert not (figures_dir / "patches" / "07").exists()
    assert (figures_dir / "part3" / "loss-curves.png").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_a_redraw_that_fails_changes_nothing(results, tmp_path, monkeypatch, no_patches, drawn):
    figures_dir = drawn_into(drawn, tmp_path)
    before = {p: p.read_bytes() for p in figures_dir.rglob("*") if p.is_file()}
    broken = Part("part3", label=part3.part.label)

    @broken.figure(part3.RECIPE)
    def loss_curves(groups):
        fig, _ = style.figure()
        return Drawn(fig, "drawn, but not kept", "", groups)

    @broken.figure(part3.RECIPE)
    def fails(groups):
        raise RuntimeError("a bug in a figure function")

    monkeypatch.setattr(analysis_main, "PARTS", [broken])
    with pytest.raises(RuntimeError):
        redraw(results, figures_dir, no_patches)
    assert {p: p.read_bytes() for p in figures_dir.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def broken_series(root):
    """A project whose only patch no longer applies: its removed line is not in the spine."""
    patch = (PATCH_FIXTURES / "01-scale.patch").read_text()
    patch = patch.replace("-        self.scale = 1", "-        self.scale = 3")
    return project(root, {"01-scale.patch": patch})


def test_a_series_that_does_not_apply_is_one_line_and_the_results_are_still_drawn(results, tmp_path, capsys):
    figures_dir = tmp_path / "figures"
    (figures_dir / "patches" / "01-scale").mkdir(parents=True)
    (figures_dir / "patches" / "01-scale" / "patch.html").write_text("the last good drawing")
    code_ = analysis_main.redraw(sources(results), figures_dir, root=broken_series(tmp_path / "project"))
    assert code_ == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: patch figures not drawn: ")
    assert "01-scale.patch" in err
    assert (figures_dir / "part3" / "loss-curves.png").is_file()  # results that need no patch
    assert (figures_dir / "patches" / "01-scale" / "patch.html").read_text() == "the last good drawing"
    index = (figures_dir / "README.md").read_text()
    assert "- `patches`: not redrawn, the files there are older: " in index


def test_the_diffs_command_redraws_only_the_patch_figures_all_or_nothing(tmp_path, capsys):
    figures_dir = tmp_path / "figures"
    (figures_dir / "patches").mkdir(parents=True)
    (figures_dir / "patches" / "gone.html").write_text("old")
    (figures_dir / "README.md").write_text("the index")
    assert analysis_main.redraw_patches(figures_dir, root=broken_series(tmp_path / "broken")) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert (figures_dir / "patches" / "gone.html").read_text() == "old"
    good = project(tmp_path / "good", {"01-scale.patch": (PATCH_FIXTURES / "01-scale.patch").read_text()})
    assert analysis_main.redraw_patches(figures_dir, root=good) == 0
    assert (figures_dir / "patches" / "01-scale" / "hunk-1.png").is_file()
    assert not (figures_dir / "patches" / "gone.html").exists()
    assert (figures_dir / "README.md").read_text() == "the index"  # left as is


def test_a_redraw_renders_only_the_patch_figures_that_changed(tmp_path, monkeypatch):
    """A patch figure's key is what it shows and the code that draws it: drawn again with nothing
    changed, no figure is rendered (the last drawing's files are copied through the staging
    folder); with one hunk edited, only that hunk's figure; with files changed by hand, theirs;
    with other drawing code or --redraw-all, every one."""
    from analysis import diffs

    rendered, render = [], diffs.render_page

    def counted(page, out_dir, stem):
        rendered.append(f"{out_dir.name}/{stem}")
        render(page, out_dir, stem)

    monkeypatch.setattr(diffs, "render_page", counted)
    patches = {name: (PATCH_FIXTURES / name).read_text() for name in ("01-scale.patch", "02-flush.patch")}
    root = project(tmp_path / "project", patches)
    figures_dir = tmp_path / "figures"

    def redraw_patches(**options):
        rendered.clear()
        assert analysis_main.redraw_patches(figures_dir, root=root, **options) == 0
        return list(rendered), {path.relative_to(figures_dir).as_posix(): path.read_bytes()
                                for path in figures_dir.rglob("*") if path.is_file()}

    everything = [f"{patch}/{stem}" for patch in ("01-scale", "02-flush") for stem in ("patch", "hunk-1", "hunk-2")]
    drawn, first = redraw_patches()
    assert drawn == everything
    assert list(json.loads(first["patches/manifest.json"])["figures"]) == everything

    drawn, second = redraw_patches()
    assert drawn == [] and second == first

    # one line of hunk 2 edited, its line counts kept: the overview and the other hunks show the same
    (root / "patches" / "01-scale.patch").write_text(
        patches["01-scale.patch"].replace("+    return model.eval()", "+    return model.train()"))
    drawn, third = redraw_patches()
    assert drawn == ["01-scale/hunk-2"]
    changed = {path for path in first if first[path] != third[path]}
    assert changed == {f"patches/01-scale/hunk-2.{kind}" for kind in diffs.FORMATS} | {"patches/manifest.json"}

    (figures_dir / "patches" / "02-flush" / "hunk-1.png").write_bytes(b"not the drawing")
    assert redraw_patches()[0] == ["02-flush/hunk-1"]

    def fake(page, out_dir, stem):  # other drawing code: only which figures are rendered counts
        rendered.append(f"{out_dir.name}/{stem}")
        for kind in diffs.FORMATS:
            (out_dir / f"{stem}.{kind}").write_text(kind)

    monkeypatch.setattr(diffs, "render_page", fake)
    assert redraw_patches(redraw_all=True)[0] == everything
    assert redraw_patches()[0] == []
    monkeypatch.setattr(diffs, "code_version", lambda: "another way to draw")
    assert redraw_patches()[0] == everything


def test_compare_on_a_recipe_dir_writes_png_and_svg(tmp_path, capsys):
    for seed in (1, 2):
        write_part3_run(tmp_path, "mlp", seed, recipe="recipe", domains=("names", "sums"))
    write_part3_run(tmp_path, "transformer", 1, recipe="recipe", domains=("names", "sums"))
    assert main(["compare", str(tmp_path / "recipe"), "-o", str(tmp_path / "out" / "cmp")]) == 0
    assert (tmp_path / "out" / "cmp.png").is_file() and (tmp_path / "out" / "cmp.svg").is_file()
    assert capsys.readouterr().out.split() == [str(tmp_path / "out" / "cmp.png"), str(tmp_path / "out" / "cmp.svg")]


def test_compare_ranks_only_runs_that_stop_at_the_same_step_and_names_a_tie(tmp_path):
    for seed in (1, 2, 3):
        write_part3_run(tmp_path / "full", "mlp", seed, recipe="r")
        write_part3_run(tmp_path / "full", "transformer", seed, recipe="r",
                        test_losses=[loss + 0.001 for loss in synthetic_losses("mlp", seed)])
        write_part3_run(tmp_path / "quick", "bigram", seed, recipe="r", test_losses=[3.3, 1.0, 0.9],
                        quick=True)
    groups = plots.group_runs(plots.runs_at([tmp_path / "full" / "r", tmp_path / "quick" / "r"]))
    headline = plots.final_headline(groups)
    # the quick bigram's 0.9 at step 200 is lower, but not comparable with step 1,000
    assert headline.startswith("at step 1,000, mlp full reaches 2.24 test loss; transformer full 2.24 "
                               "(mlp full and transformer full tie within the seeds' spread)")
    assert headline.endswith("; the runs that stop at step 200 are drawn, not ranked")
    quick = [g for g in groups if g.config["quick"]]
    assert plots.final_headline(quick).startswith("smoke runs (--quick), not results: at step 200, bigram")


def test_compare_on_a_bad_path_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "analysis", "compare", str(tmp_path / "nowhere")], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is neither a run folder" in result.stderr
    assert result.stdout == ""


def test_compare_into_a_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    assert main(["compare", str(ROOT / "runs" / "results" / "part3-baseline"), "-o",
                 str(tmp_path / "afile" / "x")]) == 2
    assert capsys.readouterr().err == f"python -m analysis compare: error: -o {tmp_path / 'afile' / 'x'}: " \
                                      f"{tmp_path / 'afile'} is a file, not a folder\n"
    assert (tmp_path / "afile").read_text() == "mine"


def test_drawing_does_not_import_torch(redrawn):
    _, _, imported = redrawn
    assert "matplotlib" in imported  # the import log was read
    assert "torch" not in imported  # torch takes seconds to import, and drawing needs none of it


def test_index_captions_are_literal_markdown(tmp_path):
    from analysis.index import Figure, write_index

    figure = Figure(path=Path("patches/01-x/hunk-1.html"), caption="hunk 1: Block.__init__ (+2 *new*)",
                    source="patches/01-x.patch")
    text = write_index([figure], tmp_path, skipped=[("part9/x", "no *runs*")]).read_text()
    assert r"Block.\_\_init\_\_ (+2 \*new\*)" in text
    assert r"- `part9/x`: no \*runs\*" in text


# -----------------------------------------------------------------------------
# nothing a user types deletes their work (issue 18)


@pytest.fixture
def quick_main(monkeypatch):
    """main() without the lab's own patch figures (they take seconds): what the parts draw is what counts."""
    monkeypatch.setattr(analysis_main, "draw_patches", lambda *args, **kwargs: ([], None))
    return main


def files_in(folder):
    return {p.relative_to(folder): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


def test_a_results_folder_that_does_not_exist_is_one_line_and_deletes_nothing(tmp_path, capsys, drawn,
                                                                               quick_main):
    figures_dir = drawn_into(drawn, tmp_path)
    before = files_in(figures_dir)
    capsys.readouterr()
    assert quick_main(["--results", str(tmp_path / "nowhere"), "--figures", str(figures_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere" in err and "no such folder" in err
    assert files_in(figures_dir) == before


def test_figures_whose_results_are_absent_are_kept_with_their_index_entries(tmp_path, capsys, drawn,
                                                                            quick_main):
    figures_dir = drawn_into(drawn, tmp_path)
    before = files_in(figures_dir)
    entry = next(line for line in (figures_dir / "README.md").read_text().splitlines()
                 if line.startswith("- [part3/loss-curves.png]"))
    (tmp_path / "mine" / "another-recipe").mkdir(parents=True)  # `--results out/mine` after training another recipe
    assert quick_main(["--results", str(tmp_path / "mine"), "--figures", str(figures_dir)]) == 0
    after = files_in(figures_dir)
    assert {path: after.get(path) for path in before if path.name != "README.md"} == \
        {path: data for path, data in before.items() if path.name != "README.md"}
    assert entry in (figures_dir / "README.md").read_text()
    assert "kept" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["file", "folder of something else"])
def test_figures_into_a_file_or_a_folder_that_is_not_a_figures_folder_is_refused(results, tmp_path, capsys,
                                                                                 quick_main, kind):
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("my notes")
    else:
        (target / "empty").mkdir(parents=True)
        (target / "README.md").write_text("# My project\n")
        (target / "photo.png").write_bytes(b"not drawn by the redraw")
        (target / "link").symlink_to("photo.png")
    before = sorted((p.relative_to(tmp_path), p.is_symlink()) for p in tmp_path.rglob("*"))
    data = files_in(tmp_path)
    for argv in (["--results", str(results), "--figures", str(target)], ["diffs", "--figures", str(target)]):
        assert quick_main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "target" in err
        assert sorted((p.relative_to(tmp_path), p.is_symlink()) for p in tmp_path.rglob("*")) == before
        assert files_in(tmp_path) == data


def test_a_redraw_into_a_figures_folder_keeps_links_and_empty_folders(results, tmp_path, no_patches, drawn):
    figures_dir = drawn_into(drawn, tmp_path)
    (figures_dir / "notes" / "empty").mkdir(parents=True)
    (figures_dir / "notes" / "link").symlink_to("../README.md")
    assert redraw(results, figures_dir, no_patches) == 0
    assert (figures_dir / "notes" / "empty").is_dir()
    assert (figures_dir / "notes" / "link").is_symlink()


def test_compare_draws_finished_runs_and_names_unfinished_ones(tmp_path, capsys):
    for seed in (1, 2):
        write_part3_run(tmp_path, "mlp", seed, recipe="recipe")
    unfinished = write_part3_run(tmp_path, "mlp", 3, recipe="recipe", test_losses=synthetic_losses("mlp", 3)[:3])
    (unfinished / "summary.json").unlink()
    at_zero = write_part3_run(tmp_path, "transformer", 1, recipe="recipe", test_losses=[3.3, 3.0])
    (at_zero / "summary.json").unlink()
    metrics = at_zero / "metrics.jsonl"
    metrics.write_text(metrics.read_text().splitlines(keepends=True)[0])  # only the loss at initialisation
    write_part3_run(tmp_path, "transformer", 2, recipe="recipe")
    drawn = []
    real_draw_band = plots.draw_band

    def draw_band(ax, group, key, x="step"):
        drawn.append((group.name, [run.name for run in group.runs], real_draw_band(ax, group, key, x)))
        return drawn[-1][2]

    import unittest.mock
    with unittest.mock.patch.object(plots, "draw_band", draw_band):
        assert main(["compare", str(tmp_path / "recipe"), "-o", str(tmp_path / "out" / "cmp")]) == 0
    assert sorted(runs for _, runs, _ in drawn) == [["mlp,seed=1", "mlp,seed=2"], ["transformer,seed=2"]]
    assert all(curve.x[-1] == 1000 for _, _, curve in drawn)  # no curve cut at an unfinished seed's last step
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mlp,seed=3 (at step 200)" in err and "transformer,seed=1 (at step 0)" in err
