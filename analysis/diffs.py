"""Patches as figures: every patch of the series, as an overview and hunk by hunk, in four formats.

Every figure is drawn from the same .patch file that apply.py reads (apply.read_patch), never from
a diff computed again, so a figure shows exactly what the series applies. For the series:

    figures/patches/<patch stem>/patch.{html,svg,png,md}       the overview: title, description,
                                                              diffstat, and a line per hunk figure
    figures/patches/<patch stem>/hunk-<k>.{html,svg,png,md}    hunk k, counted across files from 1
    figures/patches/<patch stem>/hunk-<k>-<j>.{...}            part j of hunk k, when it is long

A figure shows at most about MAX_ADDED added lines, so that a reader follows a patch one idea at
a time: a longer hunk is split at definition boundaries into parts. Each hunk (or part) is
captioned by what it changes, by apply.py's one rule (apply.Changes: "adds MoE; edits
FeedForward.__init__"), the rule `apply.py diff NAME --stat` prints too.

Drawing takes two steps. The layout turns a patch into pages: the overview, and per figure a
caption and rows with old and new line numbers, Python syntax tokens, the characters that changed
between a removed line and the added line that is an edit of it, and runs of unchanged lines
folded into "… N unchanged lines". Three renderers then write each page as an HTML snippet (its
own <style>, every class prefixed "pd-", no scripts, no external assets), as an image drawn with
matplotlib (SVG and PNG, byte-identical across runs; long lines wrap, marked "↪", never clipped),
and as Markdown (a fenced block and its caption) to paste into a post.

Drawing the series again renders only what changed. Each figure has a key (page_key): a hash of
exactly what its files are made from (its HTML and Markdown text, the image's grid and every row
drawn on it) and of the code that draws it (this file, analysis/style.py, the matplotlib and
Pygments versions). figures/patches/manifest.json records each figure's key and a hash of its
files; a figure whose key and files are unchanged is copied from the last drawing, not rendered.

    python -m analysis.diffs [--redraw-all]         the series, into analysis/figures/patches/
    python -m analysis.diffs PATCH ... [-o DIR]     given patch files, into DIR/patches/
"""

import argparse
import difflib
import functools
import hashlib
import html
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
from dataclasses import dataclass, replace
from itertools import accumulate, groupby
from pathlib import Path

import matplotlib
import matplotlib.style
import pygments
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
MAX_ADDED = 40  # added lines one figure shows at most: a longer hunk is split into parts...
MAX_WHOLE = 50  # ...but a single definition up to this long is shown whole rather than cut
# A removed line and an added one are an edit of each other (and get intra-line marks) when the
# added line keeps at least this share of the removed line's words, in order. A lower share means
# a different statement: marking "what changed" would mark nearly everything, or mislead.
SIMILAR = 0.6
MAX_COMPARED = 10_000  # removed x added lines beyond which a change is a rewrite: no pairs sought
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
# Control characters would draw as nothing (or break a line); show their Unicode pictures.
# Tabs are expanded instead, once the changes are found (see expand_tabs).
CONTROL_PICTURES = {code: 0x2400 + code for code in range(32) if code != 9} | {0x7F: 0x2421}
BLANK_DEPTH = 1_000  # a blank line is a place to split a hunk below every definition boundary


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
    """One hunk, or one part of a long hunk, as drawn."""

    path: str
    hunk: apply.Hunk  # a part is a hunk of its own lines, with the ranges they have in the files
    caption: str  # what it changes: "adds MoE; edits FeedForward.__init__"
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Entry:
    """A line of a patch's overview: one of its hunk figures."""

    stem: str  # "hunk-3", or "hunk-3-2" for part 2 of hunk 3
    block: Block

    @property
    def label(self) -> str:
        return self.stem.removeprefix("hunk-")


@dataclass(frozen=True)
class Page:
    """What one figure shows, whatever it is rendered as: a hunk (block), or the overview of a
    patch (contents)."""

    title: str
    text: str  # the rest of the Description
    stats: tuple[tuple[str, int, int], ...]  # (path, added, removed) per file; none for a hunk
    block: Block | None
    contents: tuple[Entry, ...]
    caption: str  # one line, for the figure index and under the Markdown
    markdown: str  # what the Markdown's fenced block holds: the hunk, or the overview


def pages(patch: apply.Patch, name: str, base: dict[str, bytes] | None) -> list[tuple[str, Page]]:
    """("patch", the overview), then (stem, the hunk or part) for every hunk figure."""
    title, _, text = patch.fields.get("Description", "").partition("\n")
    title = title or name
    figures = hunk_figures(patch, base)
    stats = tuple((file.path, file.added, file.removed) for file in patch.files)
    contents = tuple(Entry(stem, block) for stem, _, block in figures)
    overview = Page(title, text, stats, None, contents, f"{name}: {title} ({diffstat(patch)})",
                    "".join(line + "\n" for line in overview_lines(contents)))
    hunks = [
        (stem, Page(title, "", (), block, (), f"{name}, {which}: {block.caption} in {block.path} "
                    f"(+{block.hunk.added} −{block.hunk.removed})", hunk_text(block.hunk)))
        for stem, which, block in figures
    ]
    return [("patch", overview)] + hunks


def diffstat(patch: apply.Patch) -> str:
    return f"{apply.plural(len(patch.files), 'file')}, +{patch.added} −{patch.removed}"


def overview_lines(contents: tuple[Entry, ...]) -> list[str]:
    """The overview as text: each file, then a line per figure of its hunks."""
    width = max([len(entry.label) for entry in contents] + [0])
    lines = []
    for path, entries in groupby(contents, key=lambda entry: entry.block.path):
        lines.append(f"{path}:")
        for entry in entries:
            hunk = entry.block.hunk
            counts = f"+{hunk.added} −{hunk.removed}"
            lines.append(f"  {entry.label.ljust(width)}  {counts.ljust(9)}  {entry.block.caption}")
    return lines


def hunk_text(hunk: apply.Hunk) -> str:
    """The hunk as the patch file writes it (a part: with the ranges of its own lines)."""
    lines = [hunk.header + "\n"]
    for line in hunk.lines:
        eof = "" if line.text.endswith("\n") else "\n" + apply.NO_NEWLINE
        lines.append(line.kind + line.text + eof)
    return "".join(lines)


def hunk_figures(patch: apply.Patch, base: dict[str, bytes] | None) -> list[tuple[str, str, Block]]:
    """(stem, which, block) for every figure: each hunk, or each part of a long one. base, the
    tree the patch applies to, lets captions name a method with its class."""
    figures, number = [], 0
    for file in patch.files:
        old_lines = apply.old_file_lines(base, file)
        for hunk in file.hunks:
            number += 1
            scopes = apply.hunk_scopes(hunk, old_lines)
            parts = split_hunk(hunk, scopes)
            for index, part in enumerate(parts, start=1):
                piece = hunk if len(parts) == 1 else part_hunk(hunk, part)
                caption = apply.hunk_changes(hunk, scopes, part).caption
                block = Block(file.path, piece, caption, hunk_rows(piece))
                if len(parts) == 1:
                    figures.append((f"hunk-{number}", f"hunk {number}", block))
                else:
                    which = f"hunk {number}, part {index} of {len(parts)}"
                    figures.append((f"hunk-{number}-{index}", which, block))
    return figures


def split_hunk(hunk: apply.Hunk, scopes: list, limit: int = MAX_ADDED) -> list[range]:
    """The hunk's lines in parts of at most limit added lines each (one part when it is short).

    A part ends where a definition begins, at the shallowest nesting that helps: top-level
    definitions first, then the methods of a long class; a single definition of up to MAX_WHOLE
    added lines stays whole, and a longer one is cut at blank lines, and only then anywhere.
    Neighbouring pieces are put back together while they fit, and a part that would show no
    change joins its neighbour.
    """
    added = [line.kind == "+" for line in hunk.lines]
    points = split_points(hunk, scopes)

    def count(span: range) -> int:
        return sum(added[index] for index in span)

    def split(span: range) -> list[range]:
        if count(span) <= limit:
            return [span]
        inside = [(index, depth) for index, depth in points if span.start < index < span.stop]
        if count(span) <= MAX_WHOLE and all(depth == BLANK_DEPTH for _, depth in inside):
            return [span]
        if not inside:
            return cut_every(span, added, limit)
        depth = min(depth for _, depth in inside)
        cuts = sorted({index for index, at in inside if at == depth})
        parts, open_ = [], False  # open_: the last part may take more pieces
        for piece in map(range, [span.start, *cuts], [*cuts, span.stop]):
            if count(piece) > limit:
                parts += split(piece)
                open_ = False
            elif parts and open_ and count(parts[-1]) + count(piece) <= limit:
                parts[-1] = range(parts[-1].start, piece.stop)
            else:
                parts.append(piece)
                open_ = True
        return parts

    return join_unchanged(split(range(len(hunk.lines))), hunk)


def split_points(hunk: apply.Hunk, scopes: list) -> list[tuple[int, int]]:
    """(line index, depth) where a part may begin: each definition on the new side, with the
    decorators and comments right above it, at its nesting depth (0 = top level); and the first
    line after a blank one, at BLANK_DEPTH."""
    lines, points = hunk.lines, []
    for index, line in enumerate(lines):
        if line.kind == "-" or not line.text.strip():
            continue
        if apply.DEFINITION.match(line.text) and scopes[index]:
            start = index
            while start and lines[start - 1].kind != "-" and is_preamble(lines[start - 1].text):
                start -= 1
            points.append((start, len(scopes[index]) - 1))
        elif index and lines[index - 1].kind != "-" and not lines[index - 1].text.strip():
            points.append((index, BLANK_DEPTH))
    return points


def is_preamble(text: str) -> bool:
    """A decorator or a comment: it goes with the definition right below it."""
    return text.lstrip().startswith(("@", "#"))


def cut_every(span: range, added: list[bool], limit: int) -> list[range]:
    """span in parts of limit added lines, where nothing better is found."""
    parts, start, count = [], span.start, 0
    for index in span:
        if added[index] and count == limit:
            parts.append(range(start, index))
            start, count = index, 0
        count += added[index]
    return parts + [range(start, span.stop)]


def join_unchanged(parts: list[range], hunk: apply.Hunk) -> list[range]:
    """Parts of only context lines joined to the next part (the last one to the one before)."""
    joined: list[range] = []
    carried = None  # the start of unchanged lines waiting for a part
    for part in parts:
        start = part.start if carried is None else carried
        if all(hunk.lines[index].kind == " " for index in part):
            carried = start
            continue
        joined.append(range(start, part.stop))
        carried = None
    if carried is not None and joined:
        joined[-1] = range(joined[-1].start, len(hunk.lines))
    return joined or [range(len(hunk.lines))]


def part_hunk(hunk: apply.Hunk, part: range) -> apply.Hunk:
    """The lines of a part as a hunk of their own, with the ranges they have in the two files."""
    before, lines = hunk.lines[: part.start], hunk.lines[part.start : part.stop]
    old_index = hunk.start + sum(line.kind != "+" for line in before)
    new_first = hunk.new_start - 1 if hunk.new_count else hunk.new_start
    new_index = new_first + sum(line.kind != "-" for line in before)
    old_count = sum(line.kind != "+" for line in lines)
    new_count = sum(line.kind != "-" for line in lines)
    header = apply.hunk_ranges(old_index, old_count, new_index, new_count)
    return replace(
        hunk, header=header, old_start=old_index + 1 if old_count else old_index,
        old_count=old_count, new_start=new_index + 1 if new_count else new_index,
        new_count=new_count, section="", lines=lines,
    )


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
    for removed, added in edit_pairs(texts, kinds):
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


def edit_pairs(texts: list[str], kinds: list[str]) -> list[tuple[int, int]]:
    """(removed, added) line indices to mark what changed in: each run of removed lines and the
    run of added lines right after it, paired by best_pairing."""
    found, index = [], 0
    while index < len(kinds):
        removed = run_of(kinds, index, "-")
        added = run_of(kinds, removed.stop, "+")
        pairing = best_pairing([texts[i] for i in removed], [texts[j] for j in added])
        found += [(removed[i], added[j]) for i, j in pairing]
        index = max(added.stop, index + 1)
    return found


def run_of(kinds: list[str], start: int, kind: str) -> range:
    end = start
    while end < len(kinds) and kinds[end] == kind:
        end += 1
    return range(start, end)


def best_pairing(old: list[str], new: list[str]) -> list[tuple[int, int]]:
    """The pairs (i, j) of old[i] and new[j] that are edits of each other (kept >= SIMILAR), in
    order on both sides, that keep the most in total: old c_proj = ... pairs with new c_proj = ...
    though a new c_fc = ... line comes first. A line left unpaired was removed or added outright."""
    if not old or not new or len(old) * len(new) > MAX_COMPARED:
        return []
    score = [[kept(line, other) for other in new] for line in old]
    # best[i][j]: the most that old[i:] and new[j:] can keep
    best = [[0.0] * (len(new) + 1) for _ in range(len(old) + 1)]
    for i in reversed(range(len(old))):
        for j in reversed(range(len(new))):
            paired = score[i][j] + best[i + 1][j + 1] if score[i][j] >= SIMILAR else 0.0
            best[i][j] = max(best[i + 1][j], best[i][j + 1], paired)
    found, i, j = [], 0, 0
    while i < len(old) and j < len(new):
        if score[i][j] >= SIMILAR and best[i][j] == score[i][j] + best[i + 1][j + 1]:
            found.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return found


def kept(old: str, new: str) -> float:
    """The share of old's words (and operators) that new keeps, in order: 1 for a line that only
    grew, 0 for one that has nothing in common with new."""
    old_words, new_words = ([word for word in WORD.findall(text) if not word.isspace()]
                            for text in (old, new))
    if not old_words:
        return 0.0
    matcher = difflib.SequenceMatcher(None, old_words, new_words, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(old_words)


def changed_spans(old: str, new: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The character spans of old and of new that differ, compared word by word: a renamed
    variable is marked whole, not as a scatter of the letters that happen to differ."""
    old_words, new_words = WORD.findall(old), WORD.findall(new)
    matcher = difflib.SequenceMatcher(None, old_words, new_words, autojunk=False)
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
.pd .pd-diff .pd-code {{ white-space: pre-wrap; overflow-wrap: anywhere; }}
.pd .pd-contents {{ width: 100%; }}
.pd .pd-contents td {{ padding: 0 .5em; vertical-align: top; }}
.pd .pd-contents .pd-label, .pd .pd-contents .pd-count {{ white-space: pre; }}
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
    if page.block:
        rows = [caption_html(page.block)] + [row_html(row) for row in page.block.rows]
        body = '\n<table class="pd-diff">\n' + "\n".join(rows) + "\n</table>"
    else:
        body = contents_html(page.contents) if page.contents else ""
    return f'<div class="pd">\n{style_html(page)}\n{header_html(page)}{body}\n</div>\n'


def style_html(page: Page) -> str:
    """Our rules and the rules of the token classes the page uses: a snippet stays small."""
    rows = page.block.rows if page.block else ()
    used = sorted({token_class(segment.token) for row in rows for segment in row.segments}
                  & TOKEN_CSS.keys())
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
        f'<tr class="pd-caption"><td colspan="4">{escape(block.path)}  {escape(block.caption)}  '
        f'<span class="pd-range">{escape(block.hunk.ranges)}</span>  '
        f'<span class="pd-plus">+{block.hunk.added}</span> '
        f'<span class="pd-minus">−{block.hunk.removed}</span></td></tr>'
    )


def contents_html(contents: tuple[Entry, ...]) -> str:
    """The overview's table: each file, then a row per hunk figure (label, counts, ranges, what
    it changes)."""
    rows = []
    for path, entries in groupby(contents, key=lambda entry: entry.block.path):
        rows.append(f'<tr class="pd-caption"><td colspan="4">{escape(path)}</td></tr>')
        for entry in entries:
            hunk = entry.block.hunk
            rows.append(
                f'<tr class="pd-entry"><td class="pd-label">{escape(entry.label)}</td>'
                f'<td class="pd-count"><span class="pd-plus">+{hunk.added}</span> '
                f'<span class="pd-minus">−{hunk.removed}</span></td>'
                f'<td class="pd-range">{escape(hunk.ranges)}</td><td>{escape(entry.block.caption)}</td></tr>'
            )
    return '\n<table class="pd-contents">\n' + "\n".join(rows) + "\n</table>"


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
# In characters: the least width of a figure, and where code wraps. Eighty columns of code keep a
# figure about 620 pt wide: shown in a 700 px blog column, its text stays over 12 px high, which
# keeps underscores and operators visible.
MIN_WIDTH, MAX_CODE = 64, 80
CONTINUED = "↪ "  # drawn before the rest of a line that wraps
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
    """The page on a grid as wide as its longest line (wrapped at MAX_CODE), at least MIN_WIDTH."""
    columns, gutter, lines = image_layout(page)
    grid = Grid(columns, len(lines))
    for row, (draw_line, item) in enumerate(lines):
        draw_line(grid, row, item, columns, gutter)
    return grid.canvas


def image_layout(page: Page) -> tuple[int, int, list[tuple]]:
    """(columns, gutter width, the text rows): all that the image is drawn from."""
    rows = page.block.rows if page.block else ()
    gutter = max([len(number(line)) for row in rows for line in (row.old, row.new)] + [3])
    longest = [len(row.text) for row in rows] + [len(line) for line in overview_lines(page.contents)]
    columns = max(MIN_WIDTH, 2 * gutter + 4 + min(max(longest + [0]), MAX_CODE))
    return columns, gutter, image_lines(page, columns, gutter)


def image_lines(page: Page, columns: int, gutter: int) -> list[tuple]:
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
    if page.block:
        hunk = page.block.hunk
        lines += caption_lines(f"{page.block.path}  {page.block.caption}", hunk.added, hunk.removed,
                               columns)
        for row in page.block.rows:
            lines += row_lines(row, columns - (2 * gutter + 4))
    for path, entries in groupby(page.contents, key=lambda entry: entry.block.path):
        lines += caption_lines(path, None, None, columns)
        lines += entry_lines(list(entries), page.contents, columns)
    return lines


def caption_lines(text: str, added: int | None, removed: int | None, columns: int) -> list[tuple]:
    """A caption bar, wrapped, with the counts (if any) flush right on its first row."""
    counts = "" if added is None else f"+{added} −{removed}"
    first = textwrap.wrap(text, columns - len(counts) - 2, break_on_hyphens=False) or [""]
    rest = textwrap.wrap(text[len(first[0]) :].strip(), columns - 2, break_on_hyphens=False)
    return [(draw_caption, (first[0], added, removed))] + [
        (draw_caption, ("  " + line, None, None)) for line in rest
    ]


def row_lines(row: Row, width: int) -> list[tuple]:
    """A row of code, and the continuations of its text if it is wider than width."""
    if row.kind not in ("+", "-", " "):
        return [(draw_row, row)]
    pieces = wrap(row.segments, width)
    first = (draw_row, replace(row, segments=pieces[0][1]))
    return [first] + [(draw_continued, (row.kind, column, piece)) for column, piece in pieces[1:]]


def wrap(segments: tuple[Segment, ...], width: int) -> list[tuple[int, tuple[Segment, ...]]]:
    """A line's segments in pieces that fit width columns, as (column, segments): the first at
    0, each other after the line's indentation and CONTINUED. A piece ends after a space when
    there is one in its second half, else at the edge."""
    text = "".join(segment.text for segment in segments)
    if len(text) <= width:
        return [(0, segments)]
    hang = min(len(text) - len(text.lstrip(" ")), width // 2) + len(CONTINUED)
    bounds, room = [0], width
    while len(text) - bounds[-1] > room:
        start = bounds[-1]
        space = text.rfind(" ", start + room // 2, start + room)
        bounds.append(space + 1 if space >= 0 else start + room)
        room = width - hang
    bounds.append(len(text))
    return [(hang if index else 0, cut(segments, first, last))
            for index, (first, last) in enumerate(zip(bounds, bounds[1:]))]


def cut(segments: tuple[Segment, ...], first: int, last: int) -> tuple[Segment, ...]:
    """The segments' characters first..last, each piece keeping its token and mark."""
    pieces, at = [], 0
    for segment in segments:
        end = at + len(segment.text)
        start, stop = max(first, at), min(last, end)
        if start < stop:
            pieces.append(replace(segment, text=segment.text[start - at : stop - at]))
        at = end
    return tuple(pieces)


def entry_lines(entries: list[Entry], contents: tuple[Entry, ...], columns: int) -> list[tuple]:
    """The overview's rows for one file's figures: label, counts, and what it changes, wrapped."""
    label_width = max(len(entry.label) for entry in contents)
    caption_at = 2 + label_width + 2 + len("+999 −999") + 2
    lines = []
    for entry in entries:
        hunk = entry.block.hunk
        texts = textwrap.wrap(entry.block.caption, columns - caption_at, break_on_hyphens=False)
        lines.append((draw_entry, (entry.label, hunk.added, hunk.removed, texts[0], caption_at)))
        lines += [(draw_entry, ("", None, None, text, caption_at)) for text in texts[1:]]
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


def draw_caption(grid: Grid, row: int, caption: tuple, columns: int, gutter: int) -> None:
    """A row of a caption bar: its text, and on the first row the counts, flush right."""
    text, added, removed = caption
    grid.box(row, COLOURS["caption"])
    grid.text(row, 0, text, weight="bold")
    if added is not None:
        counts_at = columns - len(f"+{added} −{removed}")
        grid.text(row, counts_at, f"+{added}", COLOURS["add ink"], weight="bold")
        grid.text(row, counts_at + len(f"+{added} "), f"−{removed}", COLOURS["del ink"], weight="bold")


def draw_entry(grid: Grid, row: int, entry: tuple, columns: int, gutter: int) -> None:
    label, added, removed, text, caption_at = entry
    if added is not None:
        grid.text(row, 2, label, weight="bold")
        counts_at = caption_at - 2 - len(f"+{added} −{removed}")
        grid.text(row, counts_at, f"+{added}", COLOURS["add ink"])
        grid.text(row, counts_at + len(f"+{added} "), f"−{removed}", COLOURS["del ink"])
    grid.text(row, caption_at, text)


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
    draw_segments(grid, row, code_at, line.segments, change)


def draw_continued(grid: Grid, row: int, piece: tuple, columns: int, gutter: int) -> None:
    """The rest of a wrapped line: no line numbers, and CONTINUED before it."""
    kind, column, segments = piece
    background, change, _ = IMAGE_ROWS.get(kind, (None, None, None))
    if background:
        grid.box(row, COLOURS[background])
    code_at = 2 * gutter + 4 + column
    grid.text(row, code_at - len(CONTINUED), CONTINUED.strip(), COLOURS["muted"])
    draw_segments(grid, row, code_at, segments, change)


def draw_segments(grid: Grid, row: int, column: int, segments: tuple[Segment, ...],
                  change: str | None) -> None:
    """Code from column on: each token in its colour, what changed on a lighter box."""
    for segment in segments:
        if segment.changed and change:
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


def clip_text(text: str, width: int) -> str:
    """A file name cut to width, ending in "…" when cut (code is never cut: it wraps)."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


# ---------------------------------------------------------------------------- Markdown


def to_markdown(page: Page) -> str:
    """A fenced block (the hunk as a diff, or the overview as text), its fence longer than any
    run of backticks in it, then the caption in italics."""
    caption = re.sub(r"([\\`*_\[\]<>])", r"\\\1", page.caption)
    if not page.markdown:
        return f"*{caption}*\n"
    longest = max([len(run) for run in re.findall(r"`+", page.markdown)] + [0])
    fence = "`" * max(3, longest + 1)
    language = "diff" if page.block else "text"
    return f"{fence}{language}\n{page.markdown}{fence}\n\n*{caption}*\n"


# ---------------------------------------------------------------------------- files


FORMATS = ("html", "md", "svg", "png")  # the files of a figure, <stem>.<format>
MANIFEST = "manifest.json"  # in figures/patches/: each figure's key and a hash of its files


def render_page(page: Page, out_dir: Path, stem: str) -> None:
    """Write <stem>.{html,md,svg,png} of the page into out_dir."""
    (out_dir / f"{stem}.html").write_text(to_html(page), encoding="utf-8", newline="\n")
    (out_dir / f"{stem}.md").write_text(to_markdown(page), encoding="utf-8", newline="\n")
    draw_image(page, out_dir / f"{stem}.svg", out_dir / f"{stem}.png")


def render_patch(patch: apply.Patch, out_dir: Path, source_name: str,
                 base: dict[str, bytes] | None = None) -> list[Figure]:
    """Write patch.{html,svg,png,md} (the overview) and a hunk-<k>[-<j>].{html,svg,png,md} per
    hunk figure into out_dir.

    base is the tree the patch applies to (the spine plus the patches before it); with it,
    captions name a method with its class. The figures' paths are out_dir/<stem>.html.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for stem, page in pages(patch, Path(source_name).name, base):
        render_page(page, out_dir, stem)
        figures.append(Figure(out_dir / f"{stem}.html", page.caption, source=source_name))
    return figures


@functools.cache
def code_version() -> str:
    """A hash of what draws a page besides the page itself: this file, analysis/style.py, and the
    versions of matplotlib and Pygments. Part of every figure's key, so that a change to how
    patches are drawn draws them all again."""
    digest = hashlib.sha256()
    for path in (Path(__file__), Path(__file__).with_name("style.py")):
        digest.update(path.read_bytes() + b"\0")
    digest.update(f"matplotlib {matplotlib.__version__}, pygments {pygments.__version__}".encode())
    return digest.hexdigest()


def page_key(page: Page) -> str:
    """A hash of exactly what a page's files are made from: its HTML and Markdown text, the
    image's grid and every row drawn on it, and code_version(). The same key, the same bytes; and
    nothing else in the page (where its lines sit in the .patch file, say) changes the key."""
    columns, gutter, lines = image_layout(page)
    image = repr((columns, gutter, [(draw_line.__name__, item) for draw_line, item in lines]))
    digest = hashlib.sha256(code_version().encode())
    for text in (to_html(page), to_markdown(page), image):
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()


def files_hash(folder: Path, name: str) -> str | None:
    """A hash of the files of figure name (<patch stem>/<stem>) in folder; None if one is missing."""
    digest = hashlib.sha256()
    for kind in FORMATS:
        try:
            digest.update((folder / f"{name}.{kind}").read_bytes() + b"\0")
        except OSError:
            return None
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict[str, dict[str, str]]:
    """folder/manifest.json's figures, {name: {"key", "files"}}; {} if there is none (or it is
    unreadable: then every figure is drawn)."""
    try:
        figures = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["figures"]
        return {name: {"key": str(item["key"]), "files": str(item["files"])}
                for name, item in figures.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


@dataclass
class Drawing:
    """What draw_series did: the figures (paths relative to the figures folder), and the names
    (<patch stem>/<stem>) of those it rendered and of those it kept from the last drawing."""

    figures: list[Figure]
    drawn: list[str]
    kept: list[str]


def draw_patches(root: Path, figures_dir: Path, last: Path | None = None,
                 redraw_all: bool = False) -> list[Figure]:
    """draw_series's figures."""
    return draw_series(root, figures_dir, last, redraw_all).figures


def draw_series(root: Path, figures_dir: Path, last: Path | None = None,
                redraw_all: bool = False) -> Drawing:
    """Render every patch of root's series into figures_dir/patches/<patch stem>/, with
    figures_dir/patches/manifest.json.

    That folder is the renderer's own: it is emptied first, so patches that left the series and
    hunks that left a patch leave no figures behind. The series is applied before anything is
    removed, so a broken series leaves the old figures in place. Paths are relative to
    figures_dir.

    last is the figures folder of the last drawing (default: figures_dir itself): a figure whose
    key (page_key) is the one its manifest records, and whose files there are the ones it
    records, is copied from there instead of rendered; redraw_all renders every figure.
    """
    project = apply.Project(root)
    entries = project.entries()
    variants = project.build() if entries else []
    bases = [project.spine()] + [variant.tree for variant in variants[:-1]]
    folder = figures_dir / "patches"
    aside = None
    if last is None or Path(last).resolve() == Path(figures_dir).resolve():
        # drawn in place: the last drawing is moved aside first, and removed at the end
        last_folder = None
        if folder.exists():
            aside = Path(tempfile.mkdtemp(dir=figures_dir, prefix=".patches-last-"))
            last_folder = aside / "patches"
            os.replace(folder, last_folder)
    else:
        last_folder = Path(last) / "patches"
    try:
        recorded = {} if redraw_all or last_folder is None else read_manifest(last_folder)
        kept_by_key = {item["key"]: (name, item["files"]) for name, item in reversed(recorded.items())}
        drawing, manifest = Drawing([], [], []), {}
        for entry, base in zip(entries, bases):
            source = project.show(project.patches_dir / entry)
            out_dir = folder / Path(entry).stem
            out_dir.mkdir(parents=True, exist_ok=True)
            for stem, page in pages(project.read_patch(entry), Path(source).name, base):
                name = f"{Path(entry).stem}/{stem}"
                key = page_key(page)
                was, files = kept_by_key.get(key, (None, None))
                if was is not None and files_hash(last_folder, was) == files:
                    for kind in FORMATS:
                        shutil.copyfile(last_folder / f"{was}.{kind}", out_dir / f"{stem}.{kind}")
                    drawing.kept.append(name)
                else:
                    render_page(page, out_dir, stem)
                    files = files_hash(folder, name)
                    drawing.drawn.append(name)
                manifest[name] = {"key": key, "files": files}
                drawing.figures.append(Figure(Path("patches") / f"{name}.html", page.caption,
                                              source=source))
        if manifest:
            text = json.dumps({"about": "written by the patch figures' redraw (analysis/diffs.py): "
                                        "each figure's key and a hash of its files",
                               "figures": manifest}, indent=1)
            (folder / MANIFEST).write_text(text + "\n", encoding="utf-8", newline="\n")
    except BaseException:
        if aside is not None:  # drawn in place: the last drawing goes back
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(last_folder, folder)
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside)
    return drawing


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
    parser.add_argument("--redraw-all", action="store_true",
                        help="render every figure of the series, even those unchanged since the "
                             "last drawing")
    args = parser.parse_args(argv)
    try:
        figures = (render_files(args.patches, args.output) if args.patches
                   else draw_patches(ROOT, args.output, redraw_all=args.redraw_all))
    except apply.ApplyError as error:
        print(f"error: {apply.printable(str(error))}", file=sys.stderr)
        return 1
    for figure in figures:
        print(f"{figure.path}  {figure.caption}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
