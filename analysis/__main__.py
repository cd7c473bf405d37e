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
import importlib
import pkgutil
import re
import sys
from pathlib import Path

import analysis
import apply
from analysis import index, plots, staging
from analysis.index import Figure, write_index
from analysis.parts import Sources, shown
from runs import folder_problem
from runs.store import RESULTS_DIR, ROOT

FIGURES_DIR = ROOT / "analysis" / "figures"
BENCHMARKS_DIR = ROOT / "benchmarks" / "results"


def post_parts():
    """Every post's figures, in the index's order: the Part of each module analysis/partN.py, by N
    (a new post adds its module, nothing else)."""
    names = [module.name for module in pkgutil.iter_modules(analysis.__path__) if re.fullmatch(r"part\d+", module.name)]
    return [importlib.import_module(f"analysis.{name}").part for name in sorted(names, key=lambda n: int(n[4:]))]


PARTS = post_parts()


def redraw(sources, figures_dir, root=ROOT, redraw_all=False):
    """Every part's figures, the patch figures and the index; returns the exit code. redraw_all:
    render every patch figure, even those unchanged since the last drawing. A figure whose results
    (or benchmark record) are absent is kept as the last drawing left it, with its index entry."""
    figures, missing, skipped, kept = [], [], [], set()
    entries = index.old_entries(figures_dir)
    with staging.staging(figures_dir) as stage:
        for part in PARTS:
            drawing = part.draw(sources, stage)
            for recipe in drawing.missing:
                print(f"{part.name}: no finished results of {recipe} in {shown(sources.results)}: "
                      f"run `python -m runs {recipe}`")
            print_numbers(part, drawing.numbers)
            kept_here = [Figure(path=Path(f"{stem}.png"), caption="", entry=entries[f"{stem}.png"])
                         for stem in drawing.absent if f"{stem}.png" in entries
                         and (Path(figures_dir) / f"{stem}.png").is_file()]
            kept |= {Path(figure.path).with_suffix("") for figure in kept_here}
            figures += in_declared_order(part, drawing.figures + kept_here)
            missing += drawing.missing
            skipped += drawing.skipped
        patches, error = draw_patches(stage, root, figures_dir, redraw_all)
        if error:
            skipped.append(("patches", f"not redrawn, the files there are older: {error}"))
        write_index(figures + patches, stage, missing, skipped)
        staging.publish(stage, figures_dir,
                        lambda path: owned_by_redraw(path, patches_drawn=not error, kept=kept))
    report(figures + patches, figures_dir)
    print(shown(figures_dir / "README.md"))
    return 1 if error else 0


def in_declared_order(part, figures):
    order = [f"{part.name}/{declared.stem}" for declared in part.declared]
    return sorted(figures, key=lambda f: order.index(Path(f.path).with_suffix("").as_posix()))


def owned_by_redraw(path, patches_drawn, kept=frozenset()):
    """What a redraw replaces in the figures folder: the index, the parts' PNG and SVG files (but
    those `kept`, "<part>/<stem>" paths whose results are absent), and the patch figures when they
    were drawn. Anything else there (notes written by hand) stays."""
    if len(path.parts) == 1:
        return path.name == "README.md"
    if path.parts[0] == "patches":
        return patches_drawn
    return path.parts[0] in {part.name for part in PARTS} and path.suffix in (".png", ".svg") \
        and path.with_suffix("") not in kept


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
        kept = "  [kept from the last drawing: its results are absent]" if figure.entry is not None else ""
        print(shown(figures_dir / figure.path) + (f"  [STALE: {figure.stale}]" if figure.stale else "") + kept)


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


INDEX_HEAD = "# Figures\n\nGenerated by `python -m analysis`"  # how write_index starts a figures folder's index


class UsageError(Exception):
    """A command line that would lose work or draw nothing; the message is one line."""


def check_results(results):
    if not results.is_dir():
        raise UsageError(f"--results {results}: no such folder" if not results.exists()
                         else f"--results {results} is a file, not a results folder")


def check_figures(figures):
    """A figures folder is a new or empty folder, or one a redraw made (its index says so): a redraw
    replaces files there, so nothing is written anywhere else."""
    if figures.is_symlink() or figures.exists() and not figures.is_dir():
        raise UsageError(f"--figures {figures} is a file, not a folder: name a figures folder or a new one")
    if not figures.is_dir() or not any(figures.iterdir()):
        return
    index_file = figures / "README.md"
    indexed = index_file.is_file() and index_file.read_text(errors="replace").startswith(INDEX_HEAD)
    if not indexed and not (figures / "patches" / "manifest.json").is_file():  # `diffs` writes no index
        raise UsageError(f"--figures {figures} is not a figures folder (no index written by python -m analysis "
                         "in it), and a redraw replaces files there: name a figures folder or a new one")


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.command in (None, "numbers"):
            check_results(args.results)
        if args.command in (None, "diffs"):
            check_figures(args.figures)
    except UsageError as error:
        print(f"python -m analysis: error: {error}", file=sys.stderr)
        return 2  # argparse's code for a bad command line
    if args.command == "compare":
        problem = folder_problem(args.out, "-o")
        if problem:
            print(f"python -m analysis compare: error: {problem}", file=sys.stderr)
            return 2
        try:
            written = plots.compare(args.paths, args.out,
                                    say=lambda line: print(f"note: {line}", file=sys.stderr))
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
