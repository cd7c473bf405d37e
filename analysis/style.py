"""One look for every figure: blog column width, large fonts, the Okabe-Ito palette, and
byte-stable PNG and SVG output (so that a redraw from the same results changes no file)."""

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, and no GUI toolkit to import
import matplotlib.colors as mcolors  # noqa: E402  (after the backend is chosen)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

WIDTH = 7.0  # inches: a blog's text column
DPI = 150
TITLE_CHARS = 60  # about what fits on one 14 pt line at WIDTH
NOTE_SIZE = 11  # points: the stale note under a headline; a 14 pt line of the headline holds it
NOTE_CHARS = 86  # about what fits on one NOTE_SIZE line at WIDTH

# Okabe & Ito's colour-blind-safe palette, in the order lines use it; yellow last (pale on white)
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
GREY = "#999999"
STALE_RED = "#C00000"

RC = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 12,
    "figure.titlesize": 14,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "svg.hashsalt": "budget-routing-lab",  # SVG ids from a fixed salt, not a random one
    "svg.fonttype": "path",  # text as outlines: the SVG looks the same without our fonts
    "path.simplify": False,
}
matplotlib.rcParams.update(RC)


def figure(nrows=1, ncols=1, height=4.0, **kwargs):
    """A blog-width figure with a grid of axes (squeezed as plt.subplots does)."""
    return plt.subplots(nrows, ncols, figsize=(WIDTH, height), layout="constrained", **kwargs)


def colour(index):
    return PALETTE[index % len(PALETTE)]


def greyed(colour_, amount=0.6):
    """A colour washed towards grey: how stale results are drawn."""
    rgb = mcolors.to_rgb(colour_)
    grey = mcolors.to_rgb(GREY)
    return mcolors.to_hex([c + amount * (g - c) for c, g in zip(rgb, grey)])


def title(fig, text, stale=None, partial=None):
    """The figure's headline: a sentence, so it starts with a capital (unless it starts with a flag,
    "n-expert=4 ..."); wrapped into lines of about equal length rather than a full line and a stub.
    `stale` (why the figure's results are stale) is said in red under the headline, so that a stale
    figure cannot pass for a current one: the headline keeps blank lines for it, so the layout makes
    room and the note covers neither data nor legend. `partial` (how much of a recipe that is still
    training has finished) is said the same way."""
    if text.split(" ", 1)[0].isalpha():
        text = text[:1].upper() + text[1:]
    n_lines = -(-len(text) // TITLE_CHARS)
    width = -(-len(text) // n_lines)
    while len(lines := textwrap.wrap(text, width)) > n_lines:
        width += 1
    note = [line for prefix, why in (("Stale results", stale), ("Partial results", partial)) if why
            for line in textwrap.wrap(f"{prefix}: {why}", NOTE_CHARS)]
    headline = fig.suptitle("\n".join(lines + [""] * len(note)))
    if note:  # in the blank lines: their bottom edge is the headline's
        fig.add_artist(Annotation("\n".join(note), xy=(0.5, 0), xycoords=headline, ha="center", va="bottom",
                                  color=STALE_RED, fontsize=NOTE_SIZE))


def save(fig, stem):
    """Write stem.png and stem.svg, the same bytes on every redraw, and close the figure.
    Returns the PNG's path."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.svg"
    fig.savefig(png, metadata={"Software": None})  # no version string: a matplotlib update changes no file
    fig.savefig(svg, metadata={"Date": None})  # no timestamp
    plt.close(fig)
    return png
