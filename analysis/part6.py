"""Part 6's figures: tool tokens under a cost (03-tool-token.patch). Recipe tool-economics asks when a
calculator call is worth its cost and whether a small model learns that decision: call labels from
the cost rule at several costs, with and without dream rounds, against the model without tools.

Everything is measured on the fixed held-out queries of each type (200 each: memorised facts,
computed sums, names), at the final evaluation. The baselines come from the same model and the
same items (tool_eval.json): never calling is its answers with calls forbidden, always calling
its answers with a call forced, random calling mixes the two at the policy's call rate, and the
oracle calls exactly where its own answer is wrong. A model's threshold curve calls where its
probability of opening a call is above a threshold, for every threshold."""

import statistics

import numpy as np

from analysis import plots, style
from analysis.parts import Drawn, Part, Skip

RECIPE = "tool-economics"
TYPES = ("memorised", "computed", "names")


def arm_name(config):
    return config["arm"]


part = Part("part6", label=arm_name)


def evaluation(run):
    """tool_eval.json: the final evaluation of every held-out query, and the baselines."""
    return run.json("tool_eval.json")


def rounds(run):
    return run.json("tool_rounds.json")


def cost(group):
    return group.resolved["tool-cost"]


def learned(groups, kind):
    """The arms that learn when to call, 'labels' or 'dream', by cost."""
    return sorted([g for g in plots.current(groups) if g.name.startswith(kind + "-")], key=cost)


def final(run, key):
    return run.metrics[-1][key]


def mean_final(group, key):
    return statistics.fmean(final(run, key) for run in group.runs)


def apgr(curve, never, always):
    """RouteLLM's average performance gap recovered: the share of the gap between never and
    always calling that a policy recovers, (acc - never) / (always - never), averaged over call
    rates from 0 to 1 (the area under it), from its threshold curve of (calls, acc) points. Random
    calling scores 0.5; a policy that calls where it helps first scores more."""
    gap = always - never
    if abs(gap) < 1e-9:
        return float("nan")
    points = sorted({(0.0, never), (1.0, always), *((p["calls"], p["acc"]) for p in curve)})
    calls = np.array([c for c, _ in points])
    recovered = (np.array([a for _, a in points]) - never) / gap
    return float(np.sum((calls[1:] - calls[:-1]) * (recovered[1:] + recovered[:-1]) / 2))


def run_apgr(run):
    e = evaluation(run)
    return apgr(e["thresholds"], e["baselines"]["never"]["acc"], e["baselines"]["always"]["acc"])


# -----------------------------------------------------------------------------
# 1. accuracy against calls


@part.figure(RECIPE)
def accuracy_vs_calls(groups):
    shown = [g for g in learned(groups, "labels") + learned(groups, "dream") if evaluation(g.runs[0])]
    if not shown:
        return Skip("no learned calling policy with tool_eval.json")
    fig, ax = style.figure(height=5.0)
    costs = sorted({cost(g) for g in shown})
    for group in shown:
        colour = style.colour(costs.index(cost(group)))  # one colour per cost, a marker per kind
        colour = style.greyed(colour) if group.stale else colour
        e = evaluation(group.runs[0])
        curve = sorted((p["calls"], p["acc"]) for p in e["thresholds"])
        ax.plot([c for c, _ in curve], [a for _, a in curve], color=colour, linewidth=1,
                alpha=0.6, linestyle="--" if group.name.startswith("dream") else "-")
        points = [evaluation(r)["baselines"]["policy"] for r in group.runs if evaluation(r)]
        ax.scatter([p["calls"] for p in points], [p["acc"] for p in points], color=colour, s=40,
                   marker="o" if group.name.startswith("labels") else "D", zorder=3, label=group.name)
    baselines = [evaluation(r)["baselines"] for g in shown for r in g.runs if evaluation(r)]
    for name, marker in (("never", "v"), ("always", "^"), ("oracle", "*")):
        calls = statistics.fmean(b[name]["calls"] for b in baselines)
        acc = statistics.fmean(b[name]["acc"] for b in baselines)
        ax.scatter([calls], [acc], marker=marker, s=140, color="black", zorder=4)
        ax.annotate(name, (calls, acc), textcoords="offset points", xytext=(8, -4), fontsize=11)
    never = statistics.fmean(b["never"]["acc"] for b in baselines)
    always = statistics.fmean(b["always"]["acc"] for b in baselines)
    ax.plot([0, 1], [never, always], color=style.GREY, linewidth=1, linestyle=":", label="random calling")
    ax.set(xlabel="share of held-out queries that call the tool", ylabel="exact answers", xlim=(-0.02, 1.05))
    ax.legend(fontsize=9, ncols=2, loc="lower center")  # between the never and always markers
    caption = ("Each learned policy's exact answers against its call rate on the 600 held-out queries: one point "
               "per seed (circles: labels from the cost rule, diamonds: labels plus dream rounds), its threshold "
               "curve on the probability of opening a call (lowest seed), never / always / oracle calling (the "
               "same models' answers, mean over runs) and random calling (dotted); final evaluation. APGR "
               "(RouteLLM's): the share of the never-to-always gap recovered, averaged over call rates (random "
               "calling: 0.5). " + plots.seeds_note(shown) + ".")
    return Drawn(fig, apgr_headline(shown), caption, shown)


def oracle_share(run):
    """The share of the gap between never calling and the oracle that the run's own policy recovers."""
    b = evaluation(run)["baselines"]
    gap = b["oracle"]["acc"] - b["never"]["acc"]
    return (b["policy"]["acc"] - b["never"]["acc"]) / gap if gap > 1e-9 else float("nan")


def apgr_headline(shown):
    """How much of the never-to-oracle gap the learned policies recover, and RouteLLM's APGR, which
    reads beyond 1 when always calling is hardly better than never calling (calls on names answer
    nothing, so always calling is not the strong baseline RouteLLM assumes)."""
    runs = [r for g in shown for r in g.runs if evaluation(r)]
    shares = {g.name: [oracle_share(r) for r in g.runs if evaluation(r)] for g in shown}
    best = max(shares, key=lambda name: statistics.fmean(shares[name]))
    means = [statistics.fmean(v) for v in shares.values()]
    scores = [v for v in (run_apgr(r) for r in runs) if not np.isnan(v)]
    never = statistics.fmean(evaluation(r)["baselines"]["never"]["acc"] for r in runs)
    always = statistics.fmean(evaluation(r)["baselines"]["always"]["acc"] for r in runs)
    text = (f"The learned policies recover {min(means):.0%}-{max(means):.0%} of the never-to-oracle gap "
            f"(best {best}, {plots.mean_sd(shares[best], 2)})")
    if scores:
        text += f"; APGR {min(scores):.1f}-{max(scores):.1f}"
        if max(scores) > 1:
            text += f", over 1 because always calling ({always:.2f}) barely beats never ({never:.2f})"
    return text


# -----------------------------------------------------------------------------
# 2. call rate by query type, per cost


@part.figure(RECIPE)
def calls_by_type(groups):
    kinds = [kind for kind in ("labels", "dream") if learned(groups, kind)]
    if not kinds:
        return Skip("no learned calling policy")
    fig, axes = style.figure(1, len(kinds), height=4.4, sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        arms = learned(groups, kind)
        x = np.arange(len(arms))
        for i, kind_of_query in enumerate(TYPES):
            values = [[final(r, f"tool/calls/{kind_of_query}") for r in g.runs] for g in arms]
            means = [statistics.fmean(v) for v in values]
            spread = [[m - min(v) for m, v in zip(means, values)], [max(v) - m for m, v in zip(means, values)]]
            ax.bar(x + (i - 1) * 0.27, means, width=0.27, color=style.colour(i), yerr=spread, capsize=2,
                   label=kind_of_query)
        ax.set_xticks(x, [f"{cost(g):g}" for g in arms])
        ax.set(xlabel="cost of a call", title="cost-rule labels" if kind == "labels" else "plus dream rounds",
               ylim=(0, 1.05))
    axes[0, 0].set_ylabel("share of queries that call")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(TYPES), fontsize=10)  # clear of every bar
    arms = learned(groups, kinds[0])
    parts = [f"{kind_of_query} {statistics.fmean(mean_final(g, f'tool/calls/{kind_of_query}') for g in arms):.2f}"
             for kind_of_query in TYPES]
    headline = "Call rate by query type, averaged over the costs: " + ", ".join(parts)
    caption = ("The share of each type's 200 held-out queries on which the learned policy calls the calculator, "
               "per cost of a call (mean over seeds, bars from the lowest to the highest seed); final evaluation.")
    return Drawn(fig, headline, caption, [g for kind in kinds for g in learned(groups, kind)])


# -----------------------------------------------------------------------------
# 3. calibration: where it called, did it need to?


def calibration(run):
    """Own (no-tool) accuracy on the items the policy called on and on those it did not, and the
    policy's accuracy on each: Toolformer's test of whether a model calls where it is weak."""
    items = evaluation(run)["items"]
    called = np.array(items["called"])
    own, with_tool = np.array(items["off_correct"]), np.array(items["always_correct"])
    split = {}
    for name, where in (("called", called), ("did not call", ~called)):
        if where.any():
            policy = np.where(called, with_tool, own)[where]
            split[name] = {"own": float(own[where].mean()), "policy": float(policy.mean()), "n": int(where.sum())}
    return split


@part.figure(RECIPE)
def calibration_split(groups):
    arms = [g for g in learned(groups, "labels") if evaluation(g.runs[0])]
    if not arms:
        return Skip("no cost-rule arm with tool_eval.json")
    fig, axes = style.figure(1, 2, height=4.4, sharey=True)
    x = np.arange(len(arms))
    for ax, where in zip(axes, ("called", "did not call")):
        for i, (key, label) in enumerate((("own", "its own answer (no tool)"), ("policy", "with its policy"))):
            values = [[calibration(r).get(where, {}).get(key, np.nan) for r in g.runs] for g in arms]
            ax.bar(x + (i - 0.5) * 0.38, [np.nanmean(v) for v in values], width=0.38, color=style.colour(i),
                   label=label)
        ax.set_xticks(x, [f"{cost(g):g}" for g in arms])
        ax.set(title=f"queries where it {where}", xlabel="cost of a call", ylim=(0, 1.05))
    axes[0].set_ylabel("exact answers")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=10)  # clear of every bar
    split = [calibration(r) for g in arms for r in g.runs]
    own_called = np.nanmean([s["called"]["own"] for s in split if "called" in s])
    own_not = np.nanmean([s["did not call"]["own"] for s in split if "did not call" in s])
    headline = (f"Calibration: without the tool the model gets {own_called:.2f} of the queries it calls on right, "
                f"{own_not:.2f} of those it answers itself")
    caption = ("The held-out queries split by the learned policy's decision (cost-rule arms, per cost, mean over "
               "seeds): the model's own answer with calls forbidden, against the policy's answer. A calibrated "
               "policy calls where its own answer is weak and answers itself where it is strong.")
    return Drawn(fig, headline, caption, arms)


# -----------------------------------------------------------------------------
# 4. cost per correct answer


@part.figure(RECIPE)
def cost_per_correct(groups):
    arms = [g for g in learned(groups, "labels") if evaluation(g.runs[0])]
    if not arms:
        return Skip("no cost-rule arm with tool_eval.json")
    fig, ax = style.figure(height=4.4)
    costs = [cost(g) for g in arms]
    for name, colour, style_ in (("policy", style.colour(0), "-"), ("always", "black", "--"),
                                 ("oracle", style.colour(2), ":"), ("random", style.GREY, "-.")):
        per = [statistics.fmean(spent(evaluation(r)["baselines"][name], cost(g)) for r in g.runs) for g in arms]
        ax.plot(costs, per, color=colour, linestyle=style_, marker="o", linewidth=2, label=name)
    ax.set(xlabel="cost of a call (in correct answers)", ylabel="cost of calls per correct answer")
    ax.legend(fontsize=10)
    policy = [statistics.fmean(spent(evaluation(r)["baselines"]["policy"], cost(g)) for r in g.runs) for g in arms]
    always = [statistics.fmean(spent(evaluation(r)["baselines"]["always"], cost(g)) for r in g.runs) for g in arms]
    headline = (f"At a call cost of {costs[-1]:g}, the learned policy spends {policy[-1]:.2f} per correct answer, "
                f"always calling {always[-1]:.2f}")
    caption = ("What the calls cost per correct held-out answer, c x call rate / accuracy, for the learned policy "
               "of each cost-rule arm (trained at the cost on the x axis) and for always, oracle and random "
               "calling with the same models; mean over seeds.")
    return Drawn(fig, headline, caption, arms)


def spent(baseline, call_cost):
    return call_cost * baseline["calls"] / baseline["acc"] if baseline["acc"] > 0 else float("nan")


# -----------------------------------------------------------------------------
# 5. the dream state, round by round


@part.figure(RECIPE)
def dream_rounds(groups):
    arms = [g for g in learned(groups, "dream") if rounds(g.runs[0])]
    if not arms:
        return Skip("no dream arm with tool_rounds.json")
    group = next((g for g in arms if cost(g) == 0.2), arms[0])
    fig, (calls, accuracy) = style.figure(1, 2, height=4.4, sharex=True)
    for i, kind_of_query in enumerate(TYPES):
        series = [round_series(r, kind_of_query) for r in group.runs if rounds(r)]
        for ax, key in ((calls, "calls"), (accuracy, "acc")):
            values = np.array([[point[key] for point in s] for s in series])
            xs = np.arange(values.shape[1])
            ax.fill_between(xs, values.min(axis=0), values.max(axis=0), color=style.colour(i), alpha=0.2, linewidth=0)
            ax.plot(xs, values.mean(axis=0), color=style.colour(i), marker="o", linewidth=2, label=kind_of_query)
    labels = round_labels(rounds(group.runs[0]))
    for ax, what in ((calls, "share that calls"), (accuracy, "exact answers")):
        ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=10)
        ax.set(ylabel=what, ylim=(0, 1.05))
    accuracy.legend(fontsize=10, loc="lower right")
    single = next((g for g in learned(groups, "labels") if cost(g) == cost(group)), None)
    caption = ("The held-out policy of the dream arm at cost " + f"{cost(group):g}" + " before the labels, after "
               "them and after each dream round (the evaluation just before the next round; the last point is the "
               "end of training), per query type: the share that calls (left) and exact answers (right); mean over "
               "seeds, band from the lowest to the highest.")
    return Drawn(fig, dream_headline(group, single), caption, [group] + ([single] if single else []))


def dream_headline(dream, single):
    """The computed sums at the end of training, with dream rounds against labels from a single round
    at the same cost: both trained as long, so the gap is what the dreams added."""
    key = "tool/acc/computed"
    dreamt = [final(r, key) for r in dream.runs]
    text = f"Computed sums at cost {cost(dream):g}: {plots.mean_sd(dreamt, 2)} right with dream rounds"
    if single is None:
        return text
    once = [final(r, key) for r in single.runs]
    if plots.tied(dreamt, once):
        verdict = "a tie"
    else:
        verdict = "ahead" if statistics.fmean(dreamt) > statistics.fmean(once) else "behind"
    return f"{text}, {plots.mean_sd(once, 2)} with labels from one round: {verdict}"


def round_series(run, kind_of_query):
    """The policy's summary of one query type before each round, and at the end."""
    record = rounds(run)
    return [r["before"][kind_of_query] for r in record["rounds"]] + [record["now"][kind_of_query]]


def round_labels(record):
    names = {"labels": "labels", "dream": "dream"}
    labels = ["before labels"] + [f"after {names[r['kind']]} {i}" if r["kind"] == "dream" else "after labels"
                                  for i, r in enumerate(record["rounds"])]
    return labels[:-1] + ["end"]


# -----------------------------------------------------------------------------
# the table


@part.figure(RECIPE)
def table(groups):
    rows = []
    for group in groups:
        cells = [group.label]
        for kind_of_query in TYPES:
            acc = mean_final(group, f"tool/acc/{kind_of_query}")
            own = mean_final(group, f"tool/acc_off/{kind_of_query}")
            calls = mean_final(group, f"tool/calls/{kind_of_query}")
            cells.append(f"{acc:.2f} / {own:.2f}\n{calls:.0%} calls")
        rows.append(cells)
    header = ["arm", *TYPES]
    fig = plots.table_figure(header, rows, widths=[1.5, 1.8, 1.8, 1.8], align="lccc",
                             greyed_rows=plots.stale_rows(groups))
    caption = ("Every arm of tool-economics on the held-out queries of each type: exact answers with its policy / "
               "with calls forbidden, and its call rate; mean over seeds, final evaluation. "
               + plots.seeds_note(groups) + ".")
    base = next((g for g in plots.current(groups) if g.name == "base"), None)
    headline = ("Without tools the model answers "
                + ", ".join(f"{q} {mean_final(base, f'tool/acc_off/{q}'):.2f}" for q in TYPES)
                if base else "Accuracy and call rate per query type")
    return Drawn(fig, headline, caption, groups)
