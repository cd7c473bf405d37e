"""Part 3's figures: the dense baselines (bigram, MLP, transformer) of recipe part3-baseline, which
every later part compares against."""

import statistics
import textwrap

import numpy as np

from analysis import plots, style
from analysis.parts import Drawn, Part, Skip
from analysis.plots import draw_band, draw_mean, mean_sd
from runs.store import read_samples

RECIPE = "part3-baseline"
NAMES = {"bigram": "bigram", "mlp": "MLP", "transformer": "transformer"}  # how the text names each type


def type_name(config):
    """A group's name: its model type, as the text names it."""
    return NAMES.get(config["flags"]["type"], config["flags"]["type"])


part = Part("part3", label=type_name)


def of_type(groups, model_type):
    """The group of a model type, current results preferred over stale ones; None if there is none."""
    return plots.preferred([g for g in groups if g.flags["type"] == model_type])


def mean_of(group, key):
    return statistics.fmean(run.summary[key] for run in group.runs)


# -----------------------------------------------------------------------------
# training curves


@part.figure(RECIPE)
def loss_curves(groups):
    fig, ax = style.figure(height=4.6)
    curves, train_curves = [], []
    for group in groups:
        curves.append(draw_band(ax, group, "test_loss"))
        train_curves.append(draw_mean(ax, group, "train_loss"))
    plots.focus_on_training(ax, curves + train_curves)  # the train/test gap is part of the story
    ax.set(xlabel="step", ylabel="loss")
    ax.plot([], [], color="black", linewidth=2, label="test (band: seeds' range)")
    ax.plot([], [], color="black", linewidth=1, linestyle="--", label="train")
    fig.legend(loc="outside lower center", ncols=3, fontsize=11)  # below: the curves fill the axes
    claimed = plots.current(groups)
    headline = loss_headline([(g, c) for g, c in zip(groups, curves) if g in claimed])
    caption = (f"Test loss per model type (mean over seeds, band from lowest to highest seed) and train loss "
               f"(thin dashed mean); {plots.seeds_note(groups)}.")
    return Drawn(fig, headline, caption, groups)


def loss_headline(groups_and_curves):
    """'best test loss: transformer 1.95, MLP 1.95 (a tie within the seeds' spread), bigram 2.35;
    the transformer then overfits (2.07 at step 5000)', from each seed's best test loss
    (summary.json), averaged; a model overfits when its mean curve ends 0.02 above its lowest point."""
    ranked = sorted(groups_and_curves, key=lambda gc: mean_of(gc[0], "best_test_loss"))
    leader = ranked[0][0]
    parts = [f"{g.label} {mean_of(g, 'best_test_loss'):.2f}" for g, _ in ranked]
    ties = [g.label for g, _ in ranked[1:] if plots.tied(best_losses(leader), best_losses(g))]
    text = "best test loss: " + ", ".join(parts)
    if ties:
        text += f" ({' and '.join([leader.label, *ties])} tie within the seeds' spread)"
    for group, curve in ranked:
        if curve.mean[-1] - curve.mean.min() > 0.02:
            text += f"; the {group.label} then overfits ({curve.mean[-1]:.2f} at step {curve.x[-1]:.0f})"
    return text


def best_losses(group):
    return [run.summary["best_test_loss"] for run in group.runs]


@part.figure(RECIPE)
def mlp_vs_transformer(groups):
    mlp, transformer = of_type(groups, "mlp"), of_type(groups, "transformer")
    if mlp is None or transformer is None:
        return Skip("the recipe needs both an MLP and a transformer")
    pair = [mlp, transformer]
    fig, (by_step, by_time) = style.figure(1, 2, height=4.2, sharey=True)
    curves = {"step": [draw_band(by_step, g, "test_loss") for g in pair],
              "seconds": [draw_band(by_time, g, "test_loss", x="seconds") for g in pair]}
    plots.focus_on_training(by_step, curves["step"])
    by_step.set(xlabel="step", ylabel="test loss")
    by_time.set(xlabel="training time (s)")
    by_step.legend(loc="upper right")
    caption = ("MLP vs transformer test loss against steps (left) and against training seconds (right: each point "
               f"at the seeds' mean time to reach it; evaluation excluded); {plots.seeds_note(pair)}.")
    return Drawn(fig, per_step_and_second(pair, curves), caption, pair)


def per_step_and_second(pair, curves):
    """Where each curve bottoms out: its lowest mean test loss, at which step and after how many
    training seconds; a tie (within the seeds' spread) is called one."""
    lows = []
    for group, by_step, by_time in zip(pair, curves["step"], curves["seconds"]):
        at = int(np.argmin(by_step.mean))
        lows.append((group.label, by_step.mean[at], by_step.x[at], by_time.x[at]))
    reached = "; ".join(f"the {label} {loss:.2f} at step {step:,.0f} ({seconds:.0f} s)"
                        for label, loss, step, seconds in lows)
    if plots.tied(best_losses(pair[0]), best_losses(pair[1])):
        return f"Equal best test loss, not equal cost: {reached}"
    return f"Lowest test loss: {reached}"


# -----------------------------------------------------------------------------
# samples, as a table


@part.figure(RECIPE)
def samples(groups):
    shares = {g.label: sample_shares(g) for g in groups}
    rows = [[g.label, *(mean_sd(shares[g.label][kind], digits=1, suffix="%") for kind in SAMPLE_KINDS),
             textwrap.fill(", ".join(new_examples(g.runs[0])) or "(none)", 23)] for g in groups]
    fig = plots.table_figure(["model", "in train", "in test", "new", "new samples\n(lowest seed)"], rows,
                             widths=[1.25, 1.1, 1.1, 1.1, 2.45], align="lcccl",
                             greyed_rows=plots.stale_rows(groups))
    ranked = sorted(plots.current(groups), key=lambda g: -statistics.fmean(shares[g.label]["new"]))
    headline = "samples that are new names: " + ", ".join(
        f"{g.label} {statistics.fmean(shares[g.label]['new']):.0f}%" for g in ranked)
    caption = ("Where each model's samples land: in the training set, in the test set, or new (percent of the "
               f"samples, mean ± sd over seeds), with new samples of the lowest seed; {plots.seeds_note(groups)}.")
    return Drawn(fig, headline, caption, groups)


SAMPLE_KINDS = ("in_train", "in_test", "new")  # summary.json's sample counts


def sample_shares(group):
    """{"in_train": [percent per seed], "in_test": [...], "new": [...]} from summary.json."""
    counts = [run.summary["samples"] for run in group.runs]
    return {kind: [100 * c[kind] / c["n"] for c in counts] for kind in SAMPLE_KINDS}


def new_examples(run, n=5):
    """The first n distinct non-empty new samples, in the order they were drawn."""
    new = (read_samples(run.directory) or {}).get("new", [])
    return list(dict.fromkeys(s for s in new if s))[:n]


# -----------------------------------------------------------------------------
# inside the trained models: probes.json of the lowest seed


def probe(groups, model_type, key):
    """(group, probes[key]) of the lowest seed of a model type, or a Skip saying why not."""
    group = of_type(groups, model_type)
    if group is None:
        return Skip(f"no {model_type} runs")
    probes = group.runs[0].probes or {}
    if key not in probes:
        return Skip(f"{group.runs[0].name} has no {key!r} probe")
    return group, probes[key]


def probes_of_types(groups, key):
    """[(group, probes[key])] of the MLP and the transformer, whichever have them, or a Skip."""
    found = [probe(groups, model_type, key) for model_type in ("mlp", "transformer")]
    if all(isinstance(f, Skip) for f in found):
        return Skip("; ".join(f.reason for f in found))
    return [f for f in found if not isinstance(f, Skip)]


ATTENTION_TARGETS = ("the start token", "itself", "the previous character")


def attention_shares(maps):
    """maps[text][layer][head] -> (shares[layer][head][target], the share any one position would get
    under uniform attention): the weight that queries from position 2 on (where the targets are
    distinct positions) put on each target, averaged over those queries and the texts."""
    shares, uniform = [], []
    for text in maps:
        matrices = np.array(text, dtype=float)  # [layer][head][query][key]
        queries = np.arange(2, matrices.shape[-1])
        shares.append(np.stack([matrices[..., queries, 0], matrices[..., queries, queries],
                                matrices[..., queries, queries - 1]], axis=-1).mean(axis=-2))
        uniform.append(np.mean(1 / (queries + 1)))
    return np.mean(shares, axis=0), float(np.mean(uniform))


@part.figure(RECIPE)
def attention(groups):
    found = probe(groups, "transformer", "attention")
    if isinstance(found, Skip):
        return found
    group, probes = found
    texts = probes["texts"][:3]
    n_layers = len(probes["maps"][0])
    fig, axes = style.figure(len(texts), n_layers, height=0.9 + 1.9 * len(texts), squeeze=False)
    for i, text in enumerate(texts):
        head_mean = np.mean(np.array(probes["maps"][i], dtype=float), axis=1)  # [layer][query][key]
        for layer in range(n_layers):
            image = heatmap(axes[i, layer], head_mean[layer], probes["tokens"][i], rows=layer == 0)
        axes[i, 0].set_ylabel(f'"{text}"')
    for layer in range(n_layers):
        axes[0, layer].set_title(f"layer {layer + 1}")
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    shares, uniform = attention_shares(probes["maps"])
    caption = (f"Attention of the transformer ({group.runs[0].name}), averaged over heads, for {len(texts)} test "
               "names: rows are querying positions, columns the positions they attend to; '.' is the start token. "
               "The headline's shares are over query positions from the third on.")
    return Drawn(fig, layers_headline(shares.mean(axis=1), uniform), caption, [group.lowest_seed()])


def layers_headline(by_layer, uniform):
    """'attention peaks on the previous character in layers 1, 2 and 4 (27–29%) and on the start token
    in layer 3 (29%); uniform: 20%': each layer's most attended of the three single positions."""
    targets = by_layer.argmax(axis=1)
    parts = []
    for target in dict.fromkeys(targets):
        layers = [layer for layer, t in enumerate(targets) if t == target]
        low, high = (f"{share:.0%}" for share in (by_layer[layers, target].min(), by_layer[layers, target].max()))
        parts.append(f"on {ATTENTION_TARGETS[target]} in {layer_list(layers, len(targets))} "
                     f"({low if low == high else f'{low[:-1]}–{high}'})")
    return f"attention peaks {' and '.join(parts)}; uniform: {uniform:.0%}"


def layer_list(layers, n_layers):
    numbers = [str(layer + 1) for layer in layers]
    if len(layers) == n_layers > 1:
        return "every layer"
    if len(numbers) == 1:
        return f"layer {numbers[0]}"
    return f"layers {', '.join(numbers[:-1])} and {numbers[-1]}"


def heatmap(ax, matrix, tokens, rows=True, columns=True):
    """One causal attention map (the upper triangle is zero), characters as tick labels where asked."""
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(tokens))
    ax.set_xticks(ticks, tokens if columns else [])
    ax.set_yticks(ticks, tokens if rows else [])
    ax.tick_params(length=0)
    ax.grid(False)
    return image


@part.figure(RECIPE)
def attention_heads(groups):
    found = probe(groups, "transformer", "attention")
    if isinstance(found, Skip):
        return found
    group, probes = found
    maps, tokens, text = probes["maps"][0], probes["tokens"][0], probes["texts"][0]
    n_layers, n_heads = len(maps), len(maps[0])
    fig, axes = style.figure(n_layers, n_heads, height=0.9 + 1.6 * n_layers, squeeze=False)
    for layer in range(n_layers):
        for head in range(n_heads):
            image = heatmap(axes[layer, head], np.array(maps[layer][head], dtype=float), tokens, rows=head == 0,
                            columns=layer == n_layers - 1)
        axes[layer, 0].set_ylabel(f"layer {layer + 1}")
    for head in range(n_heads):
        axes[0, head].set_title(f"head {head + 1}")
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    shares, uniform = attention_shares(probes["maps"])
    layer, head, target = np.unravel_index(shares.argmax(), shares.shape)
    headline = (f"layer {layer + 1}, head {head + 1} puts {shares.max():.0%} of its attention on "
                f"{ATTENTION_TARGETS[target]} (uniform: {uniform:.0%})")
    caption = (f'Every head of the transformer ({group.runs[0].name}) on "{text}"; the headline names the head '
               f"most focused on one position, over all {len(probes['texts'])} probe names and the query positions "
               "from the third on.")
    return Drawn(fig, headline, caption, [group.lowest_seed()])


@part.figure(RECIPE)
def activations(groups):
    found = probes_of_types(groups, "activations")
    if isinstance(found, Skip):
        return found
    panels = [(group, init, trained) for group, probes in found
              for init, trained in zip(probes["init"]["layers"], probes["trained"]["layers"])]
    ncols = 2
    nrows = -(-len(panels) // ncols)
    fig, axes = style.figure(nrows, ncols, height=0.9 + 2.3 * nrows, squeeze=False)
    for ax, (group, init, trained) in zip(axes.flat, panels):
        top = max(histogram(ax, init, style.GREY, "init"), histogram(ax, trained, group.line_colour, "trained"))
        ax.set_ylim(0, 1.6 * top)  # headroom for the legend
        ax.set_title(f"{group.label}: {trained['name']}", fontsize=12)
        ax.set_yticks([])
        ax.legend(loc="upper center")
    for ax in axes.flat[len(panels):]:
        ax.remove()
    for i in range(max(0, len(panels) - ncols), len(panels)):  # the lowest panel of each column
        axes.flat[i].set_xlabel("activation")
    headline = "saturated units, init → trained: " + "; ".join(
        saturation_summary(group, probes) for group, probes in found)
    caption = ("Hidden activations (tanh output; GELU output) on a fixed training batch at initialisation and after "
               "training (lowest seed); saturated: |tanh| > 0.97, or GELU input below -3.")
    return Drawn(fig, headline, caption, [group.lowest_seed() for group, _ in found])


def histogram(ax, layer, colour, when):
    """A probe's histogram as a density outline; returns its highest density."""
    edges, counts = np.array(layer["edges"]), np.array(layer["counts"], dtype=float)
    density = counts / (counts.sum() * np.diff(edges))
    ax.stairs(density, edges, color=colour, linewidth=2, label=f"{when}: {percent(layer['saturated'])} saturated")
    return density.max()


def saturation_summary(group, probes):
    """'MLP tanh 0% → 29%', or for several layers the most saturated one after training."""
    init, trained = probes["init"]["layers"], probes["trained"]["layers"]
    worst = max(range(len(trained)), key=lambda i: trained[i]["saturated"])
    kind = "tanh" if trained[worst]["kind"] == "tanh" else "GELU"
    where = f" (most: block {worst + 1} of {len(trained)})" if len(trained) > 1 and trained[worst]["saturated"] else ""
    change = f"{percent(init[worst]['saturated'])} → {percent(trained[worst]['saturated'])}"
    return f"{group.label} {kind} {change}{where}"


def percent(fraction):
    if fraction == 0:
        return "0%"
    if fraction < 0.001:
        return "<0.1%"
    return f"{100 * fraction:.1f}%" if fraction < 0.1 else f"{100 * fraction:.0f}%"


@part.figure(RECIPE)
def gradients(groups):
    found = probes_of_types(groups, "activations")
    if isinstance(found, Skip):
        return found
    sizes = [len(probes["trained"]["grads"]) for _, probes in found]
    fig, axes = style.figure(len(found), 1, height=1.4 + 0.28 * sum(sizes), squeeze=False,
                             gridspec_kw={"height_ratios": sizes})
    for ax, (group, probes) in zip(axes[:, 0], found):
        ratio_dots(ax, group, probes)
    axes[-1, 0].set_xlabel("gradient std / weight std (log scale)")
    axes[0, 0].legend(loc="lower right", bbox_to_anchor=(1, 1), ncols=2)  # above the panel, clear of the dots
    caption = ("grad_std / data_std of every weight matrix on a fixed training batch, at initialisation and after "
               "training (lowest seed): the update-scale statistic of makemore's lectures.")
    return Drawn(fig, gradient_headline(found), caption, [group.lowest_seed() for group, _ in found])


def ratio_dots(ax, group, probes):
    """One row per weight matrix: its ratio at init (hollow) and trained (filled)."""
    names = [g["name"].removesuffix(".weight") for g in probes["trained"]["grads"]]  # every one is a weight
    rows = np.arange(len(names))
    for when, fill in (("init", "none"), ("trained", group.line_colour)):
        ratios = [g["ratio"] for g in probes[when]["grads"]]
        ax.scatter(ratios, rows, s=45, facecolors=fill, edgecolors=group.line_colour, label=when, zorder=3)
    ax.set_xscale("log")
    ax.set_yticks(rows, names)
    ax.set_ylim(len(names) - 0.5, -0.5)  # first matrix on top
    ax.set_title(group.label, loc="left", fontsize=12)


def gradient_headline(found):
    pairs = [(i["ratio"], t["ratio"]) for _, probes in found
             for i, t in zip(probes["init"]["grads"], probes["trained"]["grads"])]
    lower = sum(trained < init for init, trained in pairs)
    medians = ", ".join(f"{group.label} {median_ratio(probes['init']):.2g} → {median_ratio(probes['trained']):.2g}"
                        for group, probes in found)
    return (f"training lowers the gradient-to-weight ratio of {lower} of {len(pairs)} weight matrices "
            f"(median {medians})")


def median_ratio(state):
    return statistics.median(g["ratio"] for g in state["grads"])


# -----------------------------------------------------------------------------
# the final numbers, as a table


@part.figure(RECIPE)
def final_table(groups):
    rows = [[g.label, f"{g.runs[0].summary['params']:,}",
             mean_sd([r.summary["best_test_loss"] for r in g.runs]),
             mean_sd([r.summary["final_test_loss"] for r in g.runs]),
             f"{mean_of(g, 'step_ms'):.1f}", thousands(mean_of(g, "tokens_per_s"))] for g in groups]
    header = ["model", "params", "best test\nloss", "final test\nloss", "ms per\nstep", "tokens\nper s"]
    fig = plots.table_figure(header, rows, widths=[1.25, 0.95, 1.45, 1.45, 0.8, 0.9], align="lrccrr",
                             greyed_rows=plots.stale_rows(groups))
    caption = ("Each model's parameters, best and final test loss (mean ± sd over seeds) and training speed "
               f"(mean over seeds, evaluation excluded); {plots.seeds_note(groups)}.")
    return Drawn(fig, cost_headline(groups), caption, groups)


def thousands(value):
    return f"{value / 1000:.0f}k" if value >= 10_000 else f"{value:,.0f}"


def cost_headline(groups):
    groups = sorted(plots.current(groups), key=lambda g: mean_of(g, "best_test_loss"))
    best, fastest = groups[0], min(groups, key=lambda g: mean_of(g, "step_ms"))
    loss, ms = mean_of(best, "best_test_loss"), mean_of(best, "step_ms")
    rivals = [g for g in groups[1:] if plots.tied(best_losses(best), best_losses(g))]
    if rivals:  # the cheapest of the tied is the one worth naming
        cheapest = min([best, *rivals], key=lambda g: mean_of(g, "step_ms"))
        dearest = max([best, *rivals], key=lambda g: mean_of(g, "step_ms"))
        ratio = mean_of(dearest, "step_ms") / mean_of(cheapest, "step_ms")
        return (f"{' and '.join(g.label for g in [best, *rivals])} tie on best test loss ({loss:.2f}); "
                f"the {dearest.label} takes {ratio:.1f}× the {cheapest.label}'s time a step")
    if best is fastest:
        return f"{best.label} has the lowest test loss ({loss:.2f}) and the fastest step ({ms:.1f} ms)"
    ratio = ms / mean_of(fastest, "step_ms")
    return (f"{best.label} has the lowest test loss ({loss:.2f}) at {ms:.1f} ms a step, "
            f"{ratio:.0f}× the {fastest.label}'s")
