"""Patches as figures: every patch of the series, whole and hunk by hunk, in four formats.

Every figure is drawn from the same .patch file that apply.py reads (apply.read_patch), never from
a diff computed again, so a figure shows exactly what the series applies. For the series:

    figures/patches/<patch stem>/patch.{html,svg,png,md}     the whole patch
    figures/patches/<patch stem>/hunk-<k>.{html,svg,png,md}  hunk k, counted across files from 1

Drawing takes two steps. The layout turns a patch into pages: a header (the Description and a
diffstat) and, per hunk, a caption (file, enclosing def/class) and rows with old and new line
numbers, Python syntax tokens, the characters that changed between paired removed and added lines,
and runs of unchanged lines folded into "… N unchanged lines". Three renderers then write each
page as an HTML snippet (its own <style>, every class prefixed "pd-", no scripts, no external
assets), as an image drawn with matplotlib (SVG and PNG, byte-identical across runs), and as
Markdown (a fenced diff block and its caption) to paste into a post.

    python -m analysis.diffs                        the series, into analysis/figures/patches/
    python -m analysis.diffs PATCH ... [-o DIR]     given patch files, into DIR/patches/
"""

import argparse
import difflib
import functools
import html
import re
import shutil
import sys
import textwrap
from dataclasses import dataclass, replace
from itertools import accumulate, groupby
from pathlib import Path

import matplotlib
import matplotlib.style
from matplotlib.figure import Figure as Canvas  # "Figure" is the index entry here
from matplotlib.patches import Rectangle
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from pygments.styles import get_style_by_name
from pygments.token import STANDARD_TYPES, Error, Text

import apply
from analysis.index import Figure

ROOT = Path(__file__).resolve().parent.parent

KEEP_CONTEXT = 2  # unchanged lines shown next to each change
MIN_FOLD = 2  # a fold row takes a line's room, so folding a single line would save nothing
SIMILAR = 0.5  # paired lines sharing less than this (difflib ratio, over words) were rewritten:
# marking "what changed" in them would mark nearly everything, so they get no intra-line marks
TAB = 8
NO_NEWLINE = apply.NO_NEWLINE.strip()

# Okabe-Ito blue for added and vermillion for removed: told apart with every common colour
# vision deficiency, and the +/− signs say it without colour too. Darker inks keep text readable.
COLOURS = {
    "ink": "#1f2328",
    "muted": "#6e7781",
    "rule": "#d0d7de",
    "paper": "#ffffff",
    "caption": "#eef1f4",
    "fold": "#f6f8fa",
    "add": "#0072b2",
    "add ink": "#005b8e",
    "add row": "#e3f0fa",
    "add change": "#a8cdeb",
    "del": "#d55e00",
    "del ink": "#a34700",
    "del row": "#fce9dc",
    "del change": "#f3b88f",
}
SYNTAX = get_style_by_name("default")
LEXER = PythonLexer(stripnl=False, ensurenl=False)  # keep the text exactly: lines are counted
WORD = re.compile(r"\w+|\s+|[^\w\s]")
DEFINITION = re.compile(r"\s*(?:async\s+)?(def|class)\s+(\w+)")
# Control characters would draw as nothing (or break a line); show their Unicode pictures.
# Tabs are expanded instead, once the changes are found (see expand_tabs).
CONTROL_PICTURES = {code: 0x2400 + code for code in range(32) if code != 9} | {0x7F: 0x2421}


# ---------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Segment:
    text: str
    token: object  # its Pygments token type, e.g. Token.Keyword
    changed: bool  # part of what differs from the paired removed or added line


@dataclass(frozen=True)
class Row:
    kind: str  # "+", "-", " " for a line; "\\" for the no-newline marker; "…" for a fold
    old: int | None = None  # line number in the old file; None for an added line
    new: int | None = None  # line number in the new file; None for a removed line
    segments: tuple[Segment, ...] = ()
    folded: int = 0  # for "…": how many unchanged lines it stands for

    @property
    def text(self) -> str:
        return "".join(segment.text for segment in self.segments)


@dataclass(frozen=True)
class Block:
    """One hunk as drawn."""

    path: str
    is_new: bool  # the patch creates the file
    hunk: apply.Hunk
    scope: tuple[str, ...]  # outermost first: ("class Block", "def __init__(self, config):")
    rows: tuple[Row, ...]
    gap_before: int  # unchanged lines between the previous hunk of the same file and this one

    @property
    def name(self) -> str:
        """The qualified name, like "Block.__init__"; "(top level)" or "(new file)" outside
        any def or class."""
        return ".".join(map(definition_name, self.scope)) or self.nowhere

    @property
    def where(self) -> str:
        """The scope as the caption shows it: "class Block › def __init__(self, config):"."""
        return " › ".join(self.scope) or self.nowhere

    @property
    def nowhere(self) -> str:
        return "(new file)" if self.is_new else "(top level)"


def definition_name(line: str) -> str:
    """The name a definition line defines ("__init__" for "def __init__(self, config):"); a
    section that is no definition, as it is."""
    definition = DEFINITION.match(line)
    return definition[2] if definition else line


@dataclass(frozen=True)
class Page:
    """What one figure shows, whatever it is rendered as."""

    title: str
    text: str  # the rest of the Description
    stats: tuple[tuple[str, int, int], ...]  # (path, added, removed) per file; none for a hunk
    blocks: tuple[Block, ...]
    caption: str  # one line, for the figure index and under the Markdown
    diff: str  # the patch text it shows, for the Markdown


def pages(patch: apply.Patch, name: str, base: dict[str, bytes] | None) -> list[tuple[str, Page]]:
    """("patch", the whole patch) and ("hunk-k", hunk k) for every hunk, counted across files."""
    title, _, text = patch.fields.get("Description", "").partition("\n")
    title = title or name
    blocks = patch_blocks(patch, base)
    whole = Page(
        title, text, tuple((file.path, file.added, file.removed) for file in patch.files),
        tuple(blocks), f"{name}: {title} ({diffstat(patch)})", diff_text(patch),
    )
    hunks = [
        Page(
            title, "", (), (replace(block, gap_before=0),),
            f"{name}, hunk {k}: {block.name} in {block.path} "
            f"(+{block.hunk.added} −{block.hunk.removed})",
            hunk_text(block.hunk),
        )
        for k, block in enumerate(blocks, start=1)
    ]
    return [("patch", whole)] + [(f"hunk-{k}", page) for k, page in enumerate(hunks, start=1)]


def diffstat(patch: apply.Patch) -> str:
    return f"{apply.plural(len(patch.files), 'file')}, +{patch.added} −{patch.removed}"


def diff_text(patch: apply.Patch) -> str:
    """The diff part of the patch file, verbatim."""
    return patch.data.decode("utf-8")[len(patch.header):]


def hunk_text(hunk: apply.Hunk) -> str:
    """The hunk as the patch file writes it."""
    lines = [hunk.header + "\n"]
    for line in hunk.lines:
        eof = "" if line.text.endswith("\n") else "\n" + apply.NO_NEWLINE
        lines.append(line.kind + line.text + eof)
    return "".join(lines)


def patch_blocks(patch: apply.Patch, base: dict[str, bytes] | None) -> list[Block]:
    """Every hunk laid out; base, the tree the patch applies to, gives captions their classes."""
    blocks = []
    for file in patch.files:
        old_file = None if base is None or file.is_new else base.get(file.path)
        old_lines = None if old_file is None else apply.split_lines(old_file.decode("utf-8"))
        previous = None
        for hunk in file.hunks:
            gap = hunk.old_start - (previous.old_start + previous.old_count) if previous else 0
            rows = hunk_rows(hunk)
            blocks.append(Block(file.path, file.is_new, hunk, scope(hunk, old_lines), rows, gap))
            previous = hunk
    return blocks


def scope(hunk: apply.Hunk, old_lines: list[str] | None) -> tuple[str, ...]:
    """The hunk's section (the def or class line after its @@), and the definitions around it
    ("class Block") when the old file is known: a section alone says "def forward(self, x):",
    and every model in the spine has one of those."""
    section = hunk.section.strip()
    if not section:
        return ()
    around = [] if old_lines is None else enclosing(old_lines[: hunk.old_start - 1])[:-1]
    return (*around, section)


def enclosing(lines_above: list[str]) -> list[str]:
    """The nearest definition above the end of lines_above and those around it, outermost first:
    ["class Block", "def __init__"]. Going up from the nearest one, each line indented less than
    the last one met opens the block around it."""
    found: list[str] = []
    indent = None
    for line in reversed(lines_above):
        code = line.lstrip()
        width = len(line) - len(code)
        if not code.strip() or code.startswith("#") or (indent is not None and width >= indent):
            continue
        definition = DEFINITION.match(line)
        if definition:
            found.append(f"{definition[1]} {definition[2]}")
        if found:  # lines below the nearest definition are the hunk's neighbours, not its blocks
            indent = width
        if indent == 0:
            break
    return found[::-1]


def hunk_rows(hunk: apply.Hunk) -> tuple[Row, ...]:
    segments, numbers, shown = line_segments(hunk), line_numbers(hunk), visible(hunk)
    rows: list[Row] = []
    for shown_run, run in groupby(range(len(hunk.lines)), key=shown.__getitem__):
        run = list(run)
        if not shown_run:
            rows.append(Row("…", folded=len(run)))
            continue
        for index in run:
            line = hunk.lines[index]
            rows.append(Row(line.kind, *numbers[index], segments[index]))
            if not line.text.endswith("\n"):
                rows.append(Row("\\"))
    return tuple(rows)


def line_numbers(hunk: apply.Hunk) -> list[tuple[int | None, int | None]]:
    """(old, new) per line: context has both, a removed line only old, an added line only new."""
    old, new, numbers = hunk.old_start, hunk.new_start, []
    for line in hunk.lines:
        numbers.append((None if line.kind == "+" else old, None if line.kind == "-" else new))
        old += line.kind != "+"
        new += line.kind != "-"
    return numbers


def visible(hunk: apply.Hunk) -> list[bool]:
    """Which lines to show: changes, the end of the file, and KEEP_CONTEXT lines around them."""
    anchors = [
        index for index, line in enumerate(hunk.lines)
        if line.kind != " " or not line.text.endswith("\n")
    ]
    shown = [any(abs(index - anchor) <= KEEP_CONTEXT for anchor in anchors)
             for index in range(len(hunk.lines))]
    start = 0
    for keep, run in groupby(shown):
        length = len(list(run))
        if not keep and length < MIN_FOLD:
            shown[start : start + length] = [True] * length
        start += length
    return shown


def line_segments(hunk: apply.Hunk) -> list[tuple[Segment, ...]]:
    """Each line's syntax tokens, split where it differs from the line it pairs with."""
    texts = [display(line.text) for line in hunk.lines]
    kinds = [line.kind for line in hunk.lines]
    old_side = [index for index, kind in enumerate(kinds) if kind != "+"]
    new_side = [index for index, kind in enumerate(kinds) if kind != "-"]
    tokens: list[list] = [[] for _ in texts]
    # Each side is lexed as one text, so that a string spanning lines colours right; context
    # lines are on both sides and keep the new side's tokens.
    for side in (old_side, new_side):
        for index, line_tokens in zip(side, syntax([texts[index] for index in side])):
            tokens[index] = line_tokens
    spans: list[list[tuple[int, int]]] = [[] for _ in texts]
    for removed, added in pairs(kinds):
        spans[removed], spans[added] = changed_spans(texts[removed], texts[added])
    return [expand_tabs(mark(*line)) for line in zip(tokens, spans)]


def display(text: str) -> str:
    """A line as drawn: without its terminator, control characters visible."""
    return text.removesuffix("\n").removesuffix("\r").translate(CONTROL_PICTURES)


def expand_tabs(segments: tuple[Segment, ...]) -> tuple[Segment, ...]:
    """Tabs as spaces up to the next tab stop. Done after the comparison: the same tab after
    "alpha" and after "beta" stands for a different number of spaces, yet it did not change."""
    expanded, column = [], 0
    for segment in segments:
        # Pad to where the segment starts within its tab stop, so that expandtabs counts columns
        # from there, then drop the padding.
        offset = column % TAB
        text = (" " * offset + segment.text).expandtabs(TAB)[offset:]
        expanded.append(replace(segment, text=text))
        column += len(text)
    return tuple(expanded)


def syntax(texts: list[str]) -> list[list[tuple[object, str]]]:
    """The Python tokens of each line, lexing the lines as one text."""
    lines: list[list[tuple[object, str]]] = [[]]
    for token, value in LEXER.get_tokens("\n".join(texts)):
        token = Text if token in Error else token  # a hunk is a fragment: no red error boxes
        for index, piece in enumerate(value.split("\n")):
            if index:
                lines.append([])
            if piece:
                lines[-1].append((token, piece))
    return lines


def pairs(kinds: list[str]) -> list[tuple[int, int]]:
    """(removed, added) line indices to compare: each run of removed lines with the run of added
    lines right after it, i-th with i-th."""
    found, index = [], 0
    while index < len(kinds):
        removed = run_of(kinds, index, "-")
        added = run_of(kinds, removed.stop, "+")
        found += zip(removed, added)
        index = max(added.stop, index + 1)
    return found


def run_of(kinds: list[str], start: int, kind: str) -> range:
    end = start
    while end < len(kinds) and kinds[end] == kind:
        end += 1
    return range(start, end)


def changed_spans(old: str, new: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The character spans of old and of new that differ, compared word by word: a renamed
    variable is marked whole, not as a scatter of the letters that happen to differ."""
    old_words, new_words = WORD.findall(old), WORD.findall(new)
    matcher = difflib.SequenceMatcher(None, old_words, new_words, autojunk=False)
    if matcher.ratio() < SIMILAR:
        return [], []
    old_at = list(accumulate(map(len, old_words), initial=0))
    new_at = list(accumulate(map(len, new_words), initial=0))
    old_spans, new_spans = [], []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            old_spans += [(old_at[i1], old_at[i2])] if i1 < i2 else []
            new_spans += [(new_at[j1], new_at[j2])] if j1 < j2 else []
    return old_spans, new_spans


def mark(tokens: list[tuple[object, str]], spans: list[tuple[int, int]]) -> tuple[Segment, ...]:
    """Tokens cut at the span edges, so each piece is wholly changed or wholly not: the change
    markup can then wrap whole syntax spans and the two nest correctly."""
    cuts = sorted({edge for span in spans for edge in span})
    segments, position = [], 0
    for token, text in tokens:
        end = position + len(text)
        inner = [cut for cut in cuts if position < cut < end]
        for start, stop in zip([position, *inner], [*inner, end]):
            changed = any(first <= start < last for first, last in spans)
            segments.append(Segment(text[start - position : stop - position], token, changed))
        position = end
    return tuple(segments)


def fold_text(count: int) -> str:
    return f"… {count} unchanged line{'' if count == 1 else 's'}"


# ---------------------------------------------------------------------------- HTML


CSS = f"""\
.pd {{ font: 13px/1.5 "DejaVu Sans Mono", Menlo, Consolas, monospace; color: {COLOURS["ink"]};
  background: {COLOURS["paper"]}; border: 1px solid {COLOURS["rule"]}; border-radius: 6px;
  overflow-x: auto; margin: 1em 0; }}
.pd .pd-head {{ padding: .6em .8em; border-bottom: 1px solid {COLOURS["rule"]}; }}
.pd .pd-title {{ margin: 0; font-weight: bold; font-size: 1.15em; }}
.pd .pd-text {{ margin: .4em 0 0; font-family: system-ui, sans-serif; }}
.pd table {{ border-collapse: collapse; border-spacing: 0; }}
.pd .pd-stat {{ margin-top: .5em; }}
.pd .pd-stat td {{ padding: 0 1em 0 0; white-space: pre; }}
.pd .pd-stat .pd-total td {{ color: {COLOURS["muted"]}; }}
.pd .pd-bar {{ display: inline-block; height: .7em; white-space: nowrap; }}
.pd .pd-bar span {{ display: inline-block; height: 100%; }}
.pd .pd-bar-add {{ background: {COLOURS["add"]}; }}
.pd .pd-bar-del {{ background: {COLOURS["del"]}; }}
.pd .pd-plus {{ color: {COLOURS["add ink"]}; }}
.pd .pd-minus {{ color: {COLOURS["del ink"]}; }}
.pd .pd-diff {{ width: 100%; }}
.pd .pd-diff td {{ padding: 0 .5em; white-space: pre; vertical-align: top; }}
.pd .pd-num {{ width: 1%; text-align: right; color: {COLOURS["muted"]}; user-select: none; }}
.pd .pd-sign {{ width: 1%; user-select: none; font-weight: bold; }}
.pd .pd-add {{ background: {COLOURS["add row"]}; }}
.pd .pd-add .pd-sign {{ color: {COLOURS["add ink"]}; }}
.pd .pd-add .pd-chg {{ background: {COLOURS["add change"]}; border-radius: 2px; }}
.pd .pd-del {{ background: {COLOURS["del row"]}; }}
.pd .pd-del .pd-sign {{ color: {COLOURS["del ink"]}; }}
.pd .pd-del .pd-chg {{ background: {COLOURS["del change"]}; border-radius: 2px; }}
.pd .pd-caption td {{ background: {COLOURS["caption"]}; padding: .3em .5em; font-weight: bold;
  border-top: 1px solid {COLOURS["rule"]}; border-bottom: 1px solid {COLOURS["rule"]}; }}
.pd .pd-range {{ color: {COLOURS["muted"]}; font-weight: normal; }}
.pd .pd-fold td {{ background: {COLOURS["fold"]}; color: {COLOURS["muted"]}; font-style: italic; }}
.pd .pd-eof .pd-code {{ color: {COLOURS["muted"]}; font-style: italic; }}
"""
# Pygments' rules for its token classes, scoped to .pd and prefixed like ours, by class name.
TOKEN_CSS = {
    rule.split()[1].removeprefix(".pd-"): rule
    for rule in HtmlFormatter(style=SYNTAX, classprefix="pd-").get_style_defs(".pd").splitlines()
    if rule.startswith(".pd .pd-")
}


def to_html(page: Page) -> str:
    rows = []
    for block in page.blocks:
        rows += [fold_html(block.gap_before)] if block.gap_before else []
        rows += [caption_html(block)] + [row_html(row) for row in block.rows]
    table = '<table class="pd-diff">\n' + "\n".join(rows) + "\n</table>"
    return f'<div class="pd">\n{style_html(page)}\n{header_html(page)}\n{table}\n</div>\n'


def style_html(page: Page) -> str:
    """Our rules and the rules of the token classes the page uses: a snippet stays small."""
    used = sorted({token_class(segment.token) for block in page.blocks for row in block.rows
                   for segment in row.segments} & TOKEN_CSS.keys())
    return "<style>\n" + CSS + "".join(TOKEN_CSS[name] + "\n" for name in used) + "</style>"


def header_html(page: Page) -> str:
    parts = [f'<p class="pd-title">{escape(page.title)}</p>']
    parts += [f'<p class="pd-text">{escape(text)}</p>' for text in paragraphs(page.text)]
    if page.stats:
        parts.append(stats_html(page.stats))
    return '<div class="pd-head">\n' + "\n".join(parts) + "\n</div>"


def paragraphs(text: str) -> list[str]:
    """The Description's paragraphs (split at empty lines), each reflowed into one line: the
    header is wrapped for a terminal, a figure wraps it to its own width."""
    return [" ".join(part.split()) for part in re.split(r"\n\s*\n", text) if part.strip()]


def stats_html(stats: tuple[tuple[str, int, int], ...]) -> str:
    widest = max(added + removed for _, added, removed in stats) or 1
    rows = [
        f'<tr><td>{escape(path)}</td><td class="pd-plus">+{added}</td>'
        f'<td class="pd-minus">−{removed}</td><td>{bar_html(added, removed, widest)}</td></tr>'
        for path, added, removed in stats
    ]
    if len(stats) > 1:
        added, removed = sum(stat[1] for stat in stats), sum(stat[2] for stat in stats)
        rows.append(f'<tr class="pd-total"><td>{apply.plural(len(stats), "file")}</td>'
                    f"<td>+{added}</td><td>−{removed}</td><td></td></tr>")
    return '<table class="pd-stat">\n' + "\n".join(rows) + "\n</table>"


def bar_html(added: int, removed: int, widest: int, length_em: float = 8) -> str:
    """A bar as long as the file's share of the largest file's changes, blue then orange."""
    scale = length_em / widest
    return (
        f'<span class="pd-bar"><span class="pd-bar-add" style="width: {added * scale:.2f}em">'
        f'</span><span class="pd-bar-del" style="width: {removed * scale:.2f}em"></span></span>'
    )


def caption_html(block: Block) -> str:
    return (
        f'<tr class="pd-caption"><td colspan="4">{escape(block.path)}  {escape(block.where)}  '
        f'<span class="pd-range">{escape(block.hunk.ranges)}</span>  '
        f'<span class="pd-plus">+{block.hunk.added}</span> '
        f'<span class="pd-minus">−{block.hunk.removed}</span></td></tr>'
    )


def fold_html(count: int) -> str:
    return f'<tr class="pd-fold"><td colspan="4">{fold_text(count)}</td></tr>'


ROW_CLASSES = {"+": "pd-add", "-": "pd-del", " ": "pd-ctx", "\\": "pd-eof"}
SIGNS = {"+": "+", "-": "−", " ": "", "\\": ""}


def row_html(row: Row) -> str:
    if row.kind == "…":
        return fold_html(row.folded)
    code = escape(NO_NEWLINE) if row.kind == "\\" else code_html(row.segments)
    return (
        f'<tr class="{ROW_CLASSES[row.kind]}"><td class="pd-num">{number(row.old)}</td>'
        f'<td class="pd-num">{number(row.new)}</td><td class="pd-sign">{SIGNS[row.kind]}</td>'
        f'<td class="pd-code">{code}</td></tr>'
    )


def number(line: int | None) -> str:
    return "" if line is None else str(line)


def code_html(segments: tuple[Segment, ...]) -> str:
    parts = []
    for changed, group in groupby(segments, key=lambda segment: segment.changed):
        inner = "".join(token_html(segment) for segment in group)
        parts.append(f'<span class="pd-chg">{inner}</span>' if changed else inner)
    return "".join(parts)


def token_html(segment: Segment) -> str:
    name = token_class(segment.token)
    text = escape(segment.text)
    return f'<span class="pd-{name}">{text}</span>' if name else text


@functools.cache
def token_class(token) -> str:
    """Pygments' short class name for a token type ("k" for Keyword), from its nearest named
    ancestor; "" for plain text."""
    while token not in STANDARD_TYPES:
        token = token.parent
    return STANDARD_TYPES[token]


def escape(text: str) -> str:
    return html.escape(text, quote=True)


# ---------------------------------------------------------------------------- SVG and PNG

FONT = "DejaVu Sans Mono"  # bundled with matplotlib, so every machine draws the same glyphs
FONT_PT = 11
CHAR_PT = FONT_PT * 1233 / 2048  # the font's advance width is 1233/2048 em for every glyph
ROW_PT = FONT_PT * 1.55
PAD_PT = 10
TITLE_SCALE = 1.2
MIN_WIDTH, MAX_CODE = 64, 100  # in characters: the figure's least width; the longest code line
DPI = 200  # crisp on high-density screens
MAX_PIXELS = 60000  # Agg refuses images over 2**16 pixels a side; tall pages get a lower dpi
IMAGE_RC = {
    "svg.hashsalt": "analysis.diffs",  # fixed ids, so the SVG is the same bytes on every run
    "svg.fonttype": "path",  # glyphs as outlines: the reader needs no font
    # Hinting rounds each glyph's advance to whole pixels: over a 100-character line the PNG's
    # text drifts some 3 characters off the grid the change marks are drawn on.
    "text.hinting": "none",
}


def draw_image(page: Page, svg: Path, png: Path) -> None:
    """Save the page as SVG and PNG, the same bytes for the same page on every run.

    Drawn from matplotlib's defaults plus IMAGE_RC, whatever settings other figure code in the
    process has made (analysis.style sets its own on import)."""
    with matplotlib.style.context(["default", IMAGE_RC]):
        canvas = draw(page)
        canvas.savefig(svg, format="svg", metadata={"Date": None})
        height_in = canvas.get_figheight()
        canvas.savefig(png, format="png", dpi=min(DPI, MAX_PIXELS / height_in),
                       metadata={"Software": None})


class Grid:
    """A matplotlib figure addressed in character columns and rows of monospace text."""

    def __init__(self, columns: int, rows: int):
        self.width = 2 * PAD_PT + columns * CHAR_PT
        self.height = 2 * PAD_PT + rows * ROW_PT
        self.canvas = Canvas(figsize=(self.width / 72, self.height / 72))
        self.axes = self.canvas.add_axes((0, 0, 1, 1))
        self.axes.set_xlim(0, self.width)
        self.axes.set_ylim(self.height, 0)  # points from the top left, like the text runs
        self.axes.set_axis_off()
        self.canvas.patch.set_facecolor(COLOURS["paper"])

    def box(self, row: float, colour: str, first: float | None = None, last: float | None = None):
        """Fill a row, or its columns first..last."""
        left = 0 if first is None else PAD_PT + first * CHAR_PT
        right = self.width if last is None else PAD_PT + last * CHAR_PT
        self.axes.add_patch(Rectangle((left, PAD_PT + row * ROW_PT), right - left, ROW_PT,
                                      facecolor=colour, edgecolor="none"))

    def bar(self, row: float, colour: str, first: float, last: float) -> None:
        """A bar half a row high, in columns first..last."""
        left, right = PAD_PT + first * CHAR_PT, PAD_PT + last * CHAR_PT
        self.axes.add_patch(Rectangle((left, PAD_PT + (row + 0.25) * ROW_PT), right - left,
                                      ROW_PT / 2, facecolor=colour, edgecolor="none"))

    def text(self, row: float, column: float, text: str, colour: str = COLOURS["ink"],
             weight: str = "normal", style: str = "normal", scale: float = 1) -> None:
        self.axes.text(PAD_PT + column * CHAR_PT, PAD_PT + (row + 0.5) * ROW_PT, text,
                       color=colour, family=FONT, size=FONT_PT * scale, weight=weight,
                       style=style, va="center_baseline", parse_math=False)


def draw(page: Page) -> Canvas:
    """The page on a grid as wide as its longest line (up to MAX_CODE), at least MIN_WIDTH."""
    rows = [row for block in page.blocks for row in block.rows]
    gutter = max([len(number(line)) for row in rows for line in (row.old, row.new)] + [3])
    code_columns = max([len(row.text) for row in rows] + [0])
    columns = max(MIN_WIDTH, 2 * gutter + 4 + min(code_columns, MAX_CODE))
    lines = image_lines(page, columns)
    grid = Grid(columns, len(lines))
    for row, (draw_line, item) in enumerate(lines):
        draw_line(grid, row, item, columns, gutter)
    return grid.canvas


def image_lines(page: Page, columns: int) -> list[tuple]:
    """The page as (draw function, what it draws) per text row, top to bottom."""
    blank = (draw_plain, "")
    lines = [(draw_title, text) for text in textwrap.wrap(page.title, int(columns / TITLE_SCALE))]
    for paragraph in paragraphs(page.text):
        lines += [blank] + [(draw_plain, text) for text in textwrap.wrap(paragraph, columns)]
    widest = max([added + removed for _, added, removed in page.stats] + [1])
    lines += [blank] if page.stats else []
    lines += [(draw_stat, (*stat, widest)) for stat in page.stats]
    if len(page.stats) > 1:
        total = sum(stat[1] for stat in page.stats), sum(stat[2] for stat in page.stats)
        lines.append((draw_stat, (apply.plural(len(page.stats), "file"), *total, 0)))
    lines.append(blank)
    for block in page.blocks:
        lines += [(draw_fold, block.gap_before)] if block.gap_before else []
        lines.append((draw_caption, block))
        lines += [(draw_row, row) for row in block.rows]
    return lines


def draw_title(grid: Grid, row: int, text: str, columns: int, gutter: int) -> None:
    grid.text(row, 0, text, weight="bold", scale=TITLE_SCALE)


def draw_plain(grid: Grid, row: int, text: str, columns: int, gutter: int) -> None:
    grid.text(row, 0, text)


def draw_stat(grid: Grid, row: int, stat: tuple, columns: int, gutter: int) -> None:
    """path  +added −removed  and a bar as long as its share of the largest file's changes;
    the total row (widest 0) has no bar."""
    path, added, removed, widest = stat
    bar_columns = 16
    bar_at = columns - bar_columns
    counts_at = bar_at - len(f"+{added} −{removed}") - 2
    grid.text(row, 0, clip_text(path, counts_at - 2))
    grid.text(row, counts_at, f"+{added}", COLOURS["add ink"])
    grid.text(row, counts_at + len(f"+{added} "), f"−{removed}", COLOURS["del ink"])
    if widest:
        middle = bar_at + bar_columns * added / widest
        grid.bar(row, COLOURS["add"], bar_at, middle)
        grid.bar(row, COLOURS["del"], middle, middle + bar_columns * removed / widest)


def draw_fold(grid: Grid, row: int, count: int, columns: int, gutter: int) -> None:
    grid.box(row, COLOURS["fold"])
    grid.text(row, 2 * gutter + 4, fold_text(count), COLOURS["muted"], style="italic")


def draw_caption(grid: Grid, row: int, block: Block, columns: int, gutter: int) -> None:
    """file  scope ... +added −removed, the counts flush right."""
    grid.box(row, COLOURS["caption"])
    added, removed = f"+{block.hunk.added}", f"−{block.hunk.removed}"
    counts_at = columns - len(added) - len(removed) - 1
    grid.text(row, 0, clip_text(f"{block.path}  {block.where}", counts_at - 2), weight="bold")
    grid.text(row, counts_at, added, COLOURS["add ink"], weight="bold")
    grid.text(row, counts_at + len(added) + 1, removed, COLOURS["del ink"], weight="bold")


IMAGE_ROWS = {"+": ("add row", "add change", "add ink"), "-": ("del row", "del change", "del ink")}


def draw_row(grid: Grid, row: int, line: Row, columns: int, gutter: int) -> None:
    if line.kind == "…":
        draw_fold(grid, row, line.folded, columns, gutter)
        return
    code_at = 2 * gutter + 4
    background, change, ink = IMAGE_ROWS.get(line.kind, (None, None, "muted"))
    if background:
        grid.box(row, COLOURS[background])
    grid.text(row, 0, number(line.old).rjust(gutter), COLOURS["muted"])
    grid.text(row, gutter + 1, number(line.new).rjust(gutter), COLOURS["muted"])
    grid.text(row, 2 * gutter + 2, SIGNS[line.kind], COLOURS[ink], weight="bold")
    if line.kind == "\\":
        grid.text(row, code_at, NO_NEWLINE, COLOURS["muted"], style="italic")
        return
    column = code_at
    for segment in clip(line.segments, columns - code_at):
        if segment.changed:
            grid.box(row, COLOURS[change], column, column + len(segment.text))
        if segment.text.strip():
            colour, weight, style = token_style(segment.token)
            grid.text(row, column, segment.text, colour, weight, style)
        column += len(segment.text)


@functools.cache
def token_style(token) -> tuple[str, str, str]:
    """(colour, weight, style) of a token in the syntax style the HTML uses."""
    style = SYNTAX.style_for_token(token)
    colour = f"#{style['color']}" if style["color"] else COLOURS["ink"]
    return colour, "bold" if style["bold"] else "normal", "italic" if style["italic"] else "normal"


def clip(segments: tuple[Segment, ...], width: int) -> tuple[Segment, ...]:
    """The segments cut to width characters, the last of them an ellipsis when cut."""
    if sum(len(segment.text) for segment in segments) <= width:
        return segments
    kept, room = [], width - 1
    for segment in segments:
        if room <= 0:
            break
        kept.append(replace(segment, text=segment.text[:room]))
        room -= len(kept[-1].text)
    return (*kept, Segment("…", Text, False))


def clip_text(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


# ---------------------------------------------------------------------------- Markdown


def to_markdown(page: Page) -> str:
    """A fenced diff block, its fence longer than any run of backticks in the diff, then the
    caption in italics."""
    longest = max([len(run) for run in re.findall(r"`+", page.diff)] + [0])
    fence = "`" * max(3, longest + 1)
    caption = re.sub(r"([\\`*_\[\]<>])", r"\\\1", page.caption)
    return f"{fence}diff\n{page.diff}{fence}\n\n*{caption}*\n"


# ---------------------------------------------------------------------------- files


def render_patch(patch: apply.Patch, out_dir: Path, source_name: str,
                 base: dict[str, bytes] | None = None) -> list[Figure]:
    """Write patch.{html,svg,png,md} and hunk-<k>.{html,svg,png,md} into out_dir.

    base is the tree the patch applies to (the spine plus the patches before it); with it,
    captions name a method with its class. The figures' paths are out_dir/<name>.html.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for stem, page in pages(patch, Path(source_name).name, base):
        (out_dir / f"{stem}.html").write_text(to_html(page), encoding="utf-8", newline="\n")
        (out_dir / f"{stem}.md").write_text(to_markdown(page), encoding="utf-8", newline="\n")
        draw_image(page, out_dir / f"{stem}.svg", out_dir / f"{stem}.png")
        figures.append(Figure(out_dir / f"{stem}.html", page.caption, source=source_name))
    return figures


def draw_patches(root: Path, figures_dir: Path) -> list[Figure]:
    """Render every patch of root's series into figures_dir/patches/<patch stem>/.

    That folder is the renderer's own: it is emptied first, so patches that left the series and
    hunks that left a patch leave no figures behind. The series is applied before anything is
    removed, so a broken series leaves the old figures in place. Paths are relative to
    figures_dir.
    """
    project = apply.Project(root)
    entries = project.entries()
    variants = project.build() if entries else []
    bases = [project.spine()] + [variant.tree for variant in variants[:-1]]
    folder = figures_dir / "patches"
    if folder.exists():
        shutil.rmtree(folder)
    figures = []
    for entry, base in zip(entries, bases):
        source = project.show(project.patches_dir / entry)
        figures += render_patch(project.read_patch(entry), folder / Path(entry).stem, source, base)
    return [replace(figure, path=figure.path.relative_to(figures_dir)) for figure in figures]


def render_files(paths: list[Path], figures_dir: Path) -> list[Figure]:
    """Patch files from anywhere, each into figures_dir/patches/<its stem>/. Without the tree
    they apply to, captions name a method without its class."""
    return [
        figure for path in paths
        for figure in render_patch(apply.read_patch(path), figures_dir / "patches" / path.stem,
                                   str(path))
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.diffs",
        description="Render patches as figures (HTML, SVG, PNG, Markdown).",
    )
    parser.add_argument("patches", nargs="*", type=Path,
                        help="patch files to render (default: the series in patches/series)")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "analysis" / "figures",
                        help="the figures folder; patches go into its patches/ "
                             "(default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        figures = (render_files(args.patches, args.output) if args.patches
                   else draw_patches(ROOT, args.output))
    except apply.ApplyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for figure in figures:
        print(f"{figure.path}  {figure.caption}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
