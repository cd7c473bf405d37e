#!/usr/bin/env python3
"""A strict, quilt-like patch series over one pinned file.

The spine, upstream/makemore.py, is pinned by upstream/makemore.py.sha256. Each experiment is a
patch in patches/, applied in the order of patches/series, and variant k (variants/NAME/) is the
spine plus patches 1..k. Unlike GNU patch and quilt, a hunk applies only at the line it names,
with every context and removed line matching byte for byte: no fuzz, no offsets, no whitespace
forgiveness; and, as git applies it, a hunk made at the top or the end of a file applies only
there (a patch without context, `diff -U0`, is taken at the lines it names, as `git apply
--unidiff-zero` takes it). A patch that no longer fits fails loudly, and then nothing is written.

    python apply.py [apply] [--force]     write the variants (never over hand edits unless forced);
                                          remove the unedited ones that no patch makes any more
    python apply.py check                 does the series apply? writes nothing; fast, for hooks
    python apply.py refresh NAME          turn the edited variants/NAME back into its patch
    python apply.py rebase [NAME]         after the spine moved lines: move drifted hunks along
    python apply.py new NAME [--after X]  start a patch (and its variant); fill in its header
    python apply.py status                one row per patch: applies? generated? edited? (exit 1
                                          while a patch does not apply)
    python apply.py diff NAME             the patch's hunks, as its file holds them
    python apply.py diff NAME --stat      its diffstat, and what each hunk adds, edits, removes
    python apply.py diff NAME --from-spine   variant NAME against the spine, as one diff
    python apply.py pin                   accept the spine as it is now

A patch is a DEP-3-style header, then a unified diff: `refresh` writes it in canonical form
(--- a/PATH, +++ b/PATH, 3 lines of context, LF line endings), and the reader also takes what
`git diff`, `diff -u` and quilt write, hunks read by their counts as git reads them.
"""

import argparse
import datetime
import difflib
import hashlib
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path


SPINE = "makemore.py"
PIN_FILE = "makemore.py.sha256"
STAMP = ".stamp.json"
CONTEXT = 3  # lines of context around each change, as diff -U3
NO_NEWLINE = "\\ No newline at end of file\n"

# Digits are spelt [0-9]: \\d (and int()) would take any Unicode digit, which git does not.
PATCH_FILE = re.compile(r"([0-9]+)-([a-z0-9][a-z0-9-]*)\.patch")
VARIANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
PIN_LINE = re.compile(r"([0-9a-f]{64})  makemore\.py\n?")
HUNK_HEADER = re.compile(r"@@ -([0-9]+)(?:,([0-9]+))? \+([0-9]+)(?:,([0-9]+))? @@")
DEFINITION = re.compile(r"\s*(?:async\s+)?(?:def|class)\s+(\w+)")
# Where a string or a comment starts in a line of code: a triple quote (which may end lines
# later), a string that ends on the line, or "#".
STRING_OR_COMMENT = re.compile(r"""'{3}|"{3}|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|#""")
TOP_LEVEL = "top-level code"  # what a caption calls a change outside every def and class
HEADER_FIELD = re.compile(r"([A-Za-z][A-Za-z0-9-]*):(.*)")
# Plain names need no quoting in any diff tool, so git and we read the same path.
SAFE_PATH = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
# What starts a file diff, and so ends the header: git's first line, quilt's, or the old name.
FILE_START = ("diff --git ", "Index: ", "--- ")
# The lines of a git diff header (between 'diff --git' and '---') that we take, and those we refuse.
GIT_HEADER_LINE = re.compile(r"index [0-9a-f]+\.\.[0-9a-f]+( [0-7]+)?|new file mode 100644")
GIT_REFUSED = (
    ("deleted file mode", "deleting files is not supported"),
    ("new file mode", "file modes other than 100644 are not supported"),
    ("old mode", "mode changes are not supported"),
    ("new mode", "mode changes are not supported"),
    ("similarity index", "renames and copies are not supported"),
    ("dissimilarity index", "rewrites are not supported"),
    ("rename ", "renames and copies are not supported"),
    ("copy ", "renames and copies are not supported"),
    ("Binary files ", "binary diffs are not supported"),
    ("GIT binary patch", "binary diffs are not supported"),
)
HUNK_LINE_KINDS = (" ", "-", "+", "\\")  # context, removed, added, "\ No newline at end of file"


class ApplyError(Exception):
    """A failure the user has to act on; the message says what, where, and what to do."""


# ---------------------------------------------------------------------------- text and trees


def split_lines(text: str) -> list[str]:
    """The lines of text with their terminators, split on "\\n" only.

    str.splitlines() would also split on \\r, \\f, \\x1c, \\u2028 and more, breaking any line that
    holds one. Here a CRLF line simply keeps its "\\r" as part of its content.
    """
    lines = text.split("\n")
    last = lines.pop()  # what follows the final "\n": empty unless the text lacks one
    return [line + "\n" for line in lines] + ([last] if last else [])


def printable(text: str) -> str:
    """text with every character that a terminal would act on or hide (ESC, CR, FF, NUL, U+2028,
    ...) escaped as Python writes it ("\\x1b"): a message shows what a patch holds, on one line."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ApplyError(f"{where}: not UTF-8 text ({error})") from None


def is_ignored(name: str, is_dir: bool) -> bool:
    """Is this file or folder name outside the tree? The one rule, for the spine and the variants.

    People run a variant inside its folder, and it writes its work dir out/ (or out-something/),
    checkpoints (*.pt), metrics (*.jsonl) and Python caches there; the tool keeps its stamp in a
    hidden file. None of that belongs to the variant, so none of it counts as an edit.
    """
    if name.startswith(".") or name == "__pycache__":
        return True
    if is_dir:
        return name.startswith("out")
    return name.endswith((".pyc", ".pt", ".jsonl"))


def read_tree(directory: Path) -> dict[str, bytes]:
    """Every file of the tree under directory, keyed by its '/'-separated relative path."""
    tree = {}
    for folder, subfolders, files in os.walk(directory):
        subfolders[:] = [name for name in subfolders if not is_ignored(name, is_dir=True)]
        for name in files:
            if not is_ignored(name, is_dir=False):
                path = Path(folder, name)
                tree[path.relative_to(directory).as_posix()] = path.read_bytes()
    return tree


def check_path(path: str, where: str) -> None:
    """A patched path must be plain, relative, and a name that variants don't ignore."""
    *folders, name = path.split("/")
    if (
        not SAFE_PATH.fullmatch(path)
        or any(is_ignored(folder, is_dir=True) for folder in folders)
        or is_ignored(name, is_dir=False)
    ):
        raise ApplyError(
            f"{where}: path {path!r} is not allowed: use letters, digits, '_', '-', '.' and '/', "
            "and no name that variants ignore (hidden, out*/, __pycache__, *.pyc, *.pt, *.jsonl)"
        )


def write_atomic(path: Path, data: bytes) -> None:
    """Write a hidden temp file beside path, then rename it over path: whoever reads the file
    (a training run, an editor) sees the old one or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temp, mode)  # mkstemp makes it private; keep the mode the file had
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------- reading patches


@dataclass(frozen=True)
class HunkLine:
    kind: str  # " " context, "-" removed, "+" added
    text: str  # the file's line with its own terminator: "\n", "\r\n", or none at the end
    patch_line: int  # where it sits in the .patch file


@dataclass(frozen=True)
class Hunk:
    number: int  # 1-based, within its file
    header: str  # the "@@ -a,b +c,d @@ section" line as written
    patch_line: int
    old_start: int
    old_count: int
    new_start: int
    new_count: int
    section: str  # the enclosing def/class written after the ranges, or ""
    lines: tuple[HunkLine, ...]
    # The patch's own context width: the most context any of its hunks has before or after its
    # changes (3 for a canonical patch, 0 for `diff -U0`). A hunk with less than that was cut
    # short by an edge of the file.
    width: int = CONTEXT

    @property
    def start(self) -> int:
        """Where its old text starts in the file, 0-based. An empty old range names the line
        *after which* the hunk goes: git and GNU agree."""
        return self.old_start - 1 if self.old_count else self.old_start

    @property
    def leading_context(self) -> int:
        """The context lines before its first change: fewer than the patch's width when the
        change began near the top of the file."""
        return _context_run(self.lines)

    @property
    def trailing_context(self) -> int:
        """The context lines after its last change: fewer than the patch's width when the
        change ran near the end of the file (a canonical hunk has CONTEXT of them otherwise)."""
        return _context_run(reversed(self.lines))

    @property
    def ranges(self) -> str:
        """The header without its section: "@@ -40,7 +40,9 @@"."""
        return HUNK_HEADER.match(self.header)[0]

    @property
    def old_side(self) -> list[HunkLine]:
        return [line for line in self.lines if line.kind != "+"]

    @property
    def new_side(self) -> list[HunkLine]:
        return [line for line in self.lines if line.kind != "-"]

    @property
    def added(self) -> int:
        return sum(line.kind == "+" for line in self.lines)

    @property
    def removed(self) -> int:
        return sum(line.kind == "-" for line in self.lines)


def _context_run(lines) -> int:
    count = 0
    for line in lines:
        if line.kind != " ":
            break
        count += 1
    return count


@dataclass(frozen=True)
class FileDiff:
    path: str  # relative to the spine tree
    is_new: bool
    hunks: tuple[Hunk, ...]

    @property
    def added(self) -> int:
        return sum(hunk.added for hunk in self.hunks)

    @property
    def removed(self) -> int:
        return sum(hunk.removed for hunk in self.hunks)


@dataclass(frozen=True)
class Patch:
    source: str  # where it was read from, for messages: "patches/01-moe.patch"
    data: bytes  # the file exactly as read
    header: str  # everything before the diff, verbatim
    files: tuple[FileDiff, ...]

    @property
    def fields(self) -> dict[str, str]:
        return parse_header(self.header)

    @property
    def added(self) -> int:
        return sum(file.added for file in self.files)

    @property
    def removed(self) -> int:
        return sum(file.removed for file in self.files)


def parse_header(header: str) -> dict[str, str]:
    """The DEP-3-style fields of a patch header, e.g. {"Description": "title\\nmore", "Part": ...}.

    A line that starts with a space continues the field above it (that one space removed; " ."
    stands for an empty line, as in DEP-3). Lines that are neither are free text, left out.
    """
    fields: dict[str, str] = {}
    key = None
    for line in split_lines(header):
        line = line.rstrip("\r\n")
        field = HEADER_FIELD.fullmatch(line)
        if line.startswith(" ") and key:
            more = line[1:]
            fields[key] += "\n" + ("" if more == "." else more)
        elif field:
            key = field[1]
            fields[key] = field[2].strip()
        else:
            key = None
    return fields


def read_patch(path: Path, source: str | None = None) -> Patch:
    return parse_patch(path.read_bytes(), source or str(path))


def parse_patch(data: bytes, source: str = "<patch>") -> Patch:
    """Read a patch strictly: a header, then file diffs whose hunks are read by their counts."""
    lines = split_lines(decode(data, source))
    start = _header_length(lines, source)
    if lines[start:] and not lines[-1].endswith("\n"):
        raise ApplyError(f"{printable(source)}: the last line has no newline (truncated?): {lines[-1]!r}")
    files = _DiffReader(lines, start, source).file_diffs()
    # A hunk's context is cut short only by an edge of the file, so the most any hunk has is the
    # width the patch was written with: 3 for ours, 0 for `diff -U0`.
    width = max((max(hunk.leading_context, hunk.trailing_context)
                 for file in files for hunk in file.hunks if hunk.added or hunk.removed),
                default=CONTEXT)
    files = tuple(replace(file, hunks=tuple(replace(hunk, width=width) for hunk in file.hunks))
                  for file in files)
    paths = [file.path for file in files]
    twice = sorted({path for path in paths if paths.count(path) > 1})
    if twice:
        raise ApplyError(f"{printable(source)}: {', '.join(twice)} is patched twice; merge its diffs")
    return Patch(source, data, "".join(lines[:start]), files)


def _header_length(lines: list[str], source: str) -> int:
    """How many lines the header has: it ends where the first file diff starts."""
    for index, line in enumerate(lines):
        if line.startswith(FILE_START):
            return index
        if line.startswith(("+++ ", "@@ ")):
            raise ApplyError(
                f"{printable(source)}: header line {index + 1} starts with {line.split(' ')[0]!r}, "
                f"which diff tools read as part of a diff: reword it ({line.rstrip()!r})"
            )
    return len(lines)


class _DiffReader:
    """Reads the diff part of a patch as git does: each file diff starts with its '--- ' and '+++ '
    lines (after git's 'diff --git' header or quilt's 'Index:' line, if any), and each hunk takes
    exactly the lines its @@ header counts, so a removed '-- x' is never mistaken for a file's
    '--- ' line."""

    def __init__(self, lines: list[str], start: int, source: str):
        self.lines, self.at, self.source = lines, start, printable(source)

    def line(self, ahead: int = 0) -> str:
        """The line at the reading position (or ahead of it); "" past the end."""
        index = self.at + ahead
        return self.lines[index] if index < len(self.lines) else ""

    def fail(self, why: str, line: int | None = None) -> ApplyError:
        return ApplyError(f"{self.source}: patch line {(self.at if line is None else line) + 1}: {why}")

    def structure(self, ahead: int = 0) -> str:
        """A line of the diff's own structure, without its newline; it must not end in CRLF."""
        line = self.line(ahead)
        if line.endswith("\r\n"):
            raise self.fail(
                f"{line!r} ends in CRLF: the patch has CRLF line endings (an editor or git's "
                "core.autocrlf converted it?); convert it back to LF", self.at + ahead,
            )
        return line.removesuffix("\n")

    def file_diffs(self) -> tuple[FileDiff, ...]:
        files = []
        while self.at < len(self.lines):
            files.append(self.file_diff())
        return tuple(files)

    def file_diff(self) -> FileDiff:
        named = self.preamble()
        path, is_new = self.names()
        if named is not None and named != f"a/{path} b/{path}":
            raise ApplyError(
                f"{self.source}: {'diff --git ' + named!r} names another file than its diff ({path})"
            )
        where = f"{self.source}: {path}"
        hunks: list[Hunk] = []
        while self.line().startswith("@@ "):
            hunks.append(self.hunk(len(hunks) + 1, where))
        if not hunks:
            raise self.fail(f"{path} has no hunks: a file diff goes on with an '@@ ' line")
        if self.at < len(self.lines) and not self.line().startswith(FILE_START):
            raise self.stray(hunks[-1], where)
        return FileDiff(path, is_new, tuple(hunks))

    def preamble(self) -> str | None:
        """Skip quilt's 'Index:' and '====' lines, or read git's 'diff --git a/P b/P' line and its
        extended header; return what the 'diff --git' line names (None without one)."""
        if self.line().startswith("Index: "):
            self.structure()
            self.at += 1
            if re.fullmatch(r"=+\n", self.line()):
                self.at += 1
            return None
        if not self.line().startswith("diff --git "):
            return None
        named = self.structure().removeprefix("diff --git ")
        self.at += 1
        while not self.line().startswith("--- "):
            if not self.line() or self.line().startswith("diff --git "):
                raise self.fail(
                    f"{'diff --git ' + named!r} has no '--- ' and '+++ ' lines: an empty new file, "
                    "or a change of mode only, which are not supported"
                )
            text = self.structure()
            if not GIT_HEADER_LINE.fullmatch(text):
                why = next((why for start, why in GIT_REFUSED if text.startswith(start)), None)
                raise self.fail(f"{why or 'not a line of a git diff header'} ({text!r})")
            self.at += 1
        return named

    def names(self) -> tuple[str, bool]:
        """The path of a file diff from its '--- ' and '+++ ' lines, and whether it is a new file."""
        old, new = self.structure(), self.structure(1)
        if not new.startswith("+++ "):
            raise self.fail(
                f"{old!r} starts a file diff, but no '+++ ' line follows it "
                "(if it belongs to the header, reword it)"
            )
        self.at += 2
        # git and GNU diff may write a tab and a timestamp after a name
        old, new = old[4:].split("\t")[0], new[4:].split("\t")[0]
        where = f"{self.source}: {printable(new.removeprefix('b/'))}"
        if new == "/dev/null":
            raise ApplyError(f"{where}: deleting files is not supported")
        if not new.startswith("b/"):
            raise ApplyError(f"{where}: the new name must start with 'b/'")
        path, is_new = new[2:], old == "/dev/null"
        if not is_new and old != f"a/{path}":
            raise ApplyError(f"{where}: renames are not supported ({printable(old)} -> {printable(new)})")
        check_path(path, self.source)
        return path, is_new

    def hunk(self, number: int, where: str) -> Hunk:
        """One hunk: its @@ header, then exactly as many old and new lines as the header counts."""
        header_at, header = self.at, self.structure()
        ranges = HUNK_HEADER.match(header)
        if not ranges:
            raise self.fail(f"{header!r} is not a hunk header '@@ -START,COUNT +START,COUNT @@'")
        old_start, new_start = int(ranges[1]), int(ranges[3])
        old_count, new_count = _count(ranges[2]), _count(ranges[4])
        if (old_start == 0 and old_count) or (new_start == 0 and new_count):
            raise self.fail(f"{header!r}: a range that starts at line 0 must be empty (',0')")
        self.at += 1
        lines: list[HunkLine] = []
        old_left, new_left = old_count, new_count
        while old_left or new_left or self.line().startswith("\\"):
            kind = self.line()[:1]
            if kind == "\\":
                self._end_without_newline(lines, f"{where}: hunk {number}")
            elif {" ": old_left and new_left, "-": old_left, "+": new_left}.get(kind):
                lines.append(HunkLine(kind, self.line()[1:], self.at + 1))
                old_left -= kind != "+"
                new_left -= kind != "-"
            else:
                raise self.count_error(number, header, header_at, where)
            self.at += 1
        if not lines:
            raise self.count_error(number, header, header_at, where)
        hunk = Hunk(number, header, header_at + 1, old_start, old_count, new_start, new_count,
                    header[ranges.end():].removeprefix(" "), tuple(lines))
        for side in (hunk.old_side, hunk.new_side):
            if any(not line.text.endswith("\n") for line in side[:-1]):
                raise ApplyError(f"{where}: hunk {number}: {NO_NEWLINE!r} before the end of the hunk")
        return hunk

    def _end_without_newline(self, lines: list[HunkLine], where: str) -> None:
        """The marker says the line before it has no newline in the file."""
        if self.line() != NO_NEWLINE or not lines or not lines[-1].text.endswith("\n"):
            raise ApplyError(f"{where}: a misplaced or misspelt {NO_NEWLINE!r}")
        lines[-1] = replace(lines[-1], text=lines[-1].text[:-1])

    def count_error(self, number: int, header: str, header_at: int, where: str) -> ApplyError:
        """A hunk whose body does not hold the lines its header counts. The body is taken to be
        the lines after the header that look like hunk lines, to say how many it has."""
        body = _hunk_body(self.lines, header_at + 1)
        kinds = [line[0] for line in body]
        found = (sum(kind in " -" for kind in kinds), sum(kind in " +" for kind in kinds))
        ranges = HUNK_HEADER.match(header)
        blank = " (an empty line: a context line starts with a space)" if self.line() == "\n" else ""
        return ApplyError(
            f"{where}: hunk {number} {header!r} at patch line {header_at + 1}: its header counts "
            f"{_count(ranges[2])} old and {_count(ranges[4])} new lines, but its body has "
            f"{found[0]} and {found[1]}{blank}"
        )

    def stray(self, last: Hunk, where: str) -> ApplyError:
        """What to say about a line after a file's last hunk that starts no file diff."""
        line = self.line()
        if line == "\n":
            return ApplyError(f"{where}: a stray blank line after hunk {last.number}")
        if line[:1] in HUNK_LINE_KINDS:
            return self.count_error(last.number, last.header, last.patch_line - 1, where)
        return self.fail(f"{line!r} does not parse: it is no part of any hunk (a stray line?)")


def _hunk_body(lines: list[str], start: int) -> list[str]:
    """The lines from start on that read as hunk lines, up to the next hunk or file diff."""
    end = start
    while end < len(lines) and lines[end][:1] in HUNK_LINE_KINDS:
        if lines[end].startswith("--- ") and "".join(lines[end + 1 : end + 2]).startswith("+++ "):
            break  # the next file's names, most likely
        end += 1
    return lines[start:end]


def _count(group: str | None) -> int:
    return 1 if group is None else int(group)  # "-5" means "-5,1"


# ---------------------------------------------------------------------------- strict application


def apply_series(spine: dict[str, bytes], patches: list[Patch]) -> list[dict[str, bytes]]:
    """The variant trees 1..k: each patch applied strictly to the tree before it."""
    trees, tree = [], spine
    for patch in patches:
        tree = apply_patch(tree, patch)
        trees.append(tree)
    return trees


def apply_patch(tree: dict[str, bytes], patch: Patch) -> dict[str, bytes]:
    """The tree after the patch; ApplyError names the first hunk that does not fit exactly."""
    result = dict(tree)
    for file in patch.files:
        where = f"{printable(patch.source)}: {file.path}"
        old = _old_lines(tree, file, where)
        result[file.path] = "".join(apply_hunks(old, file.hunks, where)).encode()
    return result


def rebase_patch(tree: dict[str, bytes], patch: Patch) -> tuple[dict[str, bytes], list[str]]:
    """apply_patch, but with drifted hunks moved to where their old text stands now
    (rebase_hunks); also returns a line for each hunk that moved."""
    result, moves = dict(tree), []
    for file in patch.files:
        where = f"{printable(patch.source)}: {file.path}"
        lines, file_moves = rebase_hunks(_old_lines(tree, file, where), file.hunks, where)
        result[file.path] = "".join(lines).encode()
        moves += file_moves
    return result, moves


def _old_lines(tree: dict[str, bytes], file: FileDiff, where: str) -> list[str]:
    """The lines the file diff starts from: none for a new file."""
    if file.is_new and file.path in tree:
        raise ApplyError(f"{where}: the patch creates this file, but the tree already has it")
    if not file.is_new and file.path not in tree:
        raise ApplyError(f"{where}: the patch changes this file, but the tree has no such file")
    return [] if file.is_new else split_lines(decode(tree[file.path], where))


def apply_hunks(old: list[str], hunks: tuple[Hunk, ...], where: str) -> list[str]:
    new: list[str] = []
    done = 0  # old lines used up so far
    for hunk in hunks:
        start = hunk.start
        if start < done:
            raise ApplyError(f"{where}: hunk {hunk.number} {hunk.header!r} overlaps the one before")
        _check_fits(old, start, hunk, where)
        new += old[done:start]
        new_start = len(new) + 1 if hunk.new_count else len(new)
        if hunk.new_start != new_start:
            raise ApplyError(
                f"{where}: hunk {hunk.number} {hunk.header!r} (patch line {hunk.patch_line}): "
                f"its new text starts at line {new_start}, not {hunk.new_start}"
            )
        new += [line.text for line in hunk.new_side]
        done = start + hunk.old_count
    return new + old[done:]


def _check_fits(old: list[str], start: int, hunk: Hunk, where: str) -> None:
    """Every context and removed line must be the file's line at exactly the place named, and a
    hunk at an edge of the file must be at that edge."""
    what = f"{where}: hunk {hunk.number} {hunk.header!r}"
    if start > len(old):
        raise ApplyError(
            f"{what} (patch line {hunk.patch_line}) starts after line {start}, but the file has "
            f"{len(old)} lines"
        )
    for offset, expected in enumerate(hunk.old_side):
        at = start + offset
        found = old[at] if at < len(old) else None
        if found != expected.text:
            found_text = "the end of the file" if found is None else repr(found)
            raise ApplyError(
                f"{what} does not apply at file line {at + 1} (patch line {expected.patch_line}): "
                f"expected {expected.text!r}, found {found_text}{_line_endings(expected.text, found)}"
                f"; {_found_elsewhere(old, start, hunk)}"
            )
    edge = _edge_problem(old, start, hunk)
    if edge:
        rebase = "; `python apply.py rebase` re-anchors it where it stands" if hunk.old_side else ""
        raise ApplyError(f"{what} (patch line {hunk.patch_line}): {edge}{rebase}")
    ends_unterminated = hunk.new_side and not hunk.new_side[-1].text.endswith("\n")
    if ends_unterminated and start + hunk.old_count < len(old):
        raise ApplyError(
            f"{what}: its new text ends without a newline, but the file goes on after line "
            f"{start + hunk.old_count}"
        )


def _line_endings(expected: str, found: str | None) -> str:
    """A note for a line that differs only in how it ends: "\\r\\n" against "\\n"."""
    if found is None or expected.rstrip("\r\n") != found.rstrip("\r\n"):
        return ""
    patch, file = ("CRLF", "LF") if expected.endswith("\r\n") else ("LF", "CRLF")
    return f" (CRLF line endings: the patch has {patch} there, the file {file})"


def _edge_problem(old: list[str], start: int, hunk: Hunk) -> str | None:
    """Why the hunk may not go at start, by git's rules for hunks at the edges of a file; None
    if it may. A hunk that names line 1 (or 0) with less context before its change than the patch
    has elsewhere (its width) was made at the top of the file, and one without context after its
    change ran to the end of it: git applies them only there. A patch written without context
    (`diff -U0`, width 0) says nothing about the edges, so its hunks go at the line they name, as
    `git apply --unidiff-zero` takes them: there "@@ -0,0 +1 @@" inserts before line 1, and
    "@@ -1,0 +2 @@" after it."""
    if hunk.old_start <= 1 and hunk.leading_context < hunk.width and start != 0:
        return (f"it names line {hunk.old_start}, and has less context before its change than the "
                f"patch's {hunk.width} lines, so (as git applies it) it must start at the top of the file")
    if hunk.trailing_context == 0 < hunk.width and start + hunk.old_count != len(old):
        if not hunk.old_side:
            return (f"it was made for an empty file (@@ -0,0), so the file must be empty, but it "
                    f"has {plural(len(old), 'line')}")
        return (f"it has no context after its change (the patch has {hunk.width} lines elsewhere), "
                f"so (as git applies it) it must end at the end of the file, but the file goes on "
                f"after line {start + hunk.old_count}")
    return None


def _places(old: list[str], hunk: Hunk) -> list[int]:
    """Where the hunk's old text stands in the file (nowhere for a hunk without old text)."""
    wanted = [line.text for line in hunk.old_side]
    if not wanted:
        return []
    return [i for i in range(len(old) - len(wanted) + 1) if old[i : i + len(wanted)] == wanted]


def _found_elsewhere(old: list[str], start: int, hunk: Hunk) -> str:
    """Drift or conflict: does the hunk's old text sit somewhere else in the file?"""
    places = _places(old, hunk)
    if not places:
        return (
            "its old text is found nowhere in the file: a conflict; edit the hunk in the .patch "
            "to match the file, or redo the change in a fresh variant"
        )
    nearest = min(places, key=lambda place: abs(place - start))
    found = f"its old text is found at line {nearest + 1} ({nearest - start:+d})"
    return f"{found}: the file drifted; `python apply.py rebase` moves the hunk there"


def rebase_hunks(old: list[str], hunks: tuple[Hunk, ...], where: str) -> tuple[list[str], list[str]]:
    """The file after its hunks, each placed where its old text stands now, and what moved.

    The one leeway the tool ever takes, and only when asked (`rebase`): a hunk that no longer fits
    at the line it names goes to the single place where its old text stands exactly, also when it
    was made at an edge of the file that has moved away from it since (lines added above a hunk at
    the top, or below one at the end); the patch rewritten from the result anchors it where it
    stands now. A drift, never a fuzz: text found nowhere, or at several places, is refused, and
    so is a hunk without old text (nothing to find it by) that does not fit where it names.
    """
    new: list[str] = []
    done, moves = 0, []
    for hunk in hunks:
        start = hunk.start
        if start < done or not _fits_at(old, start, hunk):
            start = _the_one_place(old, done, hunk, where)
            shift = start - hunk.start
            if shift:
                moved = f"moved {shift:+d} line{'s' * (abs(shift) != 1)}"
            else:
                moved = f"stays at line {start + 1}, re-anchored now that the edge of the file moved away"
            moves.append(f"{where}: hunk {hunk.number} {hunk.ranges}: {moved}")
        new += old[done:start] + [line.text for line in hunk.new_side]
        done = start + hunk.old_count
    if new and not new[-1].endswith("\n") and done < len(old):
        raise ApplyError(f"{where}: the last hunk ends the file, but the file goes on after it")
    return new + old[done:], moves


def _fits_at(old: list[str], start: int, hunk: Hunk) -> bool:
    wanted = [line.text for line in hunk.old_side]
    return (start <= len(old) and old[start : start + len(wanted)] == wanted
            and _edge_problem(old, start, hunk) is None)


def _the_one_place(old: list[str], done: int, hunk: Hunk, where: str) -> int:
    what = f"{where}: hunk {hunk.number} {hunk.header!r}"
    if not hunk.old_side:
        why = _edge_problem(old, hunk.start, hunk) if hunk.start <= len(old) else None
        why = why or f"it goes after line {hunk.start}, but the hunk above it or the file's end is in the way"
        raise ApplyError(f"{what}: {why}; it has no old text to find it by elsewhere: edit the hunk in the .patch")
    places = _places(old, hunk)
    if not places:
        raise ApplyError(f"{what}: {_found_elsewhere(old, hunk.start, hunk)}")
    if len(places) > 1:
        lines = ", ".join(str(place + 1) for place in places)
        raise ApplyError(f"{what}: its old text stands at {len(places)} places (lines {lines}); "
                         "edit the hunk in the .patch to the right line")
    if places[0] < done:
        raise ApplyError(f"{what}: its old text now stands before the hunk above it")
    return places[0]


# ---------------------------------------------------------------------------- canonical diffs


def diff_trees(old: dict[str, bytes], new: dict[str, bytes]) -> str:
    """The canonical diff from tree old to tree new: changed files in sorted path order."""
    gone = sorted(set(old) - set(new))
    if gone:
        raise ApplyError(f"{', '.join(gone)} was removed, but deleting files is not supported")
    return "".join(diff_file(path, old.get(path), new[path]) for path in sorted(new))


def diff_file(path: str, old: bytes | None, new: bytes, context: int = CONTEXT) -> str:
    """One file's canonical diff ("" if unchanged); old is None for a new file. With another
    context than CONTEXT lines, what diff -U<context> writes (tests use it).

    Not difflib.unified_diff: it never writes "\\ No newline at end of file", so a file whose
    last line has no newline would come out wrong.
    """
    if old == new:
        return ""
    check_path(path, "diff")
    before = [] if old is None else split_lines(decode(old, path))
    after = split_lines(decode(new, path))
    if old is None and not after:
        raise ApplyError(f"{path}: an empty new file cannot be written as a plain unified diff")
    text = [f"--- {'/dev/null' if old is None else 'a/' + path}\n", f"+++ b/{path}\n"]
    # autojunk would take frequent lines (blank ones, say) in files over 200 lines for junk,
    # and give needlessly large hunks.
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):  # groups merge when contexts touch
        text += _canonical_hunk(before, after, group)
    return "".join(text)


def _canonical_hunk(before: list[str], after: list[str], group: list[tuple]) -> list[str]:
    _, old_start, _, new_start, _ = group[0]
    _, _, old_end, _, new_end = group[-1]
    ranges = hunk_ranges(old_start, old_end - old_start, new_start, new_end - new_start)
    lines = [f"{ranges}{_enclosing_definition(before, old_start)}\n"]
    for tag, i1, i2, j1, j2 in group:
        if tag == "equal":
            lines += [" " + line for line in before[i1:i2]]
        else:
            lines += ["-" + line for line in before[i1:i2]] + ["+" + line for line in after[j1:j2]]
    return [line if line.endswith("\n") else line + "\n" + NO_NEWLINE for line in lines]


def hunk_ranges(old_index: int, old_count: int, new_index: int, new_count: int) -> str:
    """ "@@ -41,7 +41,9 @@" for count lines from 0-based line index in the old and new file."""
    return f"@@ -{_range(old_index, old_count)} +{_range(new_index, new_count)} @@"


def _range(start: int, count: int) -> str:
    """git's and GNU's convention: the first line, 1-based, and the count left out when it is 1;
    an empty range names the line after which it sits (so an empty file is "0,0")."""
    first = start + 1 if count else start
    return str(first) if count == 1 else f"{first},{count}"


def _enclosing_definition(before: list[str], index: int) -> str:
    """" def name(...):" for the nearest def or class above line index, or "" if none: git's
    rule for the @@ line (a caption says what the hunk changes: see Changes)."""
    for line in reversed(before[:index]):
        if DEFINITION.match(line):
            return " " + line.rstrip()
    return ""


# ---------------------------------------------------------------------------- what a hunk changes

Scope = tuple[str, ...]  # the definitions a line lies in, outermost first: ("Block", "forward")


@dataclass(frozen=True)
class Changes:
    """What a hunk (or some of its lines) changes, by qualified name ("MoE", "Block.forward"):
    the definitions it adds or removes whole, and those whose lines it edits."""

    added: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def caption(self) -> str:
        """The one caption rule, for `apply.py diff --stat` and the patch figures alike:
        "adds MoE, moe_layers; edits FeedForward.__init__". (A refreshed patch's @@ lines keep
        git's rule, the nearest def or class above the hunk, which git apply ignores.)"""
        parts = [f"{verb} {', '.join(names)}" for verb, names in
                 (("adds", self.added), ("edits", self.edited), ("removes", self.removed)) if names]
        return "; ".join(parts) or "changes blank lines only"


def hunk_scopes(hunk: Hunk, old_lines: list[str] | None = None) -> list[Scope | None]:
    """The scope of each line of the hunk, each side read as the text it is (the old one, the
    new one); None for a blank line, which belongs to no definition in particular.

    What is open above the hunk comes from old_lines, the whole file the hunk applies to, or
    without it from the def or class in the hunk's @@ line (which then lacks its class).
    """
    above = old_lines[: hunk.start] if old_lines is not None else [hunk.section]
    reading = _scopes(above, _Reading())[1]
    scopes: list[Scope | None] = [None] * len(hunk.lines)
    for kind in ("-", "+"):  # context lines end with the new side's reading
        side = [index for index, line in enumerate(hunk.lines) if line.kind in (" ", kind)]
        for index, scope in zip(side, _scopes([hunk.lines[i].text for i in side], reading)[0]):
            scopes[index] = scope
    return scopes


@dataclass(frozen=True)
class _Reading:
    """Where _scopes stands after some lines of code."""

    stack: tuple[tuple[int, str], ...] = ()  # the definitions open, as (indent, name)
    depth: int = 0  # brackets open
    quote: str | None = None  # the triple quote of a string still open
    joined: bool = False  # the last line ended with a backslash


def _scopes(lines: list[str], reading: _Reading) -> tuple[list[Scope | None], _Reading]:
    """The scope of each line, read on from reading, and where the reading stands after them.

    Definitions are told by indentation: a line that starts a statement closes every definition
    indented as much as it or more, and a def or class line opens one and lies in it. A
    decorator lies in the definition below it; a line that goes on with a statement (in
    brackets, after a backslash, or in a string of several lines) lies where the statement does.
    """
    stack, depth, quote, joined = list(reading.stack), reading.depth, reading.quote, reading.joined
    scopes: list[Scope | None] = []
    decorators: list[int] = []
    for text in lines:
        goes_on = depth > 0 or quote is not None or joined
        code, quote = _code(text, quote)
        if not text.strip():
            scopes.append(None)
            continue
        if not goes_on:
            indent = len(text) - len(text.lstrip())
            while stack and stack[-1][0] >= indent:
                stack.pop()
            definition = DEFINITION.match(text)
            if definition:
                stack.append((indent, definition[1]))
        scope = tuple(name for _, name in stack)
        if not goes_on and code.lstrip().startswith("@"):
            decorators.append(len(scopes))
        else:
            for index in decorators:
                scopes[index] = scope
            decorators = []
        scopes.append(scope)
        depth = max(depth + sum(map(code.count, "([{")) - sum(map(code.count, ")]}")), 0)
        joined = code.rstrip().endswith("\\")
    return scopes, _Reading(tuple(stack), depth, quote, joined)


def _code(text: str, quote: str | None) -> tuple[str, str | None]:
    """The code of a line without its strings and comment, and the triple quote of a string
    still open after it; quote is the one open before the line (None if none)."""
    code = []
    while text:
        if quote:
            end = text.find(quote)
            if end < 0:
                break
            text, quote = text[end + 3 :], None
            continue
        found = STRING_OR_COMMENT.search(text)
        if not found:
            code.append(text)
            break
        code.append(text[: found.start()])
        if found[0] == "#":
            break
        if found[0] in ("'''", '"""'):
            quote = found[0]
        text = text[found.end() :]
    return "".join(code), quote


def hunk_changes(hunk: Hunk, scopes: list[Scope | None], part: range | None = None) -> Changes:
    """What the lines of the hunk (or those in part) change, from their scopes (hunk_scopes).

    A def or class line that only one side has adds (or removes) that definition, and every
    line inside it belongs to the addition; one on both sides (a new signature) is an edit. Any
    other changed line edits the definition it lies in; outside every definition, lines that are
    all added "add top-level code" (all removed: "remove"), else they edit it. A part of a split
    hunk whose lines continue an addition begun above it "adds NAME (continued)", unless the part
    begins definitions of its own: then those name it (a comment between methods is no news).
    """
    part = range(len(hunk.lines)) if part is None else part
    defined = {kind: {} for kind in "+-"}  # kind -> the scope of each definition line -> index
    for index, line in enumerate(hunk.lines):
        if line.kind != " " and scopes[index] and DEFINITION.match(line.text):
            defined[line.kind].setdefault(scopes[index], index)
    whole = {
        "+": {scope: at for scope, at in defined["+"].items() if scope not in defined["-"]},
        "-": {scope: at for scope, at in defined["-"].items() if scope not in defined["+"]},
    }
    found: dict[str, list[str]] = {"+": [], " ": [], "-": []}  # added, edited, removed
    continued: dict[str, list[str]] = {"+": [], "-": []}  # additions (removals) begun above the part
    top_level = set()  # the kinds of the changed lines outside every definition
    for index in part:
        line, scope = hunk.lines[index], scopes[index]
        if line.kind == " " or scope is None:
            continue
        owners = [scope[:n] for n in range(1, len(scope) + 1) if scope[:n] in whole[line.kind]]
        begun_here = [owner for owner in owners if whole[line.kind][owner] in part]
        if not scope:
            top_level.add(line.kind)
            continue
        if not owners:
            name, names = ".".join(scope), found[" "]
        elif begun_here:
            name, names = ".".join(begun_here[0]), found[line.kind]
        else:
            name, names = ".".join(owners[-1]) + " (continued)", continued[line.kind]
        if name not in names:
            names.append(name)
    for kind, names in continued.items():
        found[kind] += names if not found[kind] else []
    if top_level:  # all added, all removed, or both: an edit
        found[top_level.pop() if len(top_level) == 1 else " "].append(TOP_LEVEL)
    return Changes(tuple(found["+"]), tuple(found[" "]), tuple(found["-"]))


def hunk_caption(hunk: Hunk, old_lines: list[str] | None = None) -> str:
    return hunk_changes(hunk, hunk_scopes(hunk, old_lines)).caption


def old_file_lines(base: dict[str, bytes] | None, file: FileDiff) -> list[str] | None:
    """The lines of the file that a file diff changes, in base, the tree its patch applies to:
    none for a new file, None when base is not known (or lacks the file)."""
    if file.is_new:
        return []
    if base is None or file.path not in base:
        return None
    return split_lines(decode(base[file.path], file.path))


# ---------------------------------------------------------------------------- variants and stamps


def inputs_digest(spine: dict[str, bytes], patches: list[Patch]) -> str:
    """One hash of everything a variant is made from: the spine tree and patches 1..k, in order.

    Patch file names and headers are left out: renumbering the series or rewording a
    Description makes no variant stale (and leaves it refreshable).
    """
    digest = hashlib.sha256()
    for path, data in sorted(spine.items()):
        digest.update(f"spine {path} {sha256(data)}\n".encode())
    for patch in patches:
        digest.update(f"patch {sha256(patch.data[len(patch.header.encode()):])}\n".encode())
    return digest.hexdigest()


def make_stamp(spine: dict[str, bytes], patches: list[Patch], tree: dict[str, bytes]) -> dict:
    """What variants/NAME/.stamp.json records: what the variant was made from, and what it made."""
    return {
        "inputs": inputs_digest(spine, patches),
        "spine": {path: sha256(data) for path, data in sorted(spine.items())},
        "patches": {Path(patch.source).name: sha256(patch.data) for patch in patches},  # in order
        "files": {path: sha256(data) for path, data in sorted(tree.items())},
    }


def read_stamp(directory: Path) -> dict | None:
    """A variant's stamp, or None if it has none (never generated)."""
    path = directory / STAMP
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_bytes())
    except ValueError as error:
        raise ApplyError(f"{path}: unreadable stamp ({error}); delete it and run apply") from None


def write_stamp(directory: Path, stamp: dict) -> None:
    write_atomic(directory / STAMP, json.dumps(stamp, indent=2).encode() + b"\n")


@dataclass(frozen=True)
class VariantState:
    generated: bool  # it has a stamp
    current: bool  # ... made from today's spine and patches
    edited: tuple[str, ...]  # paths changed, removed or added since it was generated


def variant_state(directory: Path, digest: str | None) -> VariantState:
    """Compare a variant folder with its stamp, and the stamp with today's inputs digest."""
    stamp = read_stamp(directory)
    if stamp is None:
        return VariantState(False, False, ())
    tree, listed = read_tree(directory), stamp["files"]
    changed = [path for path in listed if path not in tree or sha256(tree[path]) != listed[path]]
    added = [path for path in tree if path not in listed]
    return VariantState(True, stamp["inputs"] == digest, tuple(sorted(changed + added)))


def write_variant(directory: Path, tree: dict[str, bytes], stamp: dict, discard: bool) -> list[str]:
    """Write a variant's files and remove those it no longer has. The stamp goes first and comes
    back last: a crash midway leaves a folder without one, which the next apply rewrites.

    Removes only files the old stamp listed (or, when discarding an edit, files added by hand);
    never anything the ignore rule leaves out, such as out/. Returns the removed paths.
    """
    previous = read_stamp(directory) or {"files": {}}
    (directory / STAMP).unlink(missing_ok=True)
    for path, data in sorted(tree.items()):
        write_atomic(directory / path, data)
    leftovers = set(previous["files"]) | (set(read_tree(directory)) if discard else set())
    removed = sorted(leftovers - set(tree))
    for path in removed:
        _remove_file(directory, path)
    write_stamp(directory, stamp)
    return removed


def _remove_file(directory: Path, path: str) -> None:
    target = directory / path
    target.unlink(missing_ok=True)
    for folder in target.parents:  # and the folders it leaves empty
        if folder == directory or any(folder.iterdir()):
            break
        folder.rmdir()


# What `new` writes into each header field, for the user to replace; `refresh` refuses them.
PLACEHOLDERS = {
    "Description": "<a one-line title>",
    "Part": "<the post it belongs to>",
    "Flags": "<each flag it adds, with its default; at the defaults it behaves exactly like the"
    " variant before>",
    "Metrics": "<the keys it adds to metrics.jsonl>",
}


def header_template(name: str, today: datetime.date) -> str:
    return (
        f"Description: {name}: {PLACEHOLDERS['Description']}\n"
        " <What the patch changes and why; each continuation line starts with one space.>\n"
        f"Part: {PLACEHOLDERS['Part']}\n"
        f"Flags: {PLACEHOLDERS['Flags']}\n"
        f"Metrics: {PLACEHOLDERS['Metrics']}\n"
        f"Last-Update: {today.isoformat()}\n"
        "\n"
    )


def unfilled_fields(header: str) -> list[str]:
    """The header fields that still hold the placeholder `new` wrote."""
    fields = parse_header(header)
    return [key for key, placeholder in PLACEHOLDERS.items() if placeholder in fields.get(key, "")]


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "es" if noun.endswith("ch") else "s")


def variant_name(file_name: str) -> str:
    """The variant a patch file makes: "01-moe.patch" -> "moe"."""
    return PATCH_FILE.fullmatch(file_name)[2]


def _series_entry(line: str) -> str:
    return line.split("#", 1)[0].strip()


@dataclass(frozen=True)
class Variant:
    name: str
    directory: Path
    tree: dict[str, bytes]
    stamp: dict


class Project:
    """A project root: upstream/ (the spine and its pin), patches/ (the series), variants/.

    The commands are methods that return what to print, so tests and other code (a runner that
    needs a variant, a figure that renders a patch) can use them on any folder.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.spine_file = self.root / "upstream" / SPINE
        self.pin_file = self.root / "upstream" / PIN_FILE
        self.patches_dir = self.root / "patches"
        self.series_file = self.patches_dir / "series"
        self.variants_dir = self.root / "variants"

    def show(self, path: Path) -> str:
        """A path as messages print it: relative to the project root, and printable."""
        return printable(path.relative_to(self.root).as_posix())

    # -- the spine and its pin

    def spine(self) -> dict[str, bytes]:
        """The spine tree: every file in upstream/ but the pin."""
        tree = read_tree(self.spine_file.parent)
        tree.pop(PIN_FILE, None)
        return tree

    def verify_pin(self) -> None:
        """Every command but `pin` starts here: patches only mean something against the pin."""
        pin, remedy = self.show(self.pin_file), "run `python apply.py pin`"
        if not self.spine_file.is_file():
            raise ApplyError(f"{self.show(self.spine_file)} is missing")
        if not self.pin_file.is_file():
            raise ApplyError(f"{pin} is missing: {remedy} to pin the spine")
        line = PIN_LINE.fullmatch(self.pin_file.read_bytes().decode("utf-8", "replace"))
        if not line:
            raise ApplyError(f"{pin}: not one line '<sha256>  {SPINE}': {remedy} to rewrite it")
        expected, found = line[1], sha256(self.spine_file.read_bytes())
        if found != expected:
            raise ApplyError(
                f"{pin}: upstream/{SPINE} does not match its pin (pinned {expected[:12]}, found "
                f"{found[:12]}); if the edit was deliberate, {remedy}"
            )

    def pin(self) -> str:
        digest = sha256(self.spine_file.read_bytes())
        write_atomic(self.pin_file, f"{digest}  {SPINE}\n".encode())
        return digest

    # -- the series

    def entries(self) -> list[str]:
        """The patch file names listed in patches/series, in order."""
        series = self.show(self.series_file)
        if not self.series_file.is_file():
            raise ApplyError(f"{series} is missing (an empty file is a valid, empty series)")
        entries: list[str] = []
        text = decode(self.series_file.read_bytes(), series)
        for number, line in enumerate(split_lines(text), start=1):
            entry = _series_entry(line)
            if entry and not PATCH_FILE.fullmatch(entry):
                raise ApplyError(
                    f"{series}: line {number}: {entry!r} is not NN-name.patch (name: a-z, 0-9, '-')"
                )
            if entry and variant_name(entry) in map(variant_name, entries):
                raise ApplyError(f"{series}: line {number}: a second patch {variant_name(entry)!r}")
            entries += [entry] if entry else []
        return entries

    def orphans(self, entries: list[str]) -> list[str]:
        """Patch files in patches/ that the series does not list."""
        files = [path.name for path in self.patches_dir.glob("*.patch")]
        return sorted(file for file in files if file not in entries)

    def position(self, entries: list[str], name: str) -> int:
        """Where patch NAME is in the series (0-based)."""
        names = [variant_name(entry) for entry in entries]
        if name not in names:
            raise ApplyError(
                f"no patch named {name!r} in {self.show(self.series_file)} "
                f"(it has: {', '.join(names) or 'none'})"
            )
        return names.index(name)

    def read_patch(self, entry: str) -> Patch:
        path = self.patches_dir / entry
        if not path.is_file():
            raise ApplyError(f"patches/series lists {entry}, but {self.show(path)} does not exist")
        return read_patch(path, self.show(path))

    def variant_dir(self, name: str) -> Path:
        return self.variants_dir / name

    def build(self, upto: str | None = None) -> list[Variant]:
        """Every variant (or those up to NAME) in memory: verify the pin, read, apply strictly."""
        self.verify_pin()
        entries = self.entries()
        if upto is not None:
            entries = entries[: self.position(entries, upto) + 1]
        patches = [self.read_patch(entry) for entry in entries]
        spine = self.spine()
        trees = apply_series(spine, patches)
        return [
            Variant(name, self.variant_dir(name), tree, make_stamp(spine, patches[: k + 1], tree))
            for k, (name, tree) in enumerate(zip(map(variant_name, entries), trees))
        ]

    # -- apply and check

    def apply(self, force: bool = False, only: str | None = None) -> list[str]:
        """Write every variant (or only NAME) that isn't up to date. All or nothing: nothing is
        written if any patch fails, or if a variant was edited by hand and force is False."""
        variants = self.build(upto=only)[-1:] if only else self.build()
        states = [variant_state(variant.directory, variant.stamp["inputs"]) for variant in variants]
        # An edit that the patches now hold (the user saved it as a patch with `git diff`, say)
        # loses nothing when the variant is written.
        edited = [self._edited(v, state) for v, state in zip(variants, states)
                  if state.edited and read_tree(v.directory) != v.tree]
        if edited and not force:
            raise ApplyError("\n".join(edited))
        report = []
        for variant, state in zip(variants, states):
            shown = self.show(variant.directory)
            if state.current and not state.edited:
                report.append(f"{shown}: up to date")
                continue
            removed = write_variant(variant.directory, variant.tree, variant.stamp, discard=force)
            removals = f" (removed {', '.join(removed)})" if removed else ""
            report.append(f"{shown}: written{removals}")
        return report + ([] if only else self._remove_stray_variants())

    def stray_variants(self) -> list[Path]:
        """The folders in variants/ that no patch of the series makes: left behind by a patch
        taken out of patches/series (or renamed)."""
        names = {variant_name(entry) for entry in self.entries()}
        folders = self.variants_dir.iterdir() if self.variants_dir.is_dir() else []
        return sorted(folder for folder in folders
                      if folder.is_dir() and not folder.name.startswith(".") and folder.name not in names)

    def _remove_stray_variants(self) -> list[str]:
        """Remove each stray variant that apply made and nobody edited: the files its stamp lists,
        the stamp, and the folder once empty. Such a variant can be neither rebuilt nor refreshed,
        and running it would train code that no patch holds; removing exactly what apply wrote is
        what apply does with a file that a patch no longer makes. Hand edits and run outputs
        (out/, *.pt) stay: stray_notes says what is left and how to remove it."""
        report = []
        for folder in self.stray_variants():
            stamp, state = read_stamp(folder), variant_state(folder, None)
            if not state.generated or state.edited:
                continue
            (folder / STAMP).unlink()
            for path in stamp["files"]:
                _remove_file(folder, path)
            if not any(folder.iterdir()):
                folder.rmdir()
            report.append(f"{self.show(folder)}: removed, as no patch in patches/series makes it")
        return report

    def stray_notes(self) -> list[str]:
        """A warning for each stray variant: what apply does with it, or how to remove it."""
        notes = []
        for folder in self.stray_variants():
            state, shown = variant_state(folder, None), self.show(folder)
            if state.edited:
                what = (f"it was edited by hand ({', '.join(state.edited)}), so apply keeps it: "
                        f"remove it yourself (rm -r {shown}) once you no longer need the edit")
            elif state.generated:
                what = "`python apply.py` removes it"
            else:
                what = (f"it holds nothing that apply made (no stamp), so apply keeps it: remove it "
                        f"yourself (rm -r {shown}) once you no longer need what is in it")
            notes.append(f"warning: {shown}: no patch in patches/series makes it; {what}")
        return notes

    def _edited(self, variant: Variant, state: VariantState) -> str:
        return (
            f"{self.show(variant.directory)} was edited by hand since it was generated "
            f"({', '.join(state.edited)}): run `python apply.py refresh {variant.name}` to keep "
            "the edit as a patch, or `python apply.py --force` to discard it"
        )

    def code_digest(self, name: str) -> str:
        """The one definition of "the code a run of variant NAME trains": the digest of the spine
        and the diffs of patches 1..k (headers excluded), as each variant's stamp records it.
        "spine" names the spine alone. A result is stale when its recorded digest differs."""
        self.verify_pin()
        return inputs_digest(self.spine(), [self.read_patch(entry) for entry in self.series_up_to(name)])

    def series_up_to(self, name: str) -> list[str]:
        """The patch files variant NAME is made of, in series order ("spine": none)."""
        entries = self.entries()
        return [] if name == "spine" else entries[: self.position(entries, name) + 1]

    def ensure_variant(self, name: str) -> Path:
        """For runners: the folder of variants/NAME, regenerated first if stale or missing.
        Raises ApplyError if the series does not apply up to NAME or NAME was edited by hand."""
        self.apply(only=name)
        return self.variant_dir(name)

    def check(self) -> str:
        """Raise unless the pin matches, the series is sound and every patch applies."""
        variants = self.build()
        orphans = self.orphans(self.entries())
        if orphans:
            raise ApplyError(
                f"{printable(', '.join(orphans))}: in patches/ but not in patches/series; list or delete it"
            )
        count = plural(len(variants), "patch")
        return f"ok: the spine matches its pin, and the series applies ({count})"

    # -- refresh

    def refresh(self, name: str) -> tuple[list[str], list[str]]:
        """Rewrite patch NAME from the edited variants/NAME; then list (the second result) any
        later patch that no longer applies on top of it. The refresh is kept either way."""
        self.verify_pin()
        entries = self.entries()
        k = self.position(entries, name)
        before = [self.read_patch(entry) for entry in entries[:k]]
        patch = self.read_patch(entries[k])
        spine = self.spine()
        base = apply_series(spine, before)[-1] if before else spine
        directory = self.variant_dir(name)
        self._check_refreshable(directory, inputs_digest(spine, before + [patch]), patch)
        unfilled = unfilled_fields(patch.header)
        if unfilled:
            raise ApplyError(
                f"{patch.source}: fill in its header first: {', '.join(unfilled)} still "
                f"{'holds' if len(unfilled) == 1 else 'hold'} the <placeholder> that `new` wrote"
            )
        edited = read_tree(directory)
        refreshed = self._rediff(base, edited, patch)
        if refreshed.data == patch.data:
            report = [f"{patch.source}: unchanged"]
        else:
            write_atomic(self.patches_dir / entries[k], refreshed.data)
            report = [f"{patch.source}: refreshed (+{refreshed.added} -{refreshed.removed} lines)"]
        write_stamp(directory, make_stamp(spine, before + [refreshed], edited))
        problems = self._check_later(edited, entries[k + 1 :])
        if entries[k + 1 :] and not problems and refreshed.data != patch.data:
            report.append("the later variants are stale now: run `python apply.py`")
        return report, problems

    def _check_refreshable(self, directory: Path, digest: str, patch: Patch) -> None:
        state, shown = variant_state(directory, digest), self.show(directory)
        if not state.generated:
            raise ApplyError(f"{shown} has not been generated: run `python apply.py` first")
        if not state.current:
            raise ApplyError(
                f"{shown} was generated from an older spine or series, so refreshing it would "
                f"fold those differences into {patch.source}: move your edit aside, run "
                "`python apply.py --force`, and redo it"
            )

    def _rediff(self, base: dict[str, bytes], edited: dict[str, bytes], patch: Patch) -> Patch:
        """The patch from base to edited, in canonical form, under the patch's own header."""
        diff = diff_trees(base, edited)
        header = patch.header
        if diff and header and not header.endswith("\n"):
            header += "\n"  # a header-only patch may end without one; the diff needs its own line
        refreshed = parse_patch((header + diff).encode(), patch.source)
        if apply_patch(base, refreshed) != edited:  # our writer and our reader must agree
            raise ApplyError(f"internal error: the refreshed {patch.source} misses the variant")
        return refreshed

    def _check_later(self, tree: dict[str, bytes], later: list[str]) -> list[str]:
        for index, entry in enumerate(later):
            try:
                tree = apply_patch(tree, self.read_patch(entry))
            except ApplyError as error:
                problems = [f"{entry} no longer applies: {error}"]
                unchecked = ", ".join(later[index + 1 :])
                if unchecked:
                    problems.append(f"not checked, as they build on it: {unchecked}")
                return problems
        return []

    # -- rebase

    def rebase(self, name: str | None = None) -> tuple[list[str], list[str]]:
        """After the spine (or an earlier patch) moved lines about: rewrite every patch (or only
        NAME) whose hunks drifted, each hunk moved to where its old text stands now, in canonical
        form under its own header. All or nothing: if any hunk conflicts or could go to several
        places, no patch is written. The second result lists later patches that no longer apply."""
        self.verify_pin()
        entries = self.entries()
        last = len(entries) - 1 if name is None else self.position(entries, name)
        tree, rebased, moves = self.spine(), {}, []
        for entry in entries[: last + 1]:
            patch = self.read_patch(entry)
            try:
                after = apply_patch(tree, patch)
            except ApplyError:
                if name is not None and entry != entries[last]:
                    raise  # only NAME was to be rebased; what it builds on must apply as it is
                after, patch_moves = rebase_patch(tree, patch)
                rebased[entry] = self._rediff(tree, after, patch)
                moves += patch_moves
            tree = after
        for entry, patch in rebased.items():
            write_atomic(self.patches_dir / entry, patch.data)
        if not rebased:
            return ["every patch applies as it is: nothing to rebase"], []
        report = moves + [f"{patch.source}: rebased" for patch in rebased.values()]
        report.append("the variants are stale now: run `python apply.py`")
        return report, self._check_later(tree, entries[last + 1 :])

    # -- new

    def new(self, name: str, after: str | None = None, today: datetime.date | None = None):
        """Add patch NAME with a header template and no diff, at the end of the series or right
        after patch AFTER (renumbering the patch files behind it), and generate its variant."""
        self.verify_pin()
        entries = self.entries()
        self._check_new_name(name, entries)
        position = len(entries) if after is None else self.position(entries, after) + 1
        file_name = f"{position + 1:02d}-{name}.patch"
        renames = self._renumbering(entries[position:], first=position + 2)
        self._check_free({file_name, *renames.values()} - set(renames))
        before = [self.read_patch(entry) for entry in entries[:position]]
        spine = self.spine()
        base = apply_series(spine, before)[-1] if before else spine
        header = header_template(name, today or datetime.date.today())
        patch = Patch(f"patches/{file_name}", header.encode(), header, ())
        directory = self.variant_dir(name)
        if variant_state(directory, None).edited:  # left over from an earlier patch of that name
            raise ApplyError(f"{self.show(directory)} exists and was edited by hand; move it aside")

        self._rename_patches(renames)
        write_atomic(self.patches_dir / file_name, patch.data)
        self._insert_in_series(file_name, entries[position - 1] if after else None, renames)
        write_variant(directory, base, make_stamp(spine, before + [patch], base), discard=False)
        report = [f"renamed patches/{old} -> patches/{new}" for old, new in renames.items()]
        report += [
            f"patches/{file_name}: created (a header to fill in, no diff yet)",
            f"{self.show(directory)}: written; edit it, fill in the header of patches/{file_name}, "
            f"then run `python apply.py refresh {name}`",
        ]
        if position < len(entries):
            report.append("the later variants are stale now: run `python apply.py`")
        return report

    def _check_new_name(self, name: str, entries: list[str]) -> None:
        if not VARIANT_NAME.fullmatch(name):
            raise ApplyError(f"{name!r} is not a patch name: use a-z, 0-9 and '-' (not first)")
        if name == "spine":
            raise ApplyError("'spine' names the unpatched file (upstream/makemore.py): choose another name")
        numbered = re.fullmatch(r"[0-9]+-(.+)", name)
        if numbered:  # "01-moe" would become 05-01-moe.patch
            raise ApplyError(f"{name!r} starts with a number: give the name alone ({numbered[1]!r}); "
                             "the number is the patch's place in the series")
        files = [path.name for path in self.patches_dir.glob("*.patch")]
        taken = {variant_name(file) for file in files + entries if PATCH_FILE.fullmatch(file)}
        if name in taken:
            raise ApplyError(f"a patch named {name!r} exists already")

    @staticmethod
    def _renumbering(entries: list[str], first: int) -> dict[str, str]:
        """The new file names of the patches behind an insertion: NN is the position."""
        renames = {}
        for number, entry in enumerate(entries, start=first):
            renamed = f"{number:02d}-{variant_name(entry)}.patch"
            if renamed != entry:
                renames[entry] = renamed
        return renames

    def _check_free(self, file_names: set[str]) -> None:
        taken = sorted(name for name in file_names if (self.patches_dir / name).exists())
        if taken:
            raise ApplyError(f"patches/{taken[0]} is in the way of the renumbering; move it aside")

    def _rename_patches(self, renames: dict[str, str]) -> None:
        # In two steps, so that no rename lands on a file that is itself about to move.
        for old in renames:
            (self.patches_dir / old).rename(self.patches_dir / f".{old}.renaming")
        for old, new in renames.items():
            (self.patches_dir / f".{old}.renaming").rename(self.patches_dir / new)

    def _insert_in_series(self, file_name: str, after: str | None, renames: dict[str, str]) -> None:
        """Edit patches/series in place, keeping its comments and blank lines."""
        lines: list[str] = []
        for line in split_lines(decode(self.series_file.read_bytes(), "patches/series")):
            entry = _series_entry(line)
            lines.append(line.replace(entry, renames[entry], 1) if entry in renames else line)
            if after is not None and entry == after:
                lines += [lines.pop().rstrip("\n") + "\n", file_name + "\n"]
        if after is None:
            lines = [*lines[:-1], lines[-1].rstrip("\n") + "\n"] if lines else []
            lines.append(file_name + "\n")
        write_atomic(self.series_file, "".join(lines).encode())

    # -- status and diff

    def status(self) -> tuple[list[str], list[str], list[str]]:
        """A table, one row per patch: does it apply, is its variant current, was it edited?
        Then the warnings for below it (stray patch files and variants), and the errors: why a
        patch does not apply."""
        self.verify_pin()
        entries = self.entries()
        warnings = [f"warning: patches/{printable(file)} is not in patches/series"
                    for file in self.orphans(entries)]
        spine = self.spine()
        tree, applied, errors = spine, [], []
        rows = [("patch", "applies", "variant", "edited")]
        for entry in entries:
            if errors:
                applies = "-"  # not checked: it builds on a patch that fails
            else:
                try:
                    patch = self.read_patch(entry)
                    tree = apply_patch(tree, patch)
                    applied.append(patch)
                    applies = "yes"
                except ApplyError as error:
                    applies = "NO"
                    errors.append(str(error))
            digest = None if errors else inputs_digest(spine, applied)
            state = variant_state(self.variant_dir(variant_name(entry)), digest)
            rows.append((entry, applies, *_state_cells(state)))
        return _table(rows), warnings + self.stray_notes(), errors

    def diff(self, name: str, from_spine: bool = False) -> str:
        """`diff NAME`: the patch's diff as its file holds it (its hunks, like `quilt diff`), or
        with from_spine the canonical diff of variant NAME against the spine: patches 1..k as one."""
        self.verify_pin()
        entries = self.entries()
        if from_spine:
            return diff_trees(self.spine(), self.build(upto=name)[-1].tree)
        patch = self.read_patch(entries[self.position(entries, name)])
        return patch.data[len(patch.header.encode()) :].decode("utf-8")

    def diffstat(self, name: str) -> list[str]:
        """`diff NAME --stat`: the patch's title, its diffstat, and a line per hunk saying what
        it changes (hunk_changes)."""
        self.verify_pin()
        entries = self.entries()
        k = self.position(entries, name)
        patch = self.read_patch(entries[k])
        base = self._base(entries[:k])
        title = patch.fields.get("Description", "").split("\n")[0]
        lines = [f"{patch.source}: {title}" if title else patch.source]
        width = max([len(file.path) for file in patch.files], default=0)
        for file in patch.files:
            new = "  (new file)" if file.is_new else ""
            lines.append(f"  {file.path.ljust(width)}  +{file.added} -{file.removed}{new}")
        lines.append(f"  {plural(len(patch.files), 'file')}, +{patch.added} -{patch.removed}")
        for file in patch.files:
            lines.append(f"{file.path}:")
            old = old_file_lines(base, file)
            for hunk in file.hunks:
                lines.append(f"  {hunk.ranges}  +{hunk.added} -{hunk.removed}  {hunk_caption(hunk, old)}")
        return lines

    def _base(self, entries: list[str]) -> dict[str, bytes] | None:
        """The tree that the patch after entries applies to; None if they do not apply (the
        captions then make do without the file)."""
        spine = self.spine()
        try:
            trees = apply_series(spine, [self.read_patch(entry) for entry in entries])
        except ApplyError:
            return None
        return trees[-1] if trees else spine


def _state_cells(state: VariantState) -> tuple[str, str]:
    """A variant's state as status prints it: (variant, edited)."""
    variant = "current" if state.current else "stale" if state.generated else "missing"
    edited = f"yes: {', '.join(state.edited)}" if state.edited else "no" if state.generated else "-"
    return variant, edited


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


# ---------------------------------------------------------------------------- command line


def _run_apply(project: Project, args) -> int:
    print("\n".join(project.apply(force=args.force)) or "patches/series is empty: nothing to write")
    for orphan in project.orphans(project.entries()):
        print(f"warning: patches/{printable(orphan)} is not in patches/series", file=sys.stderr)
    for note in project.stray_notes():
        print(note, file=sys.stderr)
    return 0


def _run_check(project: Project, args) -> int:
    print(project.check())
    return 0


def _run_refresh(project: Project, args) -> int:
    return _report_with_later_problems(*project.refresh(args.name))


def _run_rebase(project: Project, args) -> int:
    return _report_with_later_problems(*project.rebase(args.name))


def _report_with_later_problems(report: list[str], problems: list[str]) -> int:
    """What a rewrite of one patch did; it is kept even when later patches no longer apply."""
    print("\n".join(report))
    _print_error(problems)
    return 1 if problems else 0


def _print_error(messages: list[str]) -> None:
    """Messages on stderr, "error: " before the first, each line of each shown printable (a
    patch's text may hold an escape sequence or a carriage return), and no empty lines."""
    lines = [printable(line) for message in messages for line in message.split("\n") if line.strip()]
    if lines:
        print("error: " + "\n".join(lines), file=sys.stderr)


def _run_new(project: Project, args) -> int:
    print("\n".join(project.new(args.name, after=args.after)))
    return 0


def _run_status(project: Project, args) -> int:
    """Exits 1 while a patch does not apply, as check does."""
    table, warnings, errors = project.status()
    print("\n".join(table + warnings))
    _print_error(errors)
    return 1 if errors else 0


def _run_diff(project: Project, args) -> int:
    if args.stat:
        print("\n".join(project.diffstat(args.name)))
    else:
        sys.stdout.write(project.diff(args.name, from_spine=args.from_spine))
    return 0


def _run_pin(project: Project, args) -> int:
    print(f"{project.show(project.pin_file)}: pinned {project.pin()[:12]}")
    return _run_check(project, args)


COMMANDS = {
    "apply": (_run_apply, "write every variant, and remove unedited ones that no patch makes (the "
                          "default command)"),
    "check": (_run_check, "check that the pin matches and every patch applies; writes nothing"),
    "refresh": (_run_refresh, "rewrite patch NAME from the edited variants/NAME"),
    "rebase": (_run_rebase, "move the drifted hunks of every patch (or NAME) to where their text is"),
    "new": (_run_new, "add patch NAME (at the end, or --after OTHER) and generate its variant; fill "
                      "in its header before you refresh it"),
    "status": (_run_status, "one row per patch: applies? generated and current? edited? (exit 1 "
                            "while a patch does not apply)"),
    "diff": (_run_diff, "print patch NAME's hunks (--stat: a summary; --from-spine: variant NAME "
                        "against the spine)"),
    "pin": (_run_pin, "pin the spine as it is now, then check the series"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apply.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers = {name: commands.add_parser(name, help=help_) for name, (_, help_) in COMMANDS.items()}
    parsers["apply"].add_argument("--force", action="store_true", help="discard hand edits")
    for name in ("refresh", "new", "diff"):
        parsers[name].add_argument("name", metavar="NAME", help="e.g. moe, for 01-moe.patch")
    parsers["rebase"].add_argument("name", metavar="NAME", nargs="?", help="only this patch")
    parsers["new"].add_argument("--after", metavar="OTHER", help="insert right after patch OTHER")
    shown = parsers["diff"].add_mutually_exclusive_group()
    shown.add_argument("--stat", action="store_true",
                       help="the diffstat, and a line per hunk saying what it adds, edits, removes")
    shown.add_argument("--from-spine", action="store_true",
                       help="the variant against the spine (patches 1..k as one canonical diff)")
    return parser


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """The command line; root is the project root (by default, the folder of this file)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["apply", *argv]  # no command means apply
    args = build_parser().parse_args(argv)
    project = Project(root or Path(__file__).resolve().parent)
    try:
        return COMMANDS[args.command][0](project, args)
    except ApplyError as error:
        _print_error([str(error)])
        return 1


if __name__ == "__main__":
    sys.exit(main())
