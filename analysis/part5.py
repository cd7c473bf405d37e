"""Part 5's figures: adaptive computation time (02-act.patch). Recipe act-tasks asks whether ACT buys
accuracy per unit of compute on four algorithmic tasks, against the same shared block at fixed
depths and the untied 4-layer spine; act-names asks where a character model ponders on names;
act-moe asks how a mixture of experts inside the shared block routes step by step.

Accuracies and steps are read at the evaluation whose weights model.pt holds (metrics.jsonl): the
one with the lowest loss on validation items, held back from training and distinct from the test
items (a first-version run without them, at its final evaluation). Exact-match greedy answers on
up to 100 test items per (task, difficulty), and the mean number of block steps a token took. A task's
in-distribution score is the mean over its trained difficulties; its extrapolation score the
mean over those the recipe held out of training. ACT against fixed depth is decided by the lab's
one rule (plots.difference: a Welch interval over seeds). Per-character steps come from the probes
of the same model (probes.json); wall time from the benchmark's record, not from the training runs."""

import statistics

import numpy as np

from analysis import plots, style
from analysis.parts import Drawn, Part, Skip

TASKS_RECIPE, NAMES_RECIPE, MOE_RECIPE = "act-tasks", "act-names", "act-moe"
TASKS = ("parity", "addition", "parens", "ordered")
TASK_TITLES = {"parity": "parity", "addition": "addition", "parens": "balanced brackets", "ordered": "sortedness"}
COLLAPSED = 1.5  # mean steps a token under which halting counts as collapsed


def arm_name(config):
    return config["arm"]


part = Part("part5", label=arm_name)


# -----------------------------------------------------------------------------
# what a run's chosen evaluation says


def evaluation(run):
    """The evaluation a run is read at: model.pt's, chosen on validation items; a first-version
    run, trained without them, at its final evaluation (its lowest test loss would be chosen on
    the test items)."""
    return run.chosen if "valid_loss" in run.metrics[-1] else run.metrics[-1]


def kind(group):
    """'act', 'fixed' or 'dense', from the group's flags."""
    flags = group.resolved
    return "act" if flags["act-max-steps"] else "fixed" if flags["act-fixed-steps"] else "dense"


def depth(run_or_group):
    """Block steps: a fixed depth, ACT's most, or the untied stack's layers."""
    flags = run_or_group.config["resolved"]
    return flags["act-fixed-steps"] or flags["act-max-steps"] or flags["n-layer"]


def held_out(run):
    return set(run.config["resolved"]["held-out"])


def domains(run, task, extrapolation=False):
    """The task's domains in the run's evaluations, by difficulty: trained, or held out."""
    names = sorted(key.split("/", 1)[1] for key in evaluation(run) if key.startswith(f"answer_acc/{task}-"))
    return [name for name in names if (name in held_out(run)) == extrapolation]


def difficulty(domain):
    return int(domain.rsplit("-", 1)[1])


def accuracy(run, task, extrapolation=False):
    names = domains(run, task, extrapolation)
    return statistics.fmean(evaluation(run)[f"answer_acc/{name}"] for name in names) if names else None


def mean_steps(run, task=None):
    """Block steps a token took: ACT's measured mean (over the task's trained domains), else the
    fixed depth, or the untied layers."""
    if not run.config["resolved"]["act-max-steps"]:
        return depth(run)
    record = evaluation(run)
    if task is None:
        return record["act/mean_steps"]
    return statistics.fmean(record[f"act/steps/{name}"] for name in domains(run, task))


def spearman(xs, ys):
    """Spearman's rank correlation (average ranks for ties); 0 when either side is constant."""
    rx, ry = ranks(xs), ranks(ys)
    if len(set(rx)) < 2 or len(set(ry)) < 2:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2
        i = j + 1
    return result


def fixed_curve(groups, task, extrapolation=False):
    """Tied fixed depth: {N: [accuracy per seed]} of the current fixed-depth groups."""
    return {depth(g): [accuracy(r, task, extrapolation) for r in g.runs]
            for g in plots.current(groups) if kind(g) == "fixed"}


def fixed_at(groups, task, steps):
    """Each fixed-depth seed's accuracy at a fractional depth: linear between that seed's own runs
    at the nearest depths (a seed needs a run at a depth on each side)."""
    by_seed = {}
    for group in (g for g in plots.current(groups) if kind(g) == "fixed"):
        for run in group.runs:
            by_seed.setdefault(run.config["seed"], {})[depth(group)] = accuracy(run, task)
    return [float(np.interp(steps, sorted(curve), [curve[d] for d in sorted(curve)]))
            for curve in by_seed.values() if min(curve) <= steps <= max(curve)]


def act_groups(groups):
    return [g for g in groups if kind(g) == "act"]


def tau(group):
    return group.resolved["ponder-cost"]


def by_tau(groups):
    """The ACT groups that differ only in tau (the sweep), lowest tau first."""
    sweep = [g for g in act_groups(groups) if "halt-bias-init" not in g.flags]
    return sorted(sweep, key=tau)


# -----------------------------------------------------------------------------
# 1. accuracy against compute


@part.figure(TASKS_RECIPE)
def accuracy_vs_steps(groups):
    if not act_groups(groups) or not any(kind(g) == "fixed" for g in groups):
        return Skip("needs both ACT and fixed-depth arms")
    fig, axes = style.figure(2, 2, height=7.2, sharex=True, sharey=True)
    for ax, task in zip(axes.flat, TASKS):
        draw_fixed_line(ax, groups, task)
        for group in by_tau(groups) + [g for g in act_groups(groups) if g not in by_tau(groups)]:
            xs = [mean_steps(r, task) for r in group.runs]
            ax.scatter(xs, [accuracy(r, task) for r in group.runs], color=group.line_colour, s=28,
                       marker="o" if group in by_tau(groups) else "^", label=group.name, zorder=3)
        for group in (g for g in groups if kind(g) == "dense"):
            ax.scatter([depth(group)] * len(group.runs), [accuracy(r, task) for r in group.runs], marker="*",
                       s=90, color="black" if not group.stale else style.GREY, label="untied spine", zorder=4)
        ax.set(title=TASK_TITLES[task], ylim=(0, 1.02))
    fig.supxlabel("block steps a token (mean)")
    fig.supylabel("exact answers, trained difficulties")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), loc="outside lower center", ncols=4, fontsize=10)
    caption = ("Exact-match greedy answers on held-in test items (mean over each task's trained difficulties) "
               "against the block steps a token takes: tied fixed depth 1-6 as a line (mean over seeds, bars from "
               "the lowest to the highest seed), each ACT run as a point (one per ponder cost tau and seed), the "
               "untied 4-layer spine as stars; each run at its chosen evaluation, " + plots.seeds_note(groups) + ".")
    return Drawn(fig, pareto_headline(groups), caption, groups)


def draw_fixed_line(ax, groups, task):
    curve = fixed_curve(groups, task)
    if not curve:
        return
    depths = sorted(curve)
    means = [statistics.fmean(curve[d]) for d in depths]
    low = [m - min(curve[d]) for m, d in zip(means, depths)]
    high = [max(curve[d]) - m for m, d in zip(means, depths)]
    ax.errorbar(depths, means, yerr=[low, high], color=style.GREY, linewidth=2, capsize=3,
                label="tied fixed depth", zorder=2)


def act_gaps(groups, task):
    """Per ACT group of the sweep: its seeds' accuracy against the fixed-depth seeds' accuracy at
    the group's mean steps, as a plots.difference."""
    gaps = {}
    for group in plots.current(by_tau(groups)):
        fixed = fixed_at(groups, task, statistics.fmean(mean_steps(r, task) for r in group.runs))
        if len(fixed) > 1 and len(group.runs) > 1:
            gaps[group.name] = plots.difference([accuracy(r, task) for r in group.runs], fixed)
    return gaps


def pareto_headline(groups):
    """For each task, ACT's best and worst tau against fixed depth at the same mean steps, by the
    lab's rule: the best alone would flatter ACT."""
    parts = []
    for task in TASKS:
        gaps = sorted(act_gaps(groups, task).values(), key=lambda gap: gap.mean)
        if gaps:
            verdicts = [gap_verdict(gaps[-1])] + ([gap_verdict(gaps[0])] if len(gaps) > 1 else [])
            parts.append(f"{TASK_TITLES[task]} {' to '.join(dict.fromkeys(verdicts))}")
    return "ACT minus tied fixed depth at the same mean steps, best to worst tau: " + ", ".join(parts)


def gap_verdict(gap):
    return "ties" if gap.verdict == "tie" else f"{gap.mean:+.2f}"


# -----------------------------------------------------------------------------
# 2. steps and accuracy against difficulty


@part.figure(TASKS_RECIPE)
def steps_vs_difficulty(groups):
    sweep = [g for g in plots.current(by_tau(groups)) if tau(g) > 0]
    if not sweep:
        return Skip("no ACT arm with a ponder cost")
    fig, axes = style.figure(2, 2, height=7.0)
    for ax, task in zip(axes.flat, TASKS):
        for group in sweep:
            names = domains(group.runs[0], task) + domains(group.runs[0], task, extrapolation=True)
            names = sorted(names, key=difficulty)
            values = np.array([[evaluation(r)[f"act/answer_steps/{n}"] for n in names] for r in group.runs])
            xs = [difficulty(n) for n in names]
            ax.fill_between(xs, values.min(axis=0), values.max(axis=0), color=group.line_colour, alpha=0.2, linewidth=0)
            ax.plot(xs, values.mean(axis=0), color=group.line_colour, linewidth=2, marker="o", markersize=4,
                    label=f"tau {tau(group):g}")
        shade_held_out(ax, sweep[0].runs[0], task)
        ax.set(title=TASK_TITLES[task], xlabel=DIFFICULTY_LABEL[task])
    for ax in axes[:, 0]:
        ax.set_ylabel("steps at the answer")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(sweep), fontsize=10)
    caption = ("Mean block steps at the positions that write the answer, by difficulty, one line per ponder cost "
               "(mean over seeds, band from the lowest to the highest seed); the grey span marks difficulties held "
               "out of training. Spearman's rho between difficulty and steps is computed per seed over the "
               "difficulties; each run at its chosen evaluation, " + plots.seeds_note(sweep) + ".")
    return Drawn(fig, rho_headline(sweep), caption, sweep)


DIFFICULTY_LABEL = {"parity": "bits", "addition": "carries", "parens": "nesting depth", "ordered": "digits"}


def shade_held_out(ax, run, task):
    held = [difficulty(n) for n in domains(run, task, extrapolation=True)]
    if held:
        ax.axvspan(min(held) - 0.5, max(held) + 0.5, color=style.GREY, alpha=0.2, linewidth=0)


def rho(run, task):
    names = domains(run, task) + domains(run, task, extrapolation=True)
    return spearman([difficulty(n) for n in names], [evaluation(run)[f"act/answer_steps/{n}"] for n in names])


def rho_headline(sweep):
    """Spearman's rho of the sweep's middle ponder cost, per task, mean ± sd over seeds."""
    group = sweep[len(sweep) // 2]
    parts = [f"{TASK_TITLES[t]} {plots.mean_sd([rho(r, t) for r in group.runs], 2)}" for t in TASKS]
    return f"Steps against difficulty at tau {tau(group):g}, Spearman rho: " + ", ".join(parts)


@part.figure(TASKS_RECIPE)
def accuracy_vs_difficulty(groups):
    shown = [g for g in plots.current(groups) if kind(g) == "dense" or g.name in ("fixed-6",)]
    shown += sorted(plots.current(by_tau(groups)), key=lambda g: -statistics.fmean(
        accuracy(r, t) for r in g.runs for t in TASKS))[:1]
    if len(shown) < 2:
        return Skip("needs the dense arm, fixed-6 and an ACT arm")
    fig, axes = style.figure(2, 2, height=7.0, sharey=True)
    for ax, task in zip(axes.flat, TASKS):
        for group in shown:
            names = sorted(domains(group.runs[0], task) + domains(group.runs[0], task, True), key=difficulty)
            values = np.array([[evaluation(r)[f"answer_acc/{n}"] for n in names] for r in group.runs])
            xs = [difficulty(n) for n in names]
            ax.fill_between(xs, values.min(axis=0), values.max(axis=0), color=group.line_colour, alpha=0.2, linewidth=0)
            ax.plot(xs, values.mean(axis=0), color=group.line_colour, linewidth=2, marker="o", markersize=4,
                    label=group.name)
        shade_held_out(ax, shown[0].runs[0], task)
        ax.axhline(0.5, color=style.GREY, linewidth=1, linestyle=":")
        ax.set(title=TASK_TITLES[task], xlabel=DIFFICULTY_LABEL[task], ylim=(0, 1.02))
    for ax in axes[:, 0]:
        ax.set_ylabel("exact answers")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(shown), fontsize=10)
    caption = ("Exact-match answers by difficulty for the untied spine, tied fixed depth 6 and the ACT arm with "
               "the best mean accuracy (mean over seeds, band from the lowest to the highest seed); grey: held out "
               "of training (extrapolation); dotted: guessing a yes/no answer. " + plots.seeds_note(shown) + ".")
    return Drawn(fig, extrapolation_headline(shown), caption, shown)


def extrapolation_headline(shown):
    parts = []
    for task in TASKS:
        scores = {g.name: statistics.fmean(accuracy(r, task, True) for r in g.runs) for g in shown}
        best = max(scores, key=scores.get)
        parts.append(f"{TASK_TITLES[task]} {scores[best]:.2f} ({best})")
    return "On held-out difficulties the best reach " + ", ".join(parts)


# -----------------------------------------------------------------------------
# 3. where the model ponders


def ponder_probe(run):
    return (run.probes or {}).get("ponder")


@part.figure(NAMES_RECIPE)
def ponder_on_names(groups):
    shown = [g for g in plots.current(act_groups(groups)) if ponder_probe(g.runs[0])]
    if not shown:
        return Skip("no ACT run with a ponder probe")
    fig, (by_position, by_class) = style.figure(1, 2, height=4.2, width_ratios=[1.4, 1])
    for group in shown:
        probes = [ponder_probe(r) for r in group.runs]
        positions = np.array([[m if m is not None else np.nan for m in p["by_position"]] for p in probes])
        xs = np.arange(positions.shape[1])
        by_position.plot(xs, np.nanmean(positions, axis=0), color=group.line_colour, linewidth=2, marker="o",
                         markersize=3, label=group.name)
        classes = [character_classes(p) for p in probes]
        names = list(classes[0])
        means = [statistics.fmean(c[name] for c in classes) for name in names]
        offset = 0.4 * (shown.index(group) - (len(shown) - 1) / 2)
        by_class.bar(np.arange(len(names)) + offset, means, width=0.4, color=group.line_colour)
        by_class.set_xticks(np.arange(len(names)), names, rotation=20)
    by_position.set(xlabel="position in the name (0 reads <start>)", ylabel="block steps (mean)")
    by_position.legend(fontsize=10)
    by_class.set(ylabel="block steps (mean)")
    caption = ("Where ACT ponders on names (best model, every test name): mean block steps by position (left) and "
               "by the character a position reads or predicts (right: reading <start>, a vowel or a consonant; "
               "predicting the end); mean over seeds. " + plots.seeds_note(shown) + ".")
    return Drawn(fig, names_headline(shown), caption, shown)


VOWELS = set("aeiouy")


def character_classes(probe):
    """Mean steps reading <start>, a vowel, a consonant, and predicting the end of the name."""
    tokens, by_input = probe["tokens"], probe["by_input"]

    def mean_of(indices):
        values = [by_input[i] for i in indices if by_input[i] is not None]
        return statistics.fmean(values) if values else float("nan")
    vowels = [i for i, t in enumerate(tokens) if t in VOWELS]
    consonants = [i for i, t in enumerate(tokens) if i > 0 and t not in VOWELS]
    return {"<start>": by_input[0], "vowel": mean_of(vowels), "consonant": mean_of(consonants),
            "predicts end": probe["by_target"][0]}


def names_headline(shown):
    group = shown[-1]
    classes = [character_classes(ponder_probe(r)) for r in group.runs]
    means = {name: statistics.fmean(c[name] for c in classes) for name in classes[0]}
    most, least = max(means, key=means.get), min(means, key=means.get)
    if means[most] - means[least] < 0.05:
        return f"On names, {group.name} takes {means[most]:.2f} steps everywhere: it does not choose where to ponder"
    return (f"On names, {group.name} ponders most {describe(most)} ({means[most]:.2f} steps) "
            f"and least {describe(least)} ({means[least]:.2f})")


def describe(character_class):
    return {"<start>": "reading the start", "vowel": "reading a vowel", "consonant": "reading a consonant",
            "predicts end": "where the name ends"}[character_class]


@part.figure(NAMES_RECIPE, TASKS_RECIPE)
def ponder_bars(names_groups, task_groups):
    names_group = next((g for g in plots.current(act_groups(names_groups)) if tau(g) > 0.001), None)
    task_group = next((g for g in plots.current(by_tau(task_groups)) if tau(g) == 0.01), None)
    if names_group is None or task_group is None:
        return Skip("needs act-names and act-tasks ACT runs with ponder probes")
    names_items = ponder_probe(names_group.runs[0])["items"][:3]
    task_items = [item for item in ponder_probe(task_group.runs[0])["items"]
                  if item["domain"] in ("addition-03", "parity-08", "ordered-10")][::3][:3]
    items = names_items + task_items
    fig, axes = style.figure(len(items), 1, height=1.15 * len(items) + 0.6)
    for ax, item in zip(axes, items):
        xs = np.arange(len(item["tokens"]))
        ax.bar(xs, item["ponder"], color=style.colour(0), width=0.8)
        ax.set_xticks(xs, item["tokens"], fontsize=11)
        ax.set_ylim(0, max(b["ponder"] and max(b["ponder"]) for b in items) + 0.3)
        ax.set_ylabel(item["domain"], rotation=0, ha="right", va="center", fontsize=10)
        ax.grid(axis="x", visible=False)
    caption = ("Graves' figure: the ponder cost N + R of each position (the character it reads; '.' is <start>) "
               f"for three test names ({names_group.name}) and three task items ({task_group.name}), lowest seed, "
               "best model.")
    headline = "Ponder cost per character: " + ", ".join(f"'{i['text']}' peaks at '{peak(i)}'" for i in items[:2])
    return Drawn(fig, headline, caption, [names_group.lowest_seed(), task_group.lowest_seed()])


def peak(item):
    return item["tokens"][int(np.argmax(item["ponder"]))]


# -----------------------------------------------------------------------------
# 4. halting over training


@part.figure(TASKS_RECIPE)
def halting_over_training(groups):
    shown = plots.current(act_groups(groups))
    if not shown:
        return Skip("no ACT arm")
    fig, axes = style.figure(len(shown), 1, height=0.95 * len(shown) + 1.0, sharex=True)
    axes = np.atleast_1d(axes)
    for ax, group in zip(axes, shown):
        run = group.runs[0]
        k = run.config["resolved"]["act-max-steps"]
        records = [r for r in run.metrics if "act/hist/s1" in r]
        grid = np.array([[r[f"act/hist/s{n}"] for r in records] for n in range(1, k + 1)])
        steps = [r["step"] for r in records]
        ax.imshow(grid, aspect="auto", origin="lower", cmap="Blues", vmin=0, vmax=1,
                  extent=(steps[0], steps[-1], 0.5, k + 0.5), interpolation="nearest")
        ax.set_ylabel(group.name, rotation=0, ha="right", va="center", fontsize=10)
        ax.set_yticks([1, k])
        ax.grid(False)
    axes[-1].set_xlabel("training step")
    caption = ("The share of test tokens halting after each number of steps (rows 1 to K, darker = more), at "
               "every evaluation, for each ACT arm (lowest seed). A collapse shows as everything in the bottom row.")
    return Drawn(fig, collapse_headline(shown), caption, [g.lowest_seed() for g in shown])


def collapse_headline(shown):
    collapsed = [g.name for g in shown if statistics.fmean(mean_steps(r) for r in g.runs) < COLLAPSED]
    ends = ", ".join(f"{g.name} {statistics.fmean(mean_steps(r) for r in g.runs):.1f}" for g in shown)
    verdict = (f"halting collapsed (under {COLLAPSED} steps) in {', '.join(collapsed)}" if collapsed
               else f"no arm collapsed under {COLLAPSED} steps")
    return f"Mean steps at the end: {ends}; {verdict}"


# -----------------------------------------------------------------------------
# 5. wall time against work


@part.figure(record="act_speed")
def wall_time(record):
    configs = record["configs"]
    fixed = [c for c in configs if c["label"].startswith("fixed")]
    act = [c for c in configs if c["label"].startswith("act")]
    fig, ax = style.figure(height=4.4)
    ax.plot([c["mean_steps"] for c in fixed], [c["ms_per_step"] for c in fixed], color=style.GREY, linewidth=2,
            marker="s", label="tied fixed depth 1..K")
    for i, c in enumerate(act):
        ax.scatter(c["mean_steps"], c["ms_per_step"], color=style.colour(i), s=60, zorder=3, label=c["label"])
    ax.set(xlabel="block steps a token (mean)", ylabel="ms per training step", ylim=(0, None))
    ax.legend(fontsize=10)
    caption = (f"Median training step time ({record['rounds']} rounds of {record['steps']} steps, "
               f"{record['threads']} thread, batch {record['batch_size']}) against the mean block steps a token "
               "takes, from benchmarks/act_speed.py: tied fixed depths as a line, ACT at each ponder cost as points.")
    return Drawn(fig, wall_time_headline(act, record["max_steps"]), caption, [])


SAME_WORK_TARGET = 1.25  # the post's target: at most this much slower than the fixed depth doing the same work


def wall_time_headline(act, max_steps):
    """How ACT's step time compares with the fixed depth doing its mean work, and with fixed depth K at
    its cheapest: what the adaptive model costs for what it saves."""
    ratios = [c["x_fixed_same_work"] for c in act]
    cheapest = min(act, key=lambda c: c["mean_steps"])
    span = f"{min(ratios):.2f}-{max(ratios):.2f}x" if len(act) > 1 else f"{ratios[0]:.2f}x"
    verdict = ("ACT's time tracks its work" if max(ratios) <= SAME_WORK_TARGET
               else "ACT's time falls with its work, plus an overhead")
    return (f"{verdict}: ACT costs {span} the fixed depth doing the same mean steps; at "
            f"{cheapest['mean_steps']:.1f} steps, {cheapest['x_fixed_max']:.2f}x fixed depth {max_steps}")


# -----------------------------------------------------------------------------
# 6. experts step by step


@part.figure(MOE_RECIPE)
def experts_by_step(groups):
    group = next((g for g in plots.current(act_groups(groups)) if g.resolved["n-expert"]), None)
    if group is None:
        return Skip("no ACT arm with experts")
    k, e = group.resolved["act-max-steps"], group.resolved["n-expert"]
    # one seed drawn: expert numbers are arbitrary labels, so they cannot be averaged over seeds
    run = group.runs[0]
    shares = step_shares(run, k, e)
    probe = ponder_probe(run)
    fig, (left, right) = style.figure(1, 2, height=4.2)
    left.imshow(shares, aspect="auto", origin="lower", cmap="Blues", vmin=0, vmax=1,
                extent=(-0.5, e - 0.5, 0.5, k + 0.5))
    left.set(xlabel="expert", ylabel="step", title="share of each step's tokens", xticks=range(e))
    left.grid(False)
    if probe:
        counts = np.array(probe["experts_by_steps"])  # [N-1][n-1][e]
        first = counts[:, 0, :]
        taken = first.sum(axis=1) > 0
        share = first[taken] / first[taken].sum(axis=1, keepdims=True)
        right.imshow(share, aspect="auto", origin="lower", cmap="Blues", vmin=0, vmax=1,
                     extent=(-0.5, e - 0.5, 0.5, taken.sum() + 0.5))
        right.set_yticks(range(1, taken.sum() + 1), [str(n + 1) for n in np.flatnonzero(taken)])
        right.set(xlabel="expert at step 1", ylabel="steps the token took", title="by how long tokens ponder",
                  xticks=range(e))
        right.grid(False)
    shifts = [routing_shift(step_shares(r, k, e)) for r in group.runs]
    spread = f" ± {statistics.stdev(shifts):.0%}" if len(shifts) > 1 else ""
    headline = (f"With experts in the shared block, step 2 routes differently from step 1: "
                f"{statistics.fmean(shifts):.0%}{spread} of the tokens' routing mass moves")
    caption = ("ACT with 4 experts in its shared block on the moe-domains mixture, " + run.name + ": the share of "
               "each step's tokens sent to each expert (left, chosen evaluation) and, for tokens grouped by how many "
               "steps they took in all, their expert at step 1 (right, best model). The headline's shift is the "
               "mean over seeds, " + plots.seeds_note([group]) + ".")
    return Drawn(fig, headline, caption, [group])


def step_shares(run, k, e):
    """[step][expert]: the share of each step's tokens that each expert takes (chosen evaluation)."""
    return np.array([[evaluation(run)[f"act/expert/s{n}/e{x}"] for x in range(e)] for n in range(1, k + 1)])


def routing_shift(shares):
    """The share of the routing mass that moves between step 1 and step 2 (total variation)."""
    return 0.5 * np.abs(shares[0] - shares[1]).sum()


# -----------------------------------------------------------------------------
# the table


@part.figure(TASKS_RECIPE)
def table(groups):
    rows = []
    for group in groups:
        cells = [group.label, f"{group.runs[0].summary['params']:,}",
                 f"{statistics.fmean(mean_steps(r) for r in group.runs):.2f}"]
        for task in TASKS:
            held_in = [accuracy(r, task) for r in group.runs]
            held = [accuracy(r, task, True) for r in group.runs]
            cells.append(f"{statistics.fmean(held_in):.2f} / {statistics.fmean(held):.2f}")
        rows.append(cells)
    header = ["arm", "params", "steps", *(TASK_TITLES[t].replace(" ", "\n") for t in TASKS)]
    fig = plots.table_figure(header, rows, widths=[1.3, 0.8, 0.7, 1.25, 1.25, 1.25, 1.25], align="lrrcccc",
                             greyed_rows=plots.stale_rows(groups))
    caption = ("Every arm of act-tasks: mean block steps a token, and exact answers per task as trained "
               "difficulties / held-out difficulties (mean over seeds; each run at its chosen evaluation), and the "
               "parameters of each arm (seeds alike). "
               + plots.seeds_note(groups) + ".")
    best = max(plots.current(groups), key=lambda g: statistics.fmean(
        accuracy(r, t) for r in g.runs for t in TASKS))
    return Drawn(fig, f"{best.name} answers most trained items right over the four tasks", caption, groups)
