"""Part 7's figures: a wake-sleep program synthesiser that the language model guides
(04-neuro-symbolic.patch). Recipe neuro-symbolic-cycles: three cycles of wake (search every list
task, the held-out ones to measure), sleep (abstraction: inventions added to the library; dreams)
and training, then a last wake; the first design (full) against the remedy for tasks solved then
lost (remedy), and the ablations without abstraction, without the guide, and without either.

Everything comes from each run's synth.json (written by the variant's SynthTraining): one record
per wake (cycle 0 to 3) with every task's search result, the library, the solved counts, the
held-out tasks lost since the wake before, and at the last wake the neural, symbolic and routed
answers on the held-out inputs. "Hard" held-out tasks exclude the trivial ones (those the base
language solves within 200 nodes at the first wake). The held-out task names are the dataset's
lists.test domain, as the run's config.json records it. Program sizes count nodes as the
variant's programs.size does (names and variables, not `lam` or parentheses), from the program
text: the analysis never imports a variant."""

import functools
import json
import math
import statistics
import textwrap
from dataclasses import replace

import numpy as np
from matplotlib.ticker import MaxNLocator

from analysis import plots, style
from analysis.parts import Drawn, Part, Skip
from runs import file_sha256
from runs.store import ROOT

RECIPE = "neuro-symbolic-cycles"
ARMS = ("full", "remedy", "no-abstraction", "no-guide", "enumeration")  # the recipe's order
HELD_OUT_DOMAIN = "lists.test"


def arm_name(config):
    return config["arm"]


part = Part("part7", label=arm_name)


# -----------------------------------------------------------------------------
# what a run's synth.json says


def synth(run):
    """synth.json (None when the run wrote none): {"trivial", "wakes", "state"}."""
    return run.json("synth.json")


def wakes(run):
    return synth(run)["wakes"]


def last(run):
    return wakes(run)[-1]


def complete(run):
    """A run whose synth.json holds every wake: one per cycle and the last, after training."""
    record = synth(run)
    return record is not None and len(record["wakes"]) == run.config["resolved"]["synth-cycles"] + 1


def synthesised(groups):
    """The groups cut to their runs with a complete synth.json, in the recipe's order of arms."""
    kept = [replace(g, runs=[r for r in g.runs if complete(r)]) for g in groups]
    kept = [g for g in kept if g.runs]
    return sorted(kept, key=lambda g: (ARMS.index(g.name) if g.name in ARMS else len(ARMS), g.stale is not None))


def arm(groups, name):
    """The current group of an arm (a stale one when there is no current one), or None."""
    return plots.preferred([g for g in groups if g.name == name])


def budget(run):
    return run.config["resolved"]["synth-nodes"]


def held_out(run):
    """The held-out task names: the dataset's lists.test domain, from the file the run read when
    it is still there unchanged, else rebuilt (the dataset cache is not committed)."""
    dataset = run.config["dataset"]
    entry = next(f for f in dataset["files"] if f["domain"] == HELD_OUT_DOMAIN)
    path = ROOT / entry["path"]  # an absolute path stays as it is
    if path.is_file() and file_sha256(path) == entry["sha256"]:
        return _names_in(path.read_text())
    return _rebuilt(dataset["builder"], dataset["seed"], json.dumps(dataset["args"], sort_keys=True))


@functools.lru_cache(maxsize=8)
def _names_in(text):
    return tuple(json.loads(line)["name"] for line in text.splitlines() if line.strip())


@functools.lru_cache(maxsize=4)
def _rebuilt(builder, seed, args):
    from runs import datasets  # only when the cached file is gone

    return _names_in("\n".join(datasets.build(builder, seed, **json.loads(args))[HELD_OUT_DOMAIN]))


def hard_share(wake):
    solved = wake["solved"]
    return solved["test_hard"] / solved["n_test_hard"] if solved["n_test_hard"] else float("nan")


def size(text):
    """Nodes of a program's text, as programs.size counts them: names and variables count one,
    `lam` and parentheses nothing."""
    return sum(token != "lam" for token in text.replace("(", " ").replace(")", " ").split())


def solution_sizes(wake):
    """(mean size in library terms, mean size inlined) over the tasks the wake solved."""
    found = [t for t in wake["tasks"].values() if t["program"] is not None]
    if not found:
        return float("nan"), float("nan")
    return (statistics.fmean(size(t["program"]) for t in found),
            statistics.fmean(size(t.get("inlined") or t["program"]) for t in found))


def per_wake(group, value):
    """[runs x wakes] of value(wake), over the wakes every run has."""
    n = min(len(wakes(r)) for r in group.runs)
    return np.array([[value(w) for w in wakes(r)[:n]] for r in group.runs], dtype=float)


def draw_per_wake(ax, group, values, linestyle="-", label=True):
    """Mean over seeds and the band from the lowest to the highest seed, one point per wake."""
    xs = np.arange(values.shape[1])
    ax.fill_between(xs, values.min(axis=0), values.max(axis=0), color=group.line_colour, alpha=0.2, linewidth=0)
    ax.plot(xs, values.mean(axis=0), color=group.line_colour, marker="o", linewidth=2,
            linestyle="--" if group.stale else linestyle, label=group.legend if label else None)


def wake_axis(ax, n):
    ax.set_xticks(range(n), [str(c) for c in range(n)])
    ax.set_xlabel("wake (cycle)")


def spread(values, digits=0, percent=False):
    """Mean ± sd over seeds, as plots.mean_sd, in percent when asked."""
    scale = 100 if percent else 1
    return plots.mean_sd([v * scale for v in values], digits, "%" if percent else "")


# -----------------------------------------------------------------------------
# 1. held-out tasks solved per wake


@part.figure(RECIPE)
def solved(groups):
    shown = synthesised(groups)
    if not shown:
        return Skip("no finished run with a complete synth.json")
    fig, ax = style.figure(height=4.6)
    for group in shown:
        draw_per_wake(ax, group, 100 * per_wake(group, hard_share))
    n = min(len(wakes(r)) for g in shown for r in g.runs)
    wake_axis(ax, n)
    ax.set(ylabel="hard held-out tasks solved (%)", ylim=(0, None))
    ax.legend(fontsize=10)
    run = shown[0].runs[0]
    trivial = sorted({len(synth(r)["trivial"]) for g in shown for r in g.runs})
    caption = (f"The share of the {last(run)['solved']['n_test_hard']} hard held-out list tasks (of "
               f"{last(run)['solved']['n_test']}; the {' to '.join(map(str, trivial))} trivial ones, which the "
               "base language solves within 200 nodes at the first wake, left out) that each wake solves within "
               f"{budget(run):,} nodes, per arm: mean over seeds, band from the lowest to the highest seed; wake 0 "
               "is before any training or sleep, the last after the last training. " + plots.seeds_note(shown) + ".")
    return Drawn(fig, solved_headline(shown), caption, shown)


def solved_headline(shown):
    current = plots.current(shown)
    finals = {g.name: [hard_share(last(r)) for r in g.runs] for g in current}
    ranked = sorted(finals, key=lambda name: -statistics.fmean(finals[name]))
    text = "At the last wake " + ", ".join(f"{name} solves {statistics.fmean(finals[name]):.0%}" for name in ranked)
    text += " of the hard held-out tasks"
    if len(ranked) > 1 and plots.tied(finals[ranked[0]], finals[ranked[1]]):
        text += f" ({ranked[0]} and {ranked[1]} tie within the seeds' spread)"
    return text


# -----------------------------------------------------------------------------
# 2. search cost with the guide and without


def nodes_at_last(run, edge):
    """{held-out task: nodes the last wake took to solve it, or `edge` when it did not}."""
    tasks = last(run)["tasks"]
    return {name: tasks[name]["nodes"] if tasks[name]["program"] is not None else edge
            for name in held_out(run) if name in tasks}


def node_means(group, edge):
    """{task: geometric mean over seeds of its nodes (unsolved at `edge`)}, and {task: solved in
    every seed}."""
    per_run = [nodes_at_last(r, edge) for r in group.runs]
    names = sorted(set.intersection(*(set(p) for p in per_run)))
    means = {n: math.exp(statistics.fmean(math.log(max(p[n], 1)) for p in per_run)) for n in names}
    solved_everywhere = {n: all(p[n] < edge for p in per_run) for n in names}
    return means, solved_everywhere


def guide_ratios(guided, unguided, edge):
    """Per task solved in every seed of both arms: guided / unguided nodes (geometric means)."""
    with_guide, solved_with = node_means(guided, edge)
    without, solved_without = node_means(unguided, edge)
    return {n: with_guide[n] / without[n] for n in with_guide
            if n in without and solved_with[n] and solved_without[n]}


def seed_ratios(guided, unguided):
    """Per seed number both arms ran: the median over tasks both solved of guided / unguided nodes."""
    pairs = {r.config["seed"]: [r] for r in guided.runs}
    for r in unguided.runs:
        pairs.setdefault(r.config["seed"], []).append(r)
    medians = []
    for runs in (p for p in pairs.values() if len(p) == 2):
        a, b = (nodes_at_last(r, math.inf) for r in runs)
        ratios = [a[n] / b[n] for n in a if n in b and a[n] < math.inf and b[n] < math.inf and b[n] > 0]
        if ratios:
            medians.append(statistics.median(ratios))
    return medians


@part.figure(RECIPE)
def search_cost(groups):
    shown = synthesised(groups)
    guided, unguided = arm(shown, "remedy"), arm(shown, "no-guide")
    if guided is None or unguided is None:
        return Skip("needs the remedy and the no-guide arms")
    edge = 2 * budget(guided.runs[0])
    with_guide, _ = node_means(guided, edge)
    without, _ = node_means(unguided, edge)
    trivial = set.union(*(set(synth(r)["trivial"]) for r in guided.runs + unguided.runs))
    names = sorted(set(with_guide) & set(without))
    fig, ax = style.figure(height=5.4)
    for hard, colour, label in ((True, style.colour(0), "hard held-out task"), (False, style.GREY, "trivial")):
        chosen = [n for n in names if (n not in trivial) == hard]
        ax.scatter([without[n] for n in chosen], [with_guide[n] for n in chosen], s=36, color=colour,
                   alpha=0.8, label=f"{label} ({len(chosen)})", zorder=3)
    low = 0.5 * min([edge] + [v for n in names for v in (with_guide[n], without[n])])
    ax.plot([low, edge], [low, edge], color="black", linewidth=1, linestyle=":", label="equal cost")
    for line in (ax.axvline, ax.axhline):
        line(edge, color=style.GREY, linewidth=1, linestyle="--")
    ax.set(xscale="log", yscale="log", xlim=(low, edge * 1.3), ylim=(low, edge * 1.3),
           xlabel="nodes without the guide (no-guide arm)", ylabel="nodes with the guide (remedy arm)")
    ax.annotate("unsolved", (edge, low), xytext=(-4, 4), textcoords="offset points", rotation=90, ha="right",
                va="bottom", fontsize=10, color=style.GREY)
    ax.annotate("unsolved", (low, edge), xytext=(4, -4), textcoords="offset points", ha="left", va="top",
                fontsize=10, color=style.GREY)
    ax.legend(fontsize=10, loc="upper left", bbox_to_anchor=(0.0, 0.93))
    ratios = guide_ratios(guided, unguided, edge)
    median = statistics.median(ratios.values()) if ratios else float("nan")
    caption = ("Nodes the last wake's search took to solve each held-out task, with the model's guide (remedy arm) "
               "against without it (no-guide arm, otherwise the same), log-log: geometric mean over seeds, a seed "
               f"that did not solve it within {budget(guided.runs[0]):,} nodes counted on the dashed edge "
               f"(unsolved in every seed: on it). Median ratio with/without the guide over the {len(ratios)} tasks "
               f"both solve in every seed: {median:.2f}. " + plots.seeds_note([guided, unguided]) + ".")
    return Drawn(fig, search_headline(guided, unguided, edge), caption, [guided, unguided])


def search_headline(guided, unguided, edge):
    with_guide, solved_with = node_means(guided, edge)
    without, solved_without = node_means(unguided, edge)
    ratios = guide_ratios(guided, unguided, edge)
    text = (f"The guide solves {sum(solved_with.values())} held-out tasks in every seed, the search alone "
            f"{sum(solved_without.values())}")
    if ratios:
        median = statistics.median(ratios.values())
        text += (f"; where both do, the guide needs {median:.2f}x the nodes (median)" if median >= 1 else
                 f"; where both do, the guide needs {1 / median:.1f}x fewer nodes (median)")
    return text


# -----------------------------------------------------------------------------
# 3. the library and compression


def library_size(wake):
    return len(wake["library"])


@part.figure(RECIPE)
def library(groups):
    shown = synthesised(groups)
    if not shown:
        return Skip("no finished run with a complete synth.json")
    fig, (sizes, lengths) = style.figure(1, 2, height=4.6, sharex=True)
    for group in shown:
        draw_per_wake(sizes, group, per_wake(group, library_size))
        draw_per_wake(lengths, group, per_wake(group, lambda w: solution_sizes(w)[0]), label=False)
        draw_per_wake(lengths, group, per_wake(group, lambda w: solution_sizes(w)[1]), linestyle=":", label=False)
    n = min(len(wakes(r)) for g in shown for r in g.runs)
    for ax in (sizes, lengths):
        wake_axis(ax, n)
    sizes.set(ylabel="inventions in the library", title="library", ylim=(0, None))
    sizes.yaxis.set_major_locator(MaxNLocator(integer=True))
    lengths.set(ylabel="nodes per solution (mean)", title="solution length", ylim=(0, None))
    lengths.plot([], [], color="black", linestyle="-", label="in library terms")
    lengths.plot([], [], color="black", linestyle=":", label="inlined")
    lengths.legend(fontsize=10, loc="lower left")
    handles, labels = sizes.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=10)
    caption = ("Left: the inventions in the library at each wake (an abstraction sleep after every wake but the "
               "last). Right: the "
               "mean size in nodes of the programs each wake found (training and held-out tasks it solved), in "
               "library terms (solid) and with every invention inlined (dotted): the gap is the compression. Mean "
               "over seeds, band from the lowest to the highest seed. " + plots.seeds_note(shown) + ".")
    return Drawn(fig, library_headline(shown), caption, shown)


def sleeps(run):
    """Every wake but the last is followed by a sleep."""
    return len(wakes(run)) - 1


def compression(run):
    """Inlined over library-term size of the last wake's solutions."""
    terms, inlined = solution_sizes(last(run))
    return inlined / terms if terms else float("nan")


def library_headline(shown):
    current = plots.current(shown)
    growing = [g for g in current if any(library_size(last(r)) for r in g.runs)] or current
    parts = [f"{g.name} {statistics.fmean(library_size(last(r)) for r in g.runs):.1f} inventions, its solutions "
             f"{statistics.fmean(compression(r) for r in g.runs):.2f}x as long inlined" for g in growing]
    return f"After {sleeps(current[0].runs[0])} sleeps: " + "; ".join(parts)


# -----------------------------------------------------------------------------
# 4. the inventions


def uses(wake, name):
    """(occurrences in the wake's solved programs, solved tasks whose program uses it)."""
    counts = [t["program"].replace("(", " ").replace(")", " ").split().count(name)
              for t in wake["tasks"].values() if t["program"] is not None]
    return sum(counts), sum(c > 0 for c in counts)


def readable(invention):
    """fn_0 = (map (lam (+ $0 #0)) #1) -> "(map (lam (+ $0 a)) b)": holes as a, b, ...; $i stay
    the de Bruijn variables of the language."""
    body = invention["body"]
    for i in reversed(range(invention["arity"])):
        body = body.replace(f"#{i}", "abcdefgh"[i] if i < 8 else f"x{i}")
    return body


@part.figure(RECIPE)
def inventions(groups):
    remedy = arm(synthesised(groups), "remedy")
    if remedy is None:
        return Skip("no remedy run with a complete synth.json")
    run = next((r for r in remedy.runs if r.config["seed"] == 1), remedy.runs[0])
    wake = last(run)
    if not wake["library"]:
        return Skip(f"the remedy arm (seed {run.config['seed']}) invented nothing")
    rows = []
    for invention in wake["library"]:
        n_uses, n_tasks = uses(wake, invention["name"])
        body = "\n".join(textwrap.wrap(readable(invention), 34, break_on_hyphens=False)) or readable(invention)
        rows.append([invention["name"], body, invention["arity"], n_uses, n_tasks])
    fig = plots.table_figure(["name", "body", "arity", "uses", "tasks"], rows, widths=[1.0, 3.6, 0.7, 0.7, 0.8],
                             align="llrrr", greyed_rows=set(range(len(rows))) if remedy.stale else ())
    used = sum(row[4] > 0 for row in rows)
    solved_tasks = sum(t["program"] is not None for t in wake["tasks"].values())
    using = sum(any(name in t["program"].replace("(", " ").replace(")", " ").split() for name in
                    (i["name"] for i in wake["library"])) for t in wake["tasks"].values() if t["program"] is not None)
    plural = "s" if len(rows) != 1 else ""
    headline = (f"The remedy arm's library after {sleeps(run)} sleeps: {len(rows)} invention{plural}, {used} in use; "
                f"{using} of the {solved_tasks} solved tasks call one")
    caption = (f"Every invention in the library at the last wake of the remedy arm, seed {run.config['seed']}, "
               "in the order learned: its body (holes a, b, ...; $0, $1 are the language's de Bruijn variables), "
               "its arity, how often the last wake's solutions (training and held-out tasks) call it, and in "
               "how many of them.")
    return Drawn(fig, headline, caption, [replace(remedy, runs=[run])])


# -----------------------------------------------------------------------------
# 5. neural against symbolic answers


ANSWERERS = ("neural", "symbolic", "router")


def hard_answers(run):
    """The last wake's answers on the held-out inputs of the hard held-out tasks (the trivial ones,
    which the base language solves at once, would flatter the programs)."""
    trivial = set(synth(run)["trivial"])
    return [r for r in last(run)["neural"] if r["task"] not in trivial]


def answers_by_length(run):
    """{input length (None: not a list): {answerer: accuracy}} on the hard tasks' held-out inputs."""
    rows = hard_answers(run)
    lengths = sorted({r["length"] for r in rows}, key=lambda n: (n is None, n or 0))
    return {n: {a: statistics.fmean(bool(r[a]) for r in rows if r["length"] == n) for a in ANSWERERS}
            for n in lengths}


def overall(run):
    rows = hard_answers(run)
    return {a: statistics.fmean(bool(r[a]) for r in rows) for a in ANSWERERS} if rows else None


@part.figure(RECIPE)
def neural_vs_symbolic(groups):
    remedy = arm(synthesised(groups), "remedy")
    if remedy is None:
        return Skip("no remedy run with a complete synth.json")
    runs = [r for r in remedy.runs if last(r)["neural"]]
    if not runs:
        return Skip("the remedy runs answered no held-out input")
    tables = [answers_by_length(r) for r in runs]
    lengths = [n for n in tables[0] if n is not None and all(n in t for t in tables)]
    if not lengths:
        return Skip("no held-out input is a list")
    fig, ax = style.figure(height=4.4)
    x = np.arange(len(lengths))
    for i, answerer in enumerate(ANSWERERS):
        values = np.array([[t[n][answerer] for n in lengths] for t in tables])
        means = values.mean(axis=0)
        ax.bar(x + (i - 1) * 0.27, means, width=0.27, color=style.colour(i), label=answerer,
               yerr=[means - values.min(axis=0), values.max(axis=0) - means], capsize=2)
    ax.set_xticks(x, [str(n) for n in lengths])
    ax.set(xlabel="length of the held-out input list", ylabel="exact answers", ylim=(0, 1.05))
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=10)  # clear of bars
    whole = [overall(r) for r in runs]
    headline = "On the hard tasks' held-out inputs " + ", ".join(
        f"{a} {plots.mean_sd([w[a] for w in whole], 2)}" for a in ANSWERERS) + " (remedy arm)"
    n_rows = len(hard_answers(runs[0]))
    caption = ("Exact answers on the held-out inputs (longer lists, larger numbers than any example) of the hard "
               "held-out tasks (remedy arm, last wake), by input list length: the model's own greedy answer "
               "(neural), the program the wake found (symbolic: wrong where none was found), and the router (the "
               "program where one was found, else the model). Mean over seeds, bars from the lowest to the highest "
               f"seed; {n_rows} inputs a seed, those that are not lists counted in the headline only. Some tasks "
               "have one answer for most inputs (a count that is usually 0, a test that is usually false): most "
               "of the model's right answers are those. " + plots.seeds_note([replace(remedy, runs=runs)]) + ".")
    return Drawn(fig, headline, caption, [replace(remedy, runs=runs)])


# -----------------------------------------------------------------------------
# 6. solved, then lost


def lost_counts(run):
    """Held-out tasks lost at each wake after the first (solved at the wake before, not at this one)."""
    return [len(w["lost"]) for w in wakes(run)[1:]]


def dilutions(run):
    """[(cycle, cost_now - cost_then)] of every task lost, where both costs are finite."""
    return [(w["cycle"], l["cost_now"] - l["cost_then"]) for w in wakes(run)[1:] for l in w["lost"]
            if finite(l.get("cost_now")) and finite(l.get("cost_then"))]


def finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


@part.figure(RECIPE)
def lost(groups):
    shown = synthesised(groups)
    if not shown:
        return Skip("no run with a complete synth.json")
    fig, (counts, costs) = style.figure(1, 2, height=4.6)
    cycles = np.arange(1, min(len(wakes(r)) for g in shown for r in g.runs))
    width = 0.8 / len(shown)
    for i, group in enumerate(shown):
        values = np.array([lost_counts(r)[:len(cycles)] for r in group.runs], dtype=float)
        means = values.mean(axis=0)
        offset = (i - (len(shown) - 1) / 2) * width
        counts.bar(cycles + offset, means, width=width, color=group.line_colour, label=group.legend,
                   yerr=[means - values.min(axis=0), values.max(axis=0) - means], capsize=2)
        points = [p for r in group.runs for p in dilutions(r)]
        jitter = np.linspace(-0.25, 0.25, len(points)) * width if points else []
        costs.scatter([c + offset + j for (c, _), j in zip(points, jitter)], [d for _, d in points],
                      color=group.line_colour, s=24, alpha=0.7)
    for ax in (counts, costs):
        ax.set_xticks(cycles, [str(c) for c in cycles])
        ax.set_xlabel("wake (cycle)")
        ax.set_xlim(cycles[0] - 0.6, cycles[-1] + 0.6)
    counts.set(ylabel="held-out tasks lost (mean over seeds)", title="solved at the wake before, not now")
    costs.axhline(0, color="black", linewidth=1)
    costs.set(ylabel="cost now - cost then (nats)", title="their earlier program's cost")
    handles, labels = counts.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=10)
    caption = ("Left: held-out tasks a wake lost, solved at the wake before and not at this one (mean over seeds, "
               "bars from the lowest to the highest seed), per arm. Right: for each task lost (every seed), the "
               "description length of the program that had solved it under the library's own prior at the wake "
               "that lost it, minus the cost the search paid when it found it. In the arms without the guide both "
               "are under the library's prior, so above zero is a prior diluted by the library's growth; in the "
               "guided arms the search's grammar was the guide's for that task, so the difference mixes the "
               "dilution with the guide's shift. " + plots.seeds_note(shown) + ".")
    return Drawn(fig, lost_headline(shown), caption, shown)


def unguided(group):
    """Whether the arm searched under the library's own prior (so a lost task's cost compares like with like)."""
    return group.runs[0].config["resolved"]["synth-guide"] == "off"


def lost_headline(shown):
    parts = []
    for group in plots.current(shown):
        totals = [sum(lost_counts(r)) for r in group.runs]
        text = f"{group.name} {plots.mean_sd(totals, 1)}"
        rises = [d for r in group.runs for _, d in dilutions(r)]
        if rises and unguided(group):
            text += f" (their program {statistics.fmean(rises):+.2f} nats dearer)"
        parts.append(text)
    return "Held-out tasks solved, then lost, over the cycles: " + "; ".join(parts)


# -----------------------------------------------------------------------------
# the numbers the notes cite


@part.numbers(RECIPE)
def numbers(groups):
    """The headline numbers, as lines: mean ± sd over seeds unless said."""
    shown = synthesised(groups)
    if not shown:
        return ["no finished run of neuro-symbolic-cycles has a complete synth.json"]
    lines = []
    for group in shown:
        shares = per_wake(group, hard_share)
        stale = f" [STALE: {group.stale}]" if group.stale else ""
        trivial = sorted({len(synth(r)["trivial"]) for r in group.runs})
        lines.append(f"{group.name} ({len(group.runs)} seeds){stale}: hard held-out solved by wake "
                     + ", ".join(spread(shares[:, c], 0, percent=True) for c in range(shares.shape[1]))
                     + f" ({'/'.join(map(str, trivial))} trivial left out)")
        lines.append(f"{group.name}: lost per cycle " + ", ".join(
            spread([lost_counts(r)[c] for r in group.runs], 1) for c in range(shares.shape[1] - 1))
            + f"; inventions at the last wake {spread([library_size(last(r)) for r in group.runs], 1)}"
            + f"; compression (inlined / library terms) {spread([compression(r) for r in group.runs], 2)}")
    guided, unguided = arm(shown, "remedy"), arm(shown, "no-guide")
    if guided is not None and unguided is not None:
        ratios = guide_ratios(guided, unguided, 2 * budget(guided.runs[0]))
        per_seed = seed_ratios(guided, unguided)
        if ratios:
            median = statistics.median(ratios.values())
            lines.append(f"guide node ratio (remedy / no-guide, last wake): median {median:.2f} "
                         f"over {len(ratios)} held-out tasks both solve in every seed; per seed "
                         f"{plots.mean_sd(per_seed, 2) if per_seed else 'n/a'}")
    remedy = arm(shown, "remedy")
    whole = [o for o in (overall(r) for r in remedy.runs) if o] if remedy is not None else []
    if whole:
        lines.append("remedy, hard tasks' held-out inputs: " + ", ".join(
            f"{a} {plots.mean_sd([w[a] for w in whole], 3)}" for a in ANSWERERS))
    return lines
