"""The pieces every part's figures are built from: runs grouped by configuration, loss curves with
their spread over seeds, table figures, and `compare`, the ad-hoc figure of any runs."""

import json
import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import stats

from analysis import style
from runs.store import load_recipe_runs, load_run, staleness

# config.json fields that differ between the seeds of one configuration (the seed, and the run
# name, command line and resolved flags that carry it); everything else must match for runs to be
# averaged
PER_SEED_FIELDS = ("seed", "run", "argv", "command", "resolved")


# -----------------------------------------------------------------------------
# grouping: the runs of one configuration are its seeds


@dataclass
class RunGroup:
    name: str  # what sets the configuration apart, e.g. "MLP" or "n-expert=4"
    runs: list  # store.Run, lowest seed first
    stale: str | None  # why these runs are stale, None when current
    colour: str  # the configuration's colour; stale runs are drawn greyed
    beside_current: bool = False  # stale, and a current group has the same name

    @property
    def config(self):
        return self.runs[0].config

    @property
    def flags(self):
        """The flags the recipe set: what tells the configurations apart."""
        return self.config["flags"]

    @property
    def resolved(self):
        """Every flag as the variant resolved it, defaults included (config.json's "resolved")."""
        return self.config["resolved"]

    @property
    def label(self):
        """The name, with "(stale)" where a current group of the same name needs telling apart; the
        figure's stale note and its greyed, dashed lines say the rest."""
        return f"{self.name} (stale)" if self.beside_current else self.name

    @property
    def legend(self):
        n = len(self.runs)
        return f"{self.name} ({'stale, ' if self.beside_current else ''}{n} seed{'s' if n != 1 else ''})"

    @property
    def line_colour(self):
        return style.greyed(self.colour) if self.stale else self.colour

    def lowest_seed(self):
        """The group cut to its first run: where a figure shows one run's probes."""
        return replace(self, runs=self.runs[:1])


def configuration(config):
    """What a run's config says apart from its seed, as a comparable string."""
    return json.dumps({k: v for k, v in config.items() if k not in PER_SEED_FIELDS}, sort_keys=True)


def group_runs(runs, label=None):
    """Runs that differ only in their seed form one group; stale runs never join current ones.
    Groups come in the order of their first run, a configuration's stale runs after its current
    ones, in the same colour. `label(config)` names a group; by default a group is named by what
    sets its configuration apart from the others'."""
    buckets = {}
    for run in runs:
        buckets.setdefault((configuration(run.config), staleness(run.config)), []).append(run)
    configs = [members[0].config for members in buckets.values()]
    stale = [reason for _, reason in buckets]
    names = [label(c) for c in configs] if label else distinguishing_labels(configs, stale)
    colours = {name: style.colour(i) for i, name in enumerate(dict.fromkeys(names))}
    current_names = {name for name, reason in zip(names, stale) if reason is None}
    groups = [RunGroup(name, sorted(members, key=lambda r: r.config["seed"]), reason, colours[name],
                       beside_current=reason is not None and name in current_names)
              for name, reason, members in zip(names, stale, buckets.values())]
    return sorted(groups, key=lambda g: (list(colours).index(g.name), g.stale is not None))


def distinguishing_labels(configs, stale):
    """Each config's label, from what a reader tells runs apart by: the recipe and the variant (when
    they differ), the recipe's arm name (when arms differ: the recipe author's name for that set of
    flags), quick or full (a smoke run beside a result), the step budget (when it differs
    otherwise), and the flags that differ among configs of the same recipe, arm, quickness and
    budget (a quick run's shorter evaluation interval is part of being quick, not a difference of
    its own). When that and staleness cannot tell two apart, whatever else differs is added."""
    labels = []
    for config in configs:
        parts = [str(config[key]) for key in ("recipe", "variant") if differs(configs, lambda c: c[key])]
        if config.get("arm") is not None and differs(configs, lambda c: c.get("arm")):
            parts.append(config["arm"])
        if differs(configs, lambda c: bool(c.get("quick"))):
            parts.append("quick" if config.get("quick") else "full")
        if differs(alike(configs, config, "quick"), lambda c: c["steps"]):
            parts.append(f"{config['steps']:,} steps")
        peers = alike(configs, config, "recipe", "arm", "quick", "steps")
        parts += [f"{name}={config['flags'][name]}" for name in sorted(union_of_flags(peers))
                  if name in config["flags"] and differs(peers, lambda c: c["flags"].get(name))]
        labels.append(parts)
    if len({(" ".join(p), bool(reason)) for p, reason in zip(labels, stale)}) < len(configs):
        rest = [flatten({k: v for k, v in c.items() if k not in ("flags", "variant", *PER_SEED_FIELDS)})
                for c in configs]
        for parts, fields in zip(labels, rest):
            parts += [f"{k}={short(v)}" for k, v in fields.items() if differs(rest, lambda r: r.get(k))]
    return [" ".join(parts) or config["variant"] for parts, config in zip(labels, configs)]


def alike(configs, config, *keys):
    """The configs that agree with config on every key."""
    return [c for c in configs if all(c.get(key) == config.get(key) for key in keys)]


def differs(items, value):
    return len({json.dumps(value(item), sort_keys=True) for item in items}) > 1


def union_of_flags(configs):
    return set().union(*(c["flags"] for c in configs))


def flatten(tree, prefix=""):
    """{"code": {"spine": {"sha256": "ab"}}} -> {"code.spine.sha256": "ab"}; lists by index."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    flat = {}
    for key, value in items:
        path = f"{prefix}{key}"
        if isinstance(value, (dict, list)) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def short(value):
    """Hashes shortened to what a reader needs to tell them apart."""
    text = str(value)
    return text[:8] if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


def current(groups):
    """The groups a headline may speak for: the current ones (stale ones are drawn, not claimed)."""
    return [g for g in groups if not g.stale] or groups


def preferred(groups):
    """The one group a single-configuration figure shows: a current one over a stale one; None if
    there is none."""
    return next((g for g in groups if not g.stale), groups[0] if groups else None)


def stale_reason(groups):
    reasons = sorted({g.stale for g in groups if g.stale})
    return "; ".join(reasons) or None


# -----------------------------------------------------------------------------
# curves: one metric per evaluation, averaged over a group's seeds


@dataclass
class Band:
    """A group's curve: x positions, the mean over seeds, and the lowest and highest seed."""

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def metric(run, key):
    """{step: value} of a metrics.jsonl key, where it was logged. The key may also be a function of
    an evaluation record: a metric derived from several keys (say, the largest of the layers')."""
    value = key if callable(key) else lambda record: record.get(key)
    return {r["step"]: v for r in run.metrics if (v := value(r)) is not None}


def training_seconds(run):
    """{step: training seconds until then}: each evaluation's step_ms is the mean over the steps
    since the one before, so the time between evaluations is step_ms x the steps in between."""
    seconds, elapsed, previous = {}, 0.0, None
    for record in run.metrics:
        if previous is not None and record.get("step_ms") is not None:
            elapsed += record["step_ms"] * (record["step"] - previous) / 1000
        seconds[record["step"]] = elapsed
        previous = record["step"]
    return seconds


def band(group, key, x="step"):
    """The group's curve of `key` at the steps every seed logged. x="seconds" puts each point at the
    mean training time the seeds took to reach it (the spread in time is not drawn)."""
    curves = [metric(run, key) for run in group.runs]
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    values = np.array([[c[s] for s in steps] for c in curves], dtype=float).reshape(len(curves), len(steps))
    if x == "step":
        xs = np.array(steps, dtype=float)
    else:
        times = [training_seconds(run) for run in group.runs]
        xs = np.array([statistics.fmean(t[s] for t in times) for s in steps])
    return Band(xs, values.mean(axis=0), values.min(axis=0), values.max(axis=0))


def draw_band(ax, group, key, x="step"):
    """Mean line and min-max band; stale groups greyed and dashed."""
    curve = band(group, key, x)
    ax.fill_between(curve.x, curve.low, curve.high, color=group.line_colour, alpha=0.25, linewidth=0)
    ax.plot(curve.x, curve.mean, color=group.line_colour, linewidth=2, linestyle="--" if group.stale else "-",
            label=group.legend)
    return curve


def draw_mean(ax, group, key):
    """A thin mean line with no band: the secondary curve (train loss) beside a band."""
    curve = band(group, key)
    ax.plot(curve.x, curve.mean, color=group.line_colour, linewidth=1, linestyle=":" if group.stale else "--")
    return curve


def focus_on_training(ax, curves):
    """Start the y axis below the lowest point and cut the loss at initialisation (about ln of the
    vocabulary size), which would flatten everything after it, at the first evaluation after it."""
    low = min(c.low.min() for c in curves)
    firsts = [c.high[1] if len(c.high) > 1 else c.high[0] for c in curves]
    high = max(firsts)
    margin = 0.05 * (high - low) or 0.05
    ax.set_ylim(low - margin, high + margin)


def ranking(pairs, what="test loss"):
    """[("transformer", 2.05), ("bigram", 2.46)] -> "transformer reaches 2.05 test loss; bigram 2.46";
    beyond three, only the best and the worst."""
    pairs = sorted(pairs, key=lambda p: p[1])
    first, rest = pairs[0], pairs[1:]
    text = f"{first[0]} reaches {first[1]:.2f} {what}"
    if len(rest) > 2:
        return text + f"; {rest[-1][0]} {rest[-1][1]:.2f}, the worst of {len(pairs)}"
    return text + ("; " + ", ".join(f"{name} {value:.2f}" for name, value in rest) if rest else "")


def tied(values_a, values_b):
    """Two configurations' per-seed numbers are a tie when their means differ by no more than the sum
    of their seeds' standard deviations: a headline must not crown a winner the seeds cannot tell."""
    spread = sum(statistics.stdev(v) if len(v) > 1 else 0.0 for v in (values_a, values_b))
    return abs(statistics.fmean(values_a) - statistics.fmean(values_b)) <= spread


@dataclass(frozen=True)
class Difference:
    """a - b over seeds: the difference of the means and its 95% Welch interval."""

    mean: float
    low: float
    high: float

    @property
    def verdict(self):
        """The rule of Parts 5-7: a win (or a loss) when the interval lies above (below) 0, else a tie."""
        return "win" if self.low > 0 else "loss" if self.high < 0 else "tie"

    def __str__(self):
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def difference(a, b):
    """Two arms' per-seed numbers (independent runs, at least 2 each): Welch's t interval for the
    difference of their means, which counts both sides' spread and does not assume it is equal."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("a difference over seeds needs at least 2 seeds on each side")
    mean = statistics.fmean(a) - statistics.fmean(b)
    if statistics.stdev(a) == statistics.stdev(b) == 0:  # no spread at all: the interval is the point
        return Difference(mean, mean, mean)
    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return Difference(mean, float(interval.low), float(interval.high))


def mean_sd(values, digits=3, suffix=""):
    """'2.046 ± 0.012': the sample standard deviation over seeds (no spread with one seed)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}{suffix}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}{suffix}"


def seeds_note(groups):
    counts = sorted({len(g.runs) for g in groups})
    n = " to ".join(map(str, counts))
    return f"{n} seed{'s' if counts != [1] else ''} per configuration"


# -----------------------------------------------------------------------------
# tables drawn as figures (booktabs style: three rules, no vertical lines)

LINE_INCHES = 0.24  # one 12 pt text line with its leading
ROW_PADDING = 0.12


def table_figure(header, rows, widths, align, greyed_rows=()):
    """A figure holding a table. Cells may hold several lines; `widths` in inches, `align` one of
    l, c, r per column; rows whose index is in greyed_rows are drawn grey (stale)."""
    heights = [row_height(header)] + [row_height(row) for row in rows]
    fig = style.plt.figure(figsize=(style.WIDTH, sum(heights) + 1.0), layout="constrained")
    ax = fig.add_subplot()
    ax.axis("off")
    ax.set_xlim(0, sum(widths))
    ax.set_ylim(sum(heights), 0)  # inches from the top
    top = 0.0
    for i, (row, height) in enumerate(zip([header, *rows], heights)):
        colour = style.GREY if i - 1 in greyed_rows else "black"
        draw_row(ax, row, widths, align, top + height / 2, colour, bold=i == 0)
        top += height
    for y, weight in ((0, 1.5), (heights[0], 0.8), (sum(heights), 1.5)):
        ax.axhline(y, color="black", linewidth=weight)
    return fig


def stale_rows(groups):
    """The rows of a table with a row per group that table_figure greys."""
    return {i for i, g in enumerate(groups) if g.stale}


def row_height(row):
    return max(str(cell).count("\n") + 1 for cell in row) * LINE_INCHES + ROW_PADDING


def draw_row(ax, row, widths, align, y, colour, bold):
    left = 0.0
    for cell, width, how in zip(row, widths, align):
        x = {"l": left + 0.05, "c": left + width / 2, "r": left + width - 0.05}[how]
        ha = {"l": "left", "c": "center", "r": "right"}[how]
        ax.text(x, y, str(cell), ha=ha, va="center", color=colour, fontweight="bold" if bold else "normal",
                linespacing=1.3)
        left += width


# -----------------------------------------------------------------------------
# compare: any runs, grouped by configuration


class CompareError(Exception):
    pass


def runs_at(paths):
    """Run folders and folders of run folders (a recipe's results), expanded into runs."""
    runs = []
    for path in map(Path, paths):
        if (path / "config.json").is_file():
            runs.append(load_run(path))
        elif path.is_dir() and any((d / "config.json").is_file() for d in path.iterdir()):
            runs += load_recipe_runs(path, finished_only=False)  # ad hoc: runs in progress count too
        else:
            raise CompareError(f"{path} is neither a run folder (with a config.json) nor a folder of run folders")
    unique = {run.directory.resolve(): run for run in runs}  # a run named twice still counts once
    return list(unique.values())


def final_headline(groups):
    """The ranking of the groups' test loss at their last evaluation, like with like: only groups
    that stop at the same step are ranked (a 200-step run is not worse than a 3,000-step run, only
    shorter), those that stop last; a tie of the first two is named. Smoke runs say so."""
    by_step = {}
    for group in groups:
        by_step.setdefault(final_step(group), []).append(group)
    step = max(by_step)
    losses = {g.label: [metric(run, "test_loss")[step] for run in g.runs] for g in by_step[step]}
    text = f"at step {step:,}, " + ranking([(label, statistics.fmean(v)) for label, v in losses.items()])
    ranked = sorted(losses, key=lambda label: statistics.fmean(losses[label]))
    if len(ranked) > 1 and tied(losses[ranked[0]], losses[ranked[1]]):
        text += f" ({ranked[0]} and {ranked[1]} tie within the seeds' spread)"
    if len(by_step) > 1:
        others = " and ".join(f"{s:,}" for s in sorted(by_step)[:-1])
        text += f"; the runs that stop at step {others} are drawn, not ranked"
    if all(run.config.get("quick") for g in groups for run in g.runs):
        text = "smoke runs (--quick), not results: " + text
    return text


def final_step(group):
    """The last step every run of the group has evaluated (a run in progress may lag its seeds)."""
    return min(run.metrics[-1]["step"] for run in group.runs)


def loss_keys(runs):
    """test_loss, then each domain's test_loss/<domain> when the runs log them."""
    domains = sorted({k for run in runs for r in run.metrics for k in r if k.startswith("test_loss/")})
    return ["test_loss", *domains]


def compare(paths, out_stem, say=print):
    """Test-loss curves of any runs, one band per configuration, a panel per domain. Returns the
    paths written. Only finished runs are drawn when there are any (a seed still training would cut
    its configuration's band short); the unfinished ones are named through say(line)."""
    runs = [run for run in runs_at(paths) if run.metrics]
    if not runs:
        raise CompareError("no run among " + ", ".join(map(str, paths)) + " has logged an evaluation yet")
    unfinished = [run for run in runs if not run.finished]
    if len(unfinished) < len(runs):
        runs = [run for run in runs if run.finished]
        if unfinished:
            say("not drawn, unfinished: " + ", ".join(
                f"{run.config['recipe']}/{run.name} (at step {run.metrics[-1]['step']:,})" for run in unfinished))
    groups = group_runs(runs)
    keys = loss_keys(runs)
    ncols = 1 if len(keys) == 1 else 2
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = style.figure(nrows, ncols, height=1.0 + 3.2 * nrows, squeeze=False)
    for i, (ax, key) in enumerate(zip(axes.flat, keys)):
        curves = [draw_band(ax, g, key) for g in groups if metric(g.runs[0], key)]
        focus_on_training(ax, curves)
        if i % ncols == 0:
            ax.set_ylabel("test loss")
        if i + ncols >= len(keys):  # nothing below it
            ax.set_xlabel("step")
        if len(keys) > 1:
            ax.set_title("all domains" if key == "test_loss" else key.split("/", 1)[1])
    for ax in axes.flat[len(keys):]:
        ax.remove()
    if len(keys) == 1:
        axes.flat[0].legend(loc="upper right")
    else:  # below every panel, as many columns as the labels' length allows
        longest = max(len(g.legend) for g in groups)
        fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside lower center",
                   ncols=max(1, min(len(groups), 70 // (longest + 6))))
    style.title(fig, final_headline(current(groups)), stale_reason(groups))
    png = style.save(fig, out_stem)
    return [png, png.with_suffix(".svg")]
