"""Part 4's figures: a mixture of experts (01-moe.patch) against dense baselines. Recipe moe-domains
asks whether experts follow manufactured domains (arithmetic, code, names) and what balancing does to
the routing; recipe moe-names asks what experts pick up when there are no domains.

Losses are the final evaluation's throughout (figures and table alike), and so are the load,
balance and entropy numbers (metrics.jsonl); the counts of which tokens went to which expert come
from the probes of the best model (model.pt, probes.json), and so does which layers route.
The step-time figure comes from the benchmark's record, not from the training runs."""

import statistics

import numpy as np
from matplotlib.ticker import MaxNLocator

from analysis import plots, style
from analysis.parts import Drawn, Part, Skip
from analysis.plots import draw_band, mean_sd

DOMAINS = "moe-domains"
NAMES = "moe-names"
LONG = "moe-domains-long"  # the matched arms of moe-domains, trained until the comparison settles
LONG_ARMS = ("dense", "dense-wide", "moe-e4", "moe-e4-top2", "moe-e8")

# what each comparison of a MoE with a dense baseline holds equal (the recipes' arm notes)
MATCHED = [("moe-e4", "dense", "active compute"), ("moe-e4", "dense-wide", "parameters"),
           ("moe-e4-thin", "dense", "parameters"), ("moe-e8", "dense", "active compute")]
# the balancing arms of moe-domains, as a headline names them
BALANCING = {"moe-e4-none": "without balancing", "moe-e4": "with the aux loss", "moe-e4-bias": "with bias balancing"}


def arm_name(config):
    """A group's name: the recipe's name for its arm."""
    return config["arm"]


part = Part("part4", label=arm_name)


def of_arm(groups, arm):
    """The group of an arm, current results preferred over stale ones; None if there is none."""
    return plots.preferred([g for g in groups if g.name == arm])


def of_arms(groups, arms):
    """Every group (current and stale) of the arms, in the order the arms are given."""
    return [g for arm in arms for g in groups if g.name == arm]


def verdict(values, rival_values):
    """'ties' when the seeds cannot separate two sets of per-seed numbers, else 'beats' or 'trails'
    (lower is better)."""
    if plots.tied(values, rival_values):
        return "ties"
    return "beats" if statistics.fmean(values) < statistics.fmean(rival_values) else "trails"


# -----------------------------------------------------------------------------
# what the metrics say about one run's experts


def expert_count(run):
    """The run's experts per layer; 0 for the spine's dense MLP (the arm without --n-expert)."""
    return run.config["resolved"].get("n-expert", 0)  # the spine has no experts, nor the flag


def routes(group):
    """Whether the group's runs route between experts: dense-wide's single expert does not."""
    return expert_count(group.runs[0]) > 1


def routing(run):
    """The routing probe of the run's best model (probes.json), or None when it has none."""
    return (run.probes or {}).get("routing")


def moe_layers(run):
    """The (0-based) layers that route tokens to experts, numbered as the metrics' moe/l<L>/ keys
    number them: those the routing probe counted. The one definition every figure uses."""
    return range(len(routing(run)["layers"]) if routing(run) else 0)


def with_routing(groups):
    """The groups whose every run has a routing probe: the figures that read layers need one."""
    return [g for g in groups if all(routing(run) for run in g.runs)]


def probed(groups, arm):
    """(the arm's group, its runs with a routing probe), or a Skip saying why there are none."""
    group = of_arm(groups, arm)
    if group is None:
        return Skip(f"no {arm} runs")
    runs = [run for run in group.runs if routing(run)]
    return (group, runs) if runs else Skip(f"no {arm} run has a 'routing' probe")


def loads(record, layer, n_expert):
    """Each expert's share of a layer's routing assignments at an evaluation."""
    return np.array([record[f"moe/l{layer}/load/e{e}"] for e in range(n_expert)])


def domain_counts(run):
    """Per layer, experts x domains: the routing assignments of each domain's test tokens to each
    expert, counted on the best model (columns: routing(run)["domains"])."""
    return [np.array(layer["by_domain"]) for layer in routing(run)["layers"]]


def nmi(counts):
    """Normalised mutual information I(expert; class) / H(class) from a table of routing assignments
    (rows experts, columns classes such as domains): the share of a token's class that its expert
    gives away. 0 when the experts ignore the class; 1 when every expert serves a single class.
    Normalised by H(class) alone, not symmetrically: with more experts than classes a perfect split
    still leaves H(expert) > H(class), and the symmetric 2I / (H(expert) + H(class)) could not reach
    1. Under top-k routing each of a token's k assignments counts once."""
    joint = np.asarray(counts, dtype=float) / np.sum(counts)
    expert, label = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    seen = joint > 0
    mutual = np.sum(joint[seen] * np.log(joint[seen] / (expert @ label)[seen]))
    return float(mutual / -np.sum(label[label > 0] * np.log(label[label > 0])))


def lift(counts, overall):
    """experts x classes: the share of each class's assignments that went to each expert, over the
    expert's share of all assignments (`overall`). 1: the expert takes the class as often as any
    token; 2: twice as often."""
    counts = np.asarray(counts, dtype=float)
    return counts / counts.sum(axis=0) / np.asarray(overall)[:, None]


# -----------------------------------------------------------------------------
# loss against the dense baselines


def final_losses(group, key="test_loss"):
    return [run.metrics[-1][key] for run in group.runs]


@part.figure(DOMAINS)
def domain_loss(groups):
    matching = ("dense has the active compute of moe-e4 (top-1 of 4 experts as wide as dense's MLP), dense-wide its "
                "total parameters (one 4× wider MLP), moe-e4-thin dense's total parameters (4 experts a quarter as "
                "wide)")
    return loss_dots(groups, ["dense", "dense-wide", "moe-e4", "moe-e4-thin"], matching)


@part.figure(NAMES)
def names_loss(groups):
    matching = "dense has the active compute of moe-e4 and moe-e8 (top-1 of 4 or 8 experts as wide as dense's MLP)"
    return loss_dots(groups, ["dense", "moe-e4", "moe-e8"], matching)


def loss_dots(groups, arms, matching):
    """Final test loss of each arm, every seed a circle and the mean a bar; a panel per domain when
    the recipe has several. `matching` says which arm matches which (for the caption)."""
    shown = of_arms(groups, arms)
    if of_arm(shown, "dense") is None:
        return Skip("no dense baseline to compare with")
    keys = plots.loss_keys([run for g in shown for run in g.runs])
    ncols = 1 if len(keys) == 1 else 2
    nrows = -(-len(keys) // ncols)
    fig, axes = style.figure(nrows, ncols, height=0.9 + (0.45 * len(shown) + 0.9) * nrows, sharey=True,
                             squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for row, group in enumerate(shown):
            losses = final_losses(group, key)
            ax.scatter(losses, [row] * len(losses), s=40, facecolors="none", edgecolors=group.line_colour, zorder=3)
            ax.scatter([statistics.fmean(losses)], [row], s=400, marker="|", color=group.line_colour, zorder=3)
        if len(keys) > 1:
            ax.set_title("all domains" if key == "test_loss" else key.split("/", 1)[1])
        ax.xaxis.set_major_locator(MaxNLocator(4))
    for ax in axes.flat[len(keys):]:
        ax.remove()
    axes[0, 0].set_yticks(range(len(shown)), [g.label for g in shown])
    axes[0, 0].set_ylim(len(shown) - 0.5, -0.5)  # the first arm on top
    for ax in axes[-1]:
        ax.set_xlabel("final test loss")
    per_domain = ", overall and per domain" if len(keys) > 1 else ""
    caption = (f"Final test loss (last evaluation) of each arm{per_domain}: each seed a circle, the mean a bar. "
               f"{matching}; {plots.seeds_note(shown)}.")
    return Drawn(fig, matched_headline(plots.current(shown), arms), caption, shown)


@part.figure(LONG)
def settled(groups):
    """Is "MoE ties dense" an artefact of stopping at 3,000 steps? The matched arms, trained on."""
    shown = [g for g in of_arms(groups, LONG_ARMS) if g]
    dense = of_arm(shown, "dense")
    if dense is None:
        return Skip("no dense baseline to compare with")
    fig, (curves, gaps) = style.figure(2, 1, height=7.4, sharex=True, height_ratios=[1.3, 1])
    drawn = [draw_band(curves, group, "test_loss") for group in shown]
    plots.focus_on_training(curves, drawn)
    curves.set(ylabel="test loss")
    curves.legend(fontsize=10, ncols=2)
    base = plots.band(dense, "test_loss")
    for group in shown:
        if group is dense:
            continue
        curve = plots.band(group, "test_loss")
        gaps.plot(curve.x, curve.mean - base.mean, color=group.line_colour, linewidth=2,
                  linestyle="--" if group.stale else "-", label=group.name)
    gaps.axhline(0, color=style.GREY, linewidth=1)
    gaps.set(xlabel="step", ylabel="test loss minus dense's")
    for ax in (curves, gaps):
        ax.axvline(3000, color=style.GREY, linewidth=1, linestyle=":")  # where moe-domains stops
    trained = max(run.metrics[-1]["step"] for group in shown for run in group.runs)
    caption = (f"moe-domains' matched arms trained for {trained:,} steps on the same data: test loss (top, mean "
               "over seeds, band from the lowest to the highest seed) and each arm's mean minus dense's (bottom); "
               f"the dotted line marks moe-domains' 3,000 steps; {plots.seeds_note(shown)}.")
    return Drawn(fig, settled_headline(plots.current(shown)), caption, shown)


def best_losses(group):
    return [min(record["test_loss"] for record in run.metrics) for run in group.runs]


def best_steps(group):
    return [min(run.metrics, key=lambda record: record["test_loss"])["step"] for run in group.runs]


def settled_headline(groups):
    """Each arm's best test loss, ties with dense called, and whether the comparison has settled:
    the leading arm past its best (flat or rising) before the runs stop; arms still improving at the
    end are named, since their best may be yet to come."""
    dense = of_arm(groups, "dense")
    ranked = sorted(groups, key=lambda g: statistics.fmean(best_losses(g)))
    parts = [f"{g.name} {statistics.fmean(best_losses(g)):.3f}" + (" (ties dense)" if g is not dense
             and plots.tied(best_losses(g), best_losses(dense)) else "") for g in ranked]
    last = min(run.metrics[-1]["step"] for g in groups for run in g.runs)
    leader, improving = ranked[0], [g.name for g in ranked if max(best_steps(g)) >= last]
    if leader.name in improving:
        when = f"not settled: {leader.name} still improving at step {last:,}"
    else:
        when = f"{leader.name} past its best by step {max(best_steps(leader)):,}"
        if improving:
            when += f"; {', '.join(improving)} still improving at {last:,}"
    return f"Best test loss, {when}: {', '.join(parts)}"


def matched_headline(groups, arms):
    """'final test loss: moe-e4 beats dense (same active compute: 2.625 vs 2.646) and trails dense-wide
    (same parameters: 2.560)': each MoE against the baselines it is matched with."""
    said = {}  # MoE arm -> what it does against each of its baselines
    for moe, baseline, shared in MATCHED:
        ours, theirs = of_arm(groups, moe), of_arm(groups, baseline)
        if moe in arms and baseline in arms and ours and theirs:
            ours, theirs = final_losses(ours), final_losses(theirs)
            mean = f"{statistics.fmean(ours):.3f} vs " if moe not in said else ""
            said.setdefault(moe, []).append(f"{verdict(ours, theirs)} {baseline} "
                                            f"(same {shared}: {mean}{statistics.fmean(theirs):.3f})")
    if not said:
        return "final test loss of each arm"
    return "final test loss: " + "; ".join(f"{moe} {' and '.join(parts)}" for moe, parts in said.items())


# -----------------------------------------------------------------------------
# which experts take which tokens


def share_heatmap(ax, counts, overall, classes, labelled):
    """A class per row, an expert per column (counts: experts x classes): colour is the share of the
    class's assignments that went to the expert (each row sums to 1), text the lift. Class names
    only where `labelled` (the left column of panels)."""
    shares = (counts / counts.sum(axis=0)).T
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (c, e), value in np.ndenumerate(lift(counts, overall).T):
        ax.text(e, c, f"×{value:.1f}", ha="center", va="center", fontsize=10,
                color="white" if shares[c, e] > 0.6 else "black")
    ax.set_xticks(range(len(counts)), range(1, len(counts) + 1))
    ax.set_yticks(range(len(classes)), classes if labelled else [])
    ax.tick_params(length=0)
    ax.grid(False)
    return image


def heatmap_grid(n_layers, n_rows_each):
    """A 2-column grid of panels, one per layer, the unused ones removed, 'expert' under the lowest."""
    nrows = -(-n_layers // 2)
    fig, axes = style.figure(nrows, 2, height=1.3 + (0.42 * n_rows_each + 0.8) * nrows, squeeze=False)
    for ax in axes.flat[n_layers:]:
        ax.remove()
    for ax in axes.flat[max(0, n_layers - 2):n_layers]:
        ax.set_xlabel("expert")
    return fig, axes.flat[:n_layers]


def peak_headline(what, nmis, counts, overall, columns, run):
    """'NMI(expert; domain) peaks in layer 3 at 0.23 ± 0.12 (3 seeds); there expert 2 takes 61% of
    the arithmetic tokens, 2.4× its overall share (moe-e4,seed=1)': nmis[seed][layer], and the
    peak layer's counts of the run shown."""
    nmis = np.array(nmis)
    peak = int(nmis.mean(axis=0).argmax())
    spread = f" ± {nmis[:, peak].std(ddof=1):.2f}" if len(nmis) > 1 else ""
    lifts = lift(counts[peak], overall[peak])
    expert, column = np.unravel_index(np.nanargmax(lifts), lifts.shape)
    share = counts[peak][expert, column] / counts[peak][:, column].sum()
    return (f"NMI(expert; {what}) peaks in layer {peak + 1} at {nmis[:, peak].mean():.2f}{spread} "
            f"({len(nmis)} seed{'s' if len(nmis) > 1 else ''}); there expert {expert + 1} takes {share:.0%} of "
            f"the {columns[column]} tokens, {lifts[expert, column]:.1f}× its overall share ({run.name})")


@part.figure(DOMAINS)
def expert_domain(groups):
    found = probed(groups, "moe-e4")
    if isinstance(found, Skip):
        return found
    group, runs = found
    run = runs[0]  # expert numbers differ between seeds: one seed's experts are shown
    counts, domains = domain_counts(run), routing(run)["domains"]
    overall = [c.sum(axis=1) / c.sum() for c in counts]
    fig, axes = heatmap_grid(len(counts), len(domains))
    for layer, ax in enumerate(axes):
        image = share_heatmap(ax, counts[layer], overall[layer], domains, labelled=layer % 2 == 0)
        ax.set_title(f"layer {layer + 1}: NMI {nmi(counts[layer]):.2f}")
    fig.colorbar(image, ax=list(axes), shrink=0.6, label="share of the domain's tokens")
    nmis = [[nmi(c) for c in domain_counts(r)] for r in runs]
    caption = (f"Where each domain's test tokens (rows) go in every layer of {run.name} (best model): "
               "colour is the share of the domain's tokens sent to each expert, text the lift (that share "
               "over the expert's share of all tokens; 1 = no preference). NMI = I(expert; domain) / "
               "H(domain): 0 when experts ignore the domain, 1 when the expert gives the domain away; the "
               "headline's is over every seed's best model.")
    return Drawn(fig, peak_headline("domain", nmis, counts, overall, domains, run), caption, [group])


@part.figure(DOMAINS)
def nmi_by_arm(groups):
    routed = [g for g in with_routing(groups) if routes(g)]
    if not routed:
        return Skip("no runs with several experts and a routing probe")
    nmis = {g.label: np.array([[nmi(c) for c in domain_counts(run)] for run in g.runs]) for g in routed}
    fig, ax = style.figure(height=4.6)
    for i, group in enumerate(routed):
        by_seed = nmis[group.label]  # seed x layer
        layers = np.arange(1, by_seed.shape[1] + 1)
        mean = by_seed.mean(axis=0)
        spread = np.clip([mean - by_seed.min(axis=0), by_seed.max(axis=0) - mean], 0, None)  # agreeing seeds: -1e-17
        ax.errorbar(layers + 0.06 * (i - (len(routed) - 1) / 2), mean, yerr=spread,  # side by side: bars stay apart
                    color=group.line_colour, marker="o", capsize=3, linestyle="--" if group.stale else "-",
                    label=group.label)
    ax.set(xlabel="layer", ylabel="NMI(expert; domain)", xticks=layers)
    ax.set_ylim(bottom=0)
    fig.legend(loc="outside lower center", ncols=4, fontsize=11)
    claimed = {g.label: list(nmis[g.label].mean(axis=1)) for g in plots.current(routed)}
    caption = ("How much of a token's domain its expert gives away, NMI = I(expert; domain) / H(domain), "
               "per layer of each seed's best model (mean over seeds, bars from the lowest to the highest "
               f"seed; top-2 arms count both of a token's experts); {plots.seeds_note(routed)}.")
    return Drawn(fig, nmi_ranking(claimed), caption, routed)


def nmi_ranking(per_seed):
    """The most and least domain-specialised arms by their NMI averaged over layers, with the arms
    the seeds cannot separate from the most; or a tie between all."""
    ranked = sorted(per_seed, key=lambda label: -statistics.fmean(per_seed[label]))
    high, low = ranked[0], ranked[-1]
    mean = {label: f"{statistics.fmean(values):.2f}" for label, values in per_seed.items()}
    if len(ranked) == 1:
        return f"{high}'s mean NMI(expert; domain) over layers: {mean[high]}"
    if plots.tied(per_seed[high], per_seed[low]):
        return "every arm ties on domain specialisation: mean NMI over layers " + \
            ", ".join(f"{label} {mean[label]}" for label in ranked)
    rivals = [label for label in ranked[1:] if plots.tied(per_seed[high], per_seed[label])]
    tie = f"; {', '.join(rivals)} tie{'s' if len(rivals) == 1 else ''} with it" if rivals else ""
    return f"{high} follows domains most (mean NMI over layers {mean[high]}{tie}), {low} least ({mean[low]})"


# the input classes of the names' characters; y counts as a vowel: in the census names it stands
# before a vowel (as in Yolanda) in only about 1 use in 6
VOWELS = "aeiouy"
INPUT_CLASSES = ("start", "vowel", "consonant", "other")


def character_class(token_id, char):
    """The class of the character a token reads: the start token (id 0), a vowel, a consonant or other."""
    if token_id == 0:
        return "start"
    if char.lower() in VOWELS:
        return "vowel"
    return "consonant" if char.isalpha() else "other"


def class_counts(by_input, tokens):
    """(experts x input classes, the classes present) from a layer's experts x vocabulary counts."""
    classes = [character_class(i, char) for i, char in enumerate(tokens)]
    present = [c for c in INPUT_CLASSES if c in classes]
    by_input = np.asarray(by_input)
    return np.column_stack([by_input[:, [c == name for c in classes]].sum(axis=1) for name in present]), present


def character_counts(routing):
    """Per layer, experts x columns: the input classes, then two columns that overlap them, the first
    letter (position 1) and the token that must predict the end (target 0). Returns (counts per layer,
    the number of input-class columns, the column names)."""
    counts = []
    for layer in routing["layers"]:
        by_class, present = class_counts(layer["by_input"], routing["tokens"])
        first, end = np.asarray(layer["by_position"])[:, 1], np.asarray(layer["by_target"])[:, 0]
        counts.append(np.column_stack([by_class, first, end]))
    return counts, len(present), [*present, "1st letter", "→ end"]


@part.figure(NAMES)
def expert_characters(groups):
    found = probed(groups, "moe-e4")
    if isinstance(found, Skip):
        return found
    group, runs = found
    run = runs[0]  # expert numbers differ between seeds: one seed's experts are shown
    counts, n_classes, columns = character_counts(routing(run))
    overall = [c[:, :n_classes].sum(axis=1) / c[:, :n_classes].sum() for c in counts]  # input classes: every token
    fig, axes = heatmap_grid(len(counts), len(columns))
    for layer, ax in enumerate(axes):
        image = share_heatmap(ax, counts[layer], overall[layer], columns, labelled=layer % 2 == 0)
        ax.axhline(n_classes - 0.5, color="white", linewidth=5)  # the rows below it overlap those above
        ax.set_title(f"layer {layer + 1}: NMI {nmi(counts[layer][:, :n_classes]):.2f}")
    fig.colorbar(image, ax=list(axes), shrink=0.6, label="share of the row's tokens")
    nmis = [[nmi(c[:, :n_classes]) for c in character_counts(routing(r))[0]] for r in runs]
    caption = (f"Where the test tokens of the names go in every layer of {run.name} (best model): rows above the "
               "white line are the class of the character a token reads (the start token, a vowel, y included, or a "
               "consonant); below it, tokens reading the first letter and tokens that must predict the end, which "
               "overlap them. Colour: share of the row's tokens sent to each expert; text: lift (1 = no "
               "preference). NMI = I(expert; input class) / H(input class), over the input classes only; the "
               "headline's is over every seed's best model.")
    return Drawn(fig, peak_headline("input class", nmis, counts, overall, columns, run), caption, [group])


# -----------------------------------------------------------------------------
# balancing: load, MaxVio and router entropy over training


@part.figure(DOMAINS)
def load_over_training(groups):
    shown = with_routing([g for g in (of_arm(groups, name) for name in BALANCING) if g])
    if not shown:
        return Skip("no balancing arm (" + ", ".join(BALANCING) + ") with a routing probe")
    runs = [g.runs[0] for g in shown]  # expert numbers differ between seeds: one seed each
    n_layers = len(moe_layers(runs[0]))
    fig, axes = style.figure(len(runs), n_layers, height=1.0 + 1.9 * len(runs), sharex=True, sharey=True,
                             squeeze=False)
    for row, run in zip(axes, runs):
        n_expert = expert_count(run)
        steps = [r["step"] for r in run.metrics]
        for layer, ax in enumerate(row):
            shares = np.array([loads(r, layer, n_expert) for r in run.metrics]).T  # expert x step
            ax.stackplot(steps, shares, colors=[style.colour(e) for e in range(n_expert)], linewidth=0)
            ax.set_ylim(0, 1)
            ax.set_yticks(np.arange(0, 1.01, 1 / n_expert) if n_expert <= 4 else [0, 0.5, 1])
            ax.xaxis.set_major_locator(MaxNLocator(2))
        row[0].set_ylabel(f"{BALANCING[run.config['arm']].removeprefix('with ')}\n({run.name})", fontsize=11)
    for layer, ax in enumerate(axes[0]):
        ax.set_title(f"layer {layer + 1}")
    for ax in axes[-1]:
        ax.set_xlabel("step")
    caption = ("Each expert's share of the test tokens' routing assignments (one colour per expert, stacked) over "
               "training, one seed per balancing method: equal bands are a balanced layer, one band filling the "
               "panel a collapsed one. The headline's numbers are means over every seed at the final evaluation; "
               "dead experts take under 1% of the tokens.")
    return Drawn(fig, busiest_headline(shown), caption, [g.lowest_seed() for g in shown])


def busiest_share(run):
    """The largest share of its layer's assignments any expert takes at the final evaluation."""
    record = run.metrics[-1]
    return max(loads(record, layer, expert_count(run)).max() for layer in moe_layers(run))


def dead_experts(run):
    """Experts, summed over layers, that take under 1% of the tokens at the final evaluation."""
    record = run.metrics[-1]
    return sum(record[f"moe/l{layer}/dead"] for layer in moe_layers(run))


def busiest_headline(groups):
    """'without balancing the busiest expert ends with 94% of its layer's tokens (3.0 dead experts);
    with the aux loss 43%, with bias balancing 82% (0.3 dead experts; a tie with moe-e4-none);
    uniform: 25%': the busiest expert of the worst layer at the final evaluation, mean over seeds."""
    first = [busiest_share(run) for run in groups[0].runs]
    parts = []
    for group in groups:
        shares = [busiest_share(run) for run in group.runs]
        dead = statistics.fmean(dead_experts(run) for run in group.runs)
        notes = [f"{dead:.1f} dead expert{'s' if dead != 1 else ''}"] if dead else []
        if group is not groups[0] and plots.tied(shares, first):
            notes.append(f"a tie with {groups[0].name}")
        parts.append((BALANCING[group.name], f"{statistics.fmean(shares):.0%}",
                      f" ({'; '.join(notes)})" if notes else ""))
    (phrase, share, notes), rest = parts[0], parts[1:]
    text = f"{phrase} the busiest expert ends with {share} of its layer's tokens{notes}"
    if rest:
        text += "; " + ", ".join(f"{phrase} {share}{notes}" for phrase, share, notes in rest)
    return text + f"; uniform: {1 / expert_count(groups[0].runs[0]):.0%}"


def worst_maxvio(run):
    """A derived metric of the run's evaluation records: the largest MaxVio (the busiest expert's
    load over the mean load, minus 1) over its MoE layers."""
    layers = moe_layers(run)
    return lambda record: max(record[f"moe/l{layer}/maxvio"] for layer in layers)


@part.figure(DOMAINS)
def balance_over_training(groups):
    shown = with_routing(of_arms(groups, BALANCING))
    if not shown:
        return Skip("no balancing arm (" + ", ".join(BALANCING) + ") with a routing probe")
    fig, ax = style.figure(height=4.2)
    for group in shown:
        draw_band(ax, group, worst_maxvio(group.runs[0]))
    collapse = expert_count(shown[0].runs[0]) - 1  # every token on one expert
    ax.axhline(collapse, color=style.GREY, linestyle=":", linewidth=1.5)
    ax.annotate("every token on one expert", (1, collapse), xycoords=("axes fraction", "data"), xytext=(0, 3),
                textcoords="offset points", ha="right", va="bottom", color=style.GREY, fontsize=11)
    ax.set(xlabel="step", ylabel="MaxVio of the worst layer")
    ax.set_ylim(0, collapse * 1.12)
    ax.legend(loc="best")
    caption = ("MaxVio (the busiest expert's load over the mean load, minus 1; 0 is perfectly balanced) of the most "
               "unbalanced layer at each evaluation, mean over seeds with the band from the lowest to the highest "
               f"seed; {plots.seeds_note(shown)}.")
    return Drawn(fig, maxvio_headline(plots.current(shown)), caption, shown)


def maxvio_headline(groups):
    """'MaxVio of the worst layer ends at 2.77 without balancing, 0.71 with the aux loss, 2.30 with bias
    balancing (a tie with moe-e4-none)': final evaluation, mean over seeds."""
    finals = [[worst_maxvio(run)(run.metrics[-1]) for run in g.runs] for g in groups]
    parts = [f"{statistics.fmean(values):.2f} {BALANCING[g.name]}" +
             (f" (a tie with {groups[0].name})" if i and plots.tied(values, finals[0]) else "")
             for i, (g, values) in enumerate(zip(groups, finals))]
    return f"MaxVio of the worst layer ends at {', '.join(parts)}"


ENTROPY_ARMS = ("moe-e4-none", "moe-e4", "moe-e4-bias", "moe-e4-top2", "moe-e8")


def mean_over_layers(run, name):
    """A derived metric of the run's evaluation records: moe/l<L>/<name> averaged over its MoE layers."""
    layers = moe_layers(run)
    return lambda record: statistics.fmean(record[f"moe/l{layer}/{name}"] for layer in layers)


@part.figure(DOMAINS)
def routing_entropy(groups):
    shown = with_routing(of_arms(groups, ENTROPY_ARMS))
    if not shown:
        return Skip("no arm among " + ", ".join(ENTROPY_ARMS) + " with a routing probe")
    fig, (per_token, of_mean) = style.figure(1, 2, height=4.6, sharey=True)
    for ax, name, what in ((per_token, "token_entropy", "per token"), (of_mean, "mean_entropy", "of the mean routing")):
        for group in shown:
            draw_band(ax, group, mean_over_layers(group.runs[0], name))
        ax.set(xlabel="step", title=what)
    per_token.set(ylabel="router entropy / log(experts)", ylim=(0, 1.05))
    fig.legend(*per_token.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=11)
    caption = ("Router entropy over training, averaged over the layers and normalised by log(experts): per token "
               "(left: how sure each token's routing is; 0 = one expert certain) and of the mean routing probability "
               "(right: how evenly the experts are used overall; 1 = uniform). Mean over seeds, band from the lowest "
               f"to the highest seed; {plots.seeds_note(shown)}.")
    return Drawn(fig, entropy_headline(plots.current(shown)), caption, shown)


def entropy_headline(groups):
    """The range of both entropies over the arms at the final evaluation, naming the arms at the ends."""
    parts = []
    for name, what in (("token_entropy", "per-token router entropy"), ("mean_entropy", "that of the mean routing")):
        finals = {g.label: [mean_over_layers(run, name)(run.metrics[-1]) for run in g.runs] for g in groups}
        ranked = sorted(finals, key=lambda label: statistics.fmean(finals[label]))
        low, high = ranked[0], ranked[-1]
        text = (f"{what} runs from {statistics.fmean(finals[low]):.2f} ({low}) "
                f"to {statistics.fmean(finals[high]):.2f} ({high})")
        parts.append(text + (" (a tie)" if plots.tied(finals[low], finals[high]) else ""))
    return "At the end, " + "; ".join(parts)


# -----------------------------------------------------------------------------
# the table


def parameters(group):
    """'613k / 215k': total and active parameters from the first run whose probes count them."""
    counted = next((run.probes["parameters"] for run in group.runs if "parameters" in (run.probes or {})), None)
    return f"{counted['total'] / 1000:.0f}k / {counted['active'] / 1000:.0f}k" if counted else "–"


@part.figure(DOMAINS)
def table(groups):
    keys = plots.loss_keys([run for g in groups for run in g.runs])
    rows = [[g.label, parameters(g), *(mean_sd(final_losses(g, key)).replace(" ± ", "\n± ") for key in keys)]
            for g in groups]
    header = ["arm", "parameters\ntotal / active", "test loss\nall", *(k.split("/", 1)[1] for k in keys[1:])]
    fig = plots.table_figure(header, rows, widths=[1.6, 1.4, *[0.95] * len(keys)],
                             align="lc" + "c" * len(keys), greyed_rows=plots.stale_rows(groups))
    caption = ("Every arm of moe-domains: total parameters and those a token's forward pass uses, and final "
               f"test loss overall and per domain (mean ± sd over seeds); {plots.seeds_note(groups)}. Step "
               "times are not here: the training runs shared the machine; moe-speed shows the benchmark's.")
    return Drawn(fig, table_headline(plots.current(groups)), caption, groups)


def table_headline(groups):
    """'dense-wide has the lowest final test loss (1.972); moe-e4-top2 (1.993) ties with it'."""
    ranked = sorted(groups, key=lambda g: statistics.fmean(final_losses(g)))
    best = ranked[0]
    rivals = [g for g in ranked[1:] if plots.tied(final_losses(best), final_losses(g))]
    ties = " and ".join(f"{g.label} ({statistics.fmean(final_losses(g)):.3f})" for g in rivals)
    return (f"{best.label} has the lowest final test loss ({statistics.fmean(final_losses(best)):.3f})"
            + (f"; {ties} {'tie' if len(rivals) > 1 else 'ties'} with it" if rivals else ""))

# -----------------------------------------------------------------------------
# step time: the benchmark's record (python benchmarks/moe_speed.py --record PATH)


@part.figure(record="moe_speed")
def moe_speed(record):
    configs = record["configs"]
    dense = next(c for c in configs if c["dispatch"] == "dense")
    fig, ax = style.figure(height=1.3 + 0.45 * len(configs))
    for row, config in enumerate(configs):
        colour = SPEED_COLOURS[config["dispatch"]]
        rounds = np.array(config["round_medians"]) / np.array(dense["round_medians"])  # rounds alternate
        ax.barh(row, config["x_dense"], height=0.6, color=colour, alpha=0.35)
        ax.scatter(rounds, [row] * len(rounds), s=25, color=colour, zorder=3)
        ax.annotate(f"{config['x_dense']:.2f}×", (max(config["x_dense"], *rounds), row), xytext=(6, 0),
                    textcoords="offset points", va="center", fontsize=11)
    ax.axvline(1, color="black", linewidth=1)
    ax.set_yticks(range(len(configs)), [c["label"] for c in configs])
    ax.set_ylim(len(configs) - 0.5, -0.5)  # dense on top
    ax.set_xlim(0, 1.2 * max(max(c["round_medians"]) / min(dense["round_medians"]) for c in configs))
    ax.set_xlabel("step time / dense's")
    ax.grid(axis="y", visible=False)
    caption = (f"Training step time of each configuration over dense's, all measured in one run "
               f"({record['command']}): the bar is the ratio of the medians over {record['rounds']} "
               f"alternating rounds of {record['steps']} steps, the dots each round's ratio. "
               f"{record['threads']} torch thread(s), batch {record['batch_size']}, on {record['data']}: "
               f"{record['padding']:.0%} of a batch's positions are padding, which the MoE path skips and "
               "dense computes. A masked reference computes every expert on every routed token, then masks.")
    return Drawn(fig, speed_headline(configs), caption)


SPEED_COLOURS = {"dense": style.GREY, "sparse": style.colour(0), "masked": style.colour(1)}


def speed_headline(configs):
    """'a training step of moe E=4 top-1 takes 1.09× dense's time, moe E=8 top-2 1.21×; computing
    every expert and masking, 2.31× and 2.52×': each MoE (sparse dispatch, more than one expert)
    and the masked reference of the same model."""
    moes = [c for c in configs if c["dispatch"] == "sparse" and c["settings"].get("n_expert", 0) > 1]
    references = [c for c in configs if c["dispatch"] == "masked"]
    masked = [next((m for m in references if m["settings"] == moe["settings"]), None) for moe in moes]
    first, *rest = moes
    text = f"a training step of {first['label']} takes {first['x_dense']:.2f}× dense's time"
    text += "".join(f", {moe['label']} {moe['x_dense']:.2f}×" for moe in rest)
    if all(masked):
        text += "; computing every expert and masking, " + " and ".join(f"{m['x_dense']:.2f}×"
                                                                      for m in masked)
    return text
