"""The lab's figures: `python -m analysis` redraws every one from committed results.

Each post's figures are one module, analysis/partN.py, which the redraw finds by its name.
The module makes a Part and declares its figure functions on it; the driver (analysis/parts.py)
does the rest: it loads and groups the runs, calls each function, titles and saves what it drew
(PNG and SVG, the same bytes on every redraw), marks it when its results are stale, says why a
figure was not drawn, and lists everything in the index (analysis/figures/README.md). A new part:

    from analysis import plots, style
    from analysis.parts import Drawn, Part, Skip

    RECIPE = "act-names"  # runs/results/act-names/<run>/
    part = Part("part5", label=lambda config: config["arm"])  # a group's name; default: what differs

    @part.figure(RECIPE)  # drawn into figures/part5/halting-steps.png and .svg
    def halting_steps(groups):
        act = plots.preferred([g for g in groups if g.name == "act"])  # current over stale
        if act is None:
            return Skip("no act runs")  # printed, and listed in the index; nothing is drawn
        fig, ax = style.figure(height=4.2)
        curve = plots.draw_band(ax, act, "act/steps")  # a metrics.jsonl key: mean and range over seeds
        headline = f"ACT ends at {curve.mean[-1]:.2f} steps a token"
        return Drawn(fig, headline, "Mean halting steps per token over training ...", [act])

saved as analysis/part5.py: the redraw takes every analysis/partN.py, in N's order.

A part may also declare the headline numbers its notes cite (analysis/part7.py): `@part.numbers(RECIPE)`
on a function of the groups that returns lines of text; the redraw prints them after the part's
figures, `python -m analysis numbers` prints only them (nothing drawn).

A figure function:
- is named after its file: def halting_steps -> <part>/halting-steps.png; figures are drawn (and
  indexed) in the order they are declared;
- gets the groups of each recipe declared, `@part.figure(A, B)` -> f(groups_a, groups_b): each a
  list of plots.RunGroup (a configuration's seeds, lowest seed first; stale runs in groups of
  their own, drawn greyed and dashed). It is not called while a declared recipe has no finished
  runs: the driver says "run `python -m runs A`" instead;
- may instead (or also) get a benchmark record, `@part.figure(record="moe_speed")` -> f(record):
  benchmarks/results/moe_speed.json as a dict, written by `python benchmarks/moe_speed.py --record
  PATH`; skipped with a reason when absent, stale when the code it measured has changed;
- returns Drawn(fig, headline, caption, groups): the figure unsaved and untitled, the headline
  (the title: the finding, with its numbers, from current groups only: plots.current), the caption
  (one line for the index) and the groups drawn (their recipes, runs and staleness are indexed);
  or Skip(reason) when the results cannot give the figure;
- never saves, titles or prints: the driver does, into a staging folder that replaces the figures
  folder only when everything is drawn (analysis/staging.py).

plots holds the shared pieces (grouping, bands, tables, ties, mean ± sd), style the look.
"""
