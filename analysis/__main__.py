"""Draw: results in, figures out. Nothing here trains or imports torch.

    python -m analysis [--results DIR] [--benchmarks DIR] [--figures DIR] [--redraw-all]   every figure, and the index
    python -m analysis diffs [--figures DIR] [--redraw-all]   only the patch figures (the index is left as is)
    python -m analysis numbers [--results DIR]           only the parts' headline numbers, printed
    python -m analysis compare RUN_OR_RECIPE_DIR... [-o OUT_STEM]   an ad-hoc comparison of any runs

A redraw is all or nothing (analysis/staging.py). When the patch series does not apply, the patch
figures are not redrawn (their old files stay, and the index says why), everything else is, and
the exit code is 1. A patch figure whose key (what it shows, and the code that draws it) is the
one figures/patches/manifest.json records is copied from the last drawing instead of rendered
(analysis/diffs.py, draw_series); --redraw-all renders them all.
"""

import argparse
import sys
from pathlib import Path

import apply
from analysis import part3, part4, part5, part6, part7, plots, staging
from analysis.index import write_index
from analysis.parts import Sources, shown
from runs.store import RESULTS_DIR, ROOT

FIGURES_DIR = ROOT / "analysis" / "figures"
BENCHMARKS_DIR = ROOT / "benchmarks" / "results"
# every post's figures, in the index's order: a new post adds its Part here
PARTS = [part3.part, part4.part, part5.part, part6.part, part7.part]


def redraw(sources, figures_dir, root=ROOT, redraw_all=False):
    """Every part's figures, the patch figures and the index; returns the exit code. redraw_all:
    render every patch figure, even those unchanged since the last drawing."""
    figures, missing, skipped = [], [], []
    with staging.staging(figures_dir) as stage:
        for part in PARTS:
            drawing = part.draw(sources, stage)
            for recipe in drawing.missing:
                print(f"{part.name}: no finished results of {recipe} in {shown(sources.results)}: "
                      f"run `python -m runs {recipe}`")
            print_numbers(part, drawing.numbers)
            figures += drawing.figures
            missing += drawing.missing
            skipped += drawing.skipped
        patches, error = draw_patches(stage, root, figures_dir, redraw_all)
        if error:
            skipped.append(("patches", f"not redrawn, the files there are older: {error}"))
        write_index(figures + patches, stage, missing, skipped)
        staging.publish(stage, figures_dir, lambda path: owned_by_redraw(path, patches_drawn=not error))
    report(figures + patches, figures_dir)
    print(shown(figures_dir / "README.md"))
    return 1 if error else 0


def owned_by_redraw(path, patches_drawn):
    """What a redraw replaces in the figures folder: the index, the parts' PNG and SVG files, and the
    patch figures when they were drawn. Anything else there (notes written by hand) stays."""
    if len(path.parts) == 1:
        return path.name == "README.md"
    if path.parts[0] == "patches":
        return patches_drawn
    return path.parts[0] in {part.name for part in PARTS} and path.suffix in (".png", ".svg")


def redraw_patches(figures_dir, root=ROOT, redraw_all=False):
    """Only the patch figures, all or nothing; returns the exit code."""
    with staging.staging(figures_dir) as stage:
        patches, error = draw_patches(stage, root, figures_dir, redraw_all)
        if error:
            return 1
        staging.publish(stage, figures_dir, lambda path: path.parts[0] == "patches")
    report(patches, figures_dir)
    return 0


def print_numbers(part, lines):
    for line in lines:
        print(f"{part.name}: {line}")


def numbers(sources):
    """Only the parts' headline numbers (nothing drawn); returns the exit code."""
    for part in PARTS:
        print_numbers(part, part.numbers_of(sources))
    return 0


def draw_patches(stage, root, last, redraw_all=False):
    """The patch figures, into stage, those unchanged since the last drawing (in the figures folder
    last) copied from there -> (their index entries, None), or ([], why not) when the series does
    not apply, said on one line."""
    from analysis import diffs  # pygments and the patch parser: only needed here

    try:
        drawing = diffs.draw_series(root, stage, last, redraw_all)
    except apply.ApplyError as error:
        why = str(error).splitlines()[0]
        print(f"error: patch figures not drawn: {why} (`python apply.py check` says more)", file=sys.stderr)
        return [], why
    if not drawing.figures:
        print("patches: none drawn (the series is empty)")
    else:
        print(f"patches: {len(drawing.drawn)} of {len(drawing.figures)} figures rendered, "
              f"{len(drawing.kept)} unchanged since the last drawing (kept; --redraw-all renders them all)")
    return drawing.figures, None


def report(figures, figures_dir):
    """One line per figure written."""
    for figure in figures:
        print(shown(figures_dir / figure.path) + (f"  [STALE: {figure.stale}]" if figure.stale else ""))


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m analysis", description="Redraw the lab's figures from results.")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default runs/results)")
    parser.add_argument("--benchmarks", type=Path, default=BENCHMARKS_DIR,
                        help="benchmark records folder (default benchmarks/results)")
    parser.add_argument("--figures", type=Path, default=FIGURES_DIR, help="figures folder (default analysis/figures)")
    redraw_all_help = ("render every patch figure, even those unchanged since the last drawing "
                       "(by default they are copied from it)")
    parser.add_argument("--redraw-all", action="store_true", help=redraw_all_help)
    commands = parser.add_subparsers(dest="command")
    diffs = commands.add_parser("diffs", help="only the patch figures")
    diffs.add_argument("--figures", type=Path, default=argparse.SUPPRESS, help="figures folder")
    diffs.add_argument("--redraw-all", action="store_true", default=argparse.SUPPRESS, help=redraw_all_help)
    commands.add_parser("numbers", help="only the parts' headline numbers, printed (nothing is drawn)")
    compare = commands.add_parser("compare", help="test-loss curves of any runs, grouped by configuration")
    compare.add_argument("paths", nargs="+", metavar="RUN_OR_RECIPE_DIR")
    compare.add_argument("-o", "--out", type=Path, default=Path("out/compare"),
                         help="output path without suffix: writes OUT.png and OUT.svg (default out/compare)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.command == "compare":
        try:
            written = plots.compare(args.paths, args.out)
        except plots.CompareError as error:
            print(f"python -m analysis compare: error: {error}", file=sys.stderr)
            return 2  # argparse's code for a bad command line
        for path in written:
            print(shown(path))
        return 0
    if args.command == "diffs":
        return redraw_patches(args.figures, redraw_all=args.redraw_all)
    if args.command == "numbers":
        return numbers(Sources(args.results, args.benchmarks))
    return redraw(Sources(args.results, args.benchmarks), args.figures, redraw_all=args.redraw_all)


if __name__ == "__main__":
    sys.exit(main())
