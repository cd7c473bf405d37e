"""Draw: results in, figures out. Nothing here trains or imports torch.

    python -m analysis [--results DIR] [--figures DIR]   every figure, then the index DIR/README.md
    python -m analysis diffs [--figures DIR]             only the patch figures (the index is left as is)
    python -m analysis compare RUN_OR_RECIPE_DIR... [-o OUT_STEM]   an ad-hoc comparison of any runs
"""

import argparse
import sys
from pathlib import Path

from analysis import part3, part4, plots
from analysis.index import write_index
from runs.store import RESULTS_DIR, ROOT

FIGURES_DIR = ROOT / "analysis" / "figures"

# part -> draw(results_dir, figures_dir) -> (figures, recipes without results); each part draws
# into figures_dir/<part>/
PARTS = {"part3": part3.draw, "part4": part4.draw}


def redraw(results_dir, figures_dir):
    figures, missing = [], []
    for part, draw in PARTS.items():
        clear(figures_dir / part)  # a figure the results no longer give must not linger
        drawn, not_drawn = draw(results_dir, figures_dir)
        report(drawn, figures_dir)
        for recipe in not_drawn:
            print(f"{part}: no finished results of {recipe} in {shown(results_dir)}: run `python -m runs {recipe}`")
        figures += drawn
        missing += not_drawn
    figures += draw_patches(figures_dir)
    print(shown(write_index(figures, figures_dir, missing)))


def clear(folder):
    for old in [*folder.glob("*.png"), *folder.glob("*.svg")]:
        old.unlink()


def draw_patches(figures_dir):
    from analysis import diffs  # pygments and the patch parser: only needed here

    figures = diffs.draw_patches(ROOT, figures_dir)
    report(figures, figures_dir)
    if not figures:
        print("patches: none drawn (the series is empty)")
    return figures


def report(figures, figures_dir):
    """One line per figure written."""
    for figure in figures:
        print(shown(figures_dir / figure.path) + (f"  [STALE: {figure.stale}]" if figure.stale else ""))


def shown(path):
    path = Path(path).resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m analysis", description="Redraw the lab's figures from results.")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default runs/results)")
    parser.add_argument("--figures", type=Path, default=FIGURES_DIR, help="figures folder (default analysis/figures)")
    commands = parser.add_subparsers(dest="command")
    diffs = commands.add_parser("diffs", help="only the patch figures")
    diffs.add_argument("--figures", type=Path, default=argparse.SUPPRESS, help="figures folder")
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
    elif args.command == "diffs":
        draw_patches(args.figures)
    else:
        redraw(args.results, args.figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
