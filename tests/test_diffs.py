"""analysis/diffs.py: patches as figures, on the hand-made patches in tests/fixtures/patches/,
on small patches written here, and on the real series.

The fixtures are a small spine (makemore.py, its last line without a newline) and a series of two
patches in canonical form. Every expected number below is read off the fixture files by hand.
"""

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import pytest

import apply
from analysis import diffs

FIXTURES = Path(__file__).parent / "fixtures" / "patches"
SCALE, FLUSH = FIXTURES / "01-scale.patch", FIXTURES / "02-flush.patch"
ROOT = Path(__file__).resolve().parent.parent


class Rows(HTMLParser):
    """A rendered snippet read back: each <tr> as (class, cell texts, texts marked as changed),
    and the header's title and paragraphs. Texts come back unescaped."""

    def __init__(self, html: str):
        super().__init__()
        self.rows, self.title, self.paragraphs = [], None, []
        self.spans: list[str] = []  # the classes of the open <span>s
        self.in_cell = False
        self.text_of = None  # the header element whose text is being read
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        css = dict(attrs).get("class", "")
        if tag == "tr":
            self.rows.append((css, [], []))
        elif tag == "td":
            self.rows[-1][1].append("")
            self.in_cell = True
        elif tag == "span":
            self.spans.append(css)
            if css == "pd-chg":
                self.rows[-1][2].append("")
        elif tag == "p":
            self.text_of = css

    def handle_endtag(self, tag):
        if tag == "span":
            self.spans.pop()
        elif tag == "td":
            self.in_cell = False
        elif tag == "p":
            self.text_of = None

    def handle_data(self, data):
        if self.text_of == "pd-title":
            self.title = data
        elif self.text_of == "pd-text":
            self.paragraphs.append(data)
        elif self.in_cell:
            self.rows[-1][1][-1] += data
            if "pd-chg" in self.spans:
                self.rows[-1][2][-1] += data

    def diff(self) -> list[tuple]:
        """The diff table's rows as (class, old number, new number, sign, code); captions and
        folds as (class, text)."""
        rows = []
        for css, cells, _ in self.rows:
            if css in ("pd-caption", "pd-fold"):
                rows.append((css, cells[0]))
            elif css.startswith("pd-") and css != "pd-total":
                rows.append((css, *cells))
        return rows

    def marks(self) -> dict[str, list[str]]:
        """Each added or removed line's code, and the texts marked as changed in it."""
        return {cells[3]: marks for css, cells, marks in self.rows if css in ("pd-add", "pd-del")}

    def stats(self) -> list[list[str]]:
        return [cells for css, cells, _ in self.rows if css in ("", "pd-total")]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """Both fixture patches rendered once, without the tree they apply to."""
    out = tmp_path_factory.mktemp("figures")
    figures = {}
    for patch_file in (SCALE, FLUSH):
        source = f"patches/{patch_file.name}"
        figures[patch_file.stem] = diffs.render_patch(
            apply.read_patch(patch_file), out / patch_file.stem, source
        )
    return {"out": out, "figures": figures}


def read(rendered: dict, name: str) -> str:
    return (rendered["out"] / name).read_text(encoding="utf-8")


def page(patch_text: str, stem: str = "hunk-1") -> diffs.Page:
    """A page of a patch given as text, laid out (nothing written)."""
    patch = apply.parse_patch(("Description: t\n" + patch_text).encode())
    return dict(diffs.pages(patch, "t.patch", None))[stem]


def page_html(patch_text: str, stem: str = "hunk-1") -> Rows:
    """A page of a patch given as text, written as HTML (no images drawn)."""
    return Rows(diffs.to_html(page(patch_text, stem)))


SCALE_HUNK_1 = [
    ("pd-caption", "makemore.py  edits __init__, forward  @@ -14,14 +14,15 @@  +3 −2"),
    ("pd-ctx", "14", "14", "", "        super().__init__()"),
    ("pd-ctx", "15", "15", "", "        self.attn = nn.Linear(config.n_embd, config.n_embd)"),
    ("pd-ctx", "16", "16", "", "        self.mlp = nn.Linear(config.n_embd, config.n_embd)"),
    ("pd-del", "17", "", "−", "        self.scale = 1"),
    ("pd-add", "", "17", "+", "        self.scale = 2"),
    ("pd-ctx", "18", "18", "", "        self.drop = 0.0"),
    ("pd-ctx", "19", "19", "", ""),
    ("pd-fold", "… 2 unchanged lines"),  # old 20-21: six between the changes, two kept each side
    ("pd-ctx", "22", "22", "", "        x = x + self.mlp(x)"),
    ("pd-ctx", "23", "23", "", "        if self.drop > 0:"),
    ("pd-del", "24", "", "−", "            x = x * self.drop"),
    ("pd-add", "", "24", "+", "            x = x * (1 - self.drop)"),
    ("pd-add", "", "25", "+", '        # scale < 1 & drop > 0: "quiet" <b>'),
    ("pd-ctx", "25", "26", "", "        return x * self.scale"),
    ("pd-ctx", "26", "27", "", ""),
    ("pd-ctx", "27", "28", "", ""),
]
SCALE_HUNK_2 = [
    ("pd-caption", "makemore.py  edits train  @@ -34,7 +35,7 @@  +1 −1"),
    ("pd-ctx", "34", "35", "", "    for step in range(steps):"),
    ("pd-ctx", "35", "36", "", "        loss = model(torch.ones(1, 64)).sum()"),
    ("pd-ctx", "36", "37", "", "        loss.backward()"),
    ("pd-del", "37", "", "−", "    return model"),
    ("pd-add", "", "38", "+", "    return model.eval()"),
    ("pd-ctx", "38", "39", "", ""),
    ("pd-ctx", "39", "40", "", ""),
    ("pd-ctx", "40", "41", "", "def main():"),
]


def test_each_hunk_has_its_line_numbers_and_folds(rendered):
    assert Rows(read(rendered, "01-scale/hunk-1.html")).diff() == SCALE_HUNK_1
    assert Rows(read(rendered, "01-scale/hunk-2.html")).diff() == SCALE_HUNK_2


def test_the_overview_lists_each_hunk_figure_and_what_it_changes(rendered):
    rows = Rows(read(rendered, "02-flush/patch.html"))
    assert [(css, cells) for css, cells, _ in rows.rows if css in ("pd-caption", "pd-entry")] == [
        ("pd-caption", ["helpers.py"]),
        ("pd-entry", ["1", "+2 −0", "@@ -0,0 +1,2 @@", "adds double"]),
        ("pd-caption", ["makemore.py"]),
        ("pd-entry", ["2", "+1 −1", "@@ -42,4 +42,4 @@", "edits main"]),
    ]
    assert read(rendered, "02-flush/patch.md") == (
        "```text\n"
        "helpers.py:\n"
        "  1  +2 −0      adds double\n"
        "makemore.py:\n"
        "  2  +1 −1      edits main\n"
        "```\n\n"
        "*02-flush.patch: Flush the last line (2 files, +3 −1)*\n"
    )


def test_paired_lines_mark_exactly_what_changed(rendered):
    marks = {**Rows(read(rendered, "01-scale/hunk-1.html")).marks(),
             **Rows(read(rendered, "01-scale/hunk-2.html")).marks()}
    assert marks["        self.scale = 1"] == ["1"]
    assert marks["        self.scale = 2"] == ["2"]
    assert marks["            x = x * self.drop"] == []  # nothing of it was removed
    assert marks["            x = x * (1 - self.drop)"] == ["(1 - ", ")"]
    assert marks['        # scale < 1 & drop > 0: "quiet" <b>'] == []  # no removed line to pair
    assert marks["    return model"] == []
    assert marks["    return model.eval()"] == [".eval()"]


def test_runs_of_removed_and_added_lines_pair_in_order():
    rows = page_html(
        "--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,2 @@\n-a = 1\n-b = 2\n+a = 3\n+b = 4\n"
    )
    assert rows.marks() == {"a = 1": ["1"], "b = 2": ["2"], "a = 3": ["3"], "b = 4": ["4"]}


def test_a_rewritten_line_gets_no_marks():
    rows = page_html("--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-x = 1\n+print('hello world')\n")
    assert rows.marks() == {"x = 1": [], "print('hello world')": []}


def test_a_removed_line_pairs_with_the_added_line_that_edits_it():
    """In order, but not i-th with i-th: the new c_fc line pairs with the old c_fc line, though a
    new line comes first, and c_proj with c_proj."""
    rows = page_html(
        "--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,3 @@\n"
        "-self.c_fc = nn.Linear(n, 4 * n)\n-self.c_proj = nn.Linear(4 * n, n)\n"
        "+hidden = hidden or 4 * n\n+self.c_fc = nn.Linear(n, hidden)\n+self.c_proj = nn.Linear(hidden, n)\n"
    )
    assert rows.marks() == {
        "self.c_fc = nn.Linear(n, 4 * n)": ["4 * n"], "self.c_proj = nn.Linear(4 * n, n)": ["4 * n"],
        "hidden = hidden or 4 * n": [],
        "self.c_fc = nn.Linear(n, hidden)": ["hidden"], "self.c_proj = nn.Linear(hidden, n)": ["hidden"],
    }


def test_a_line_that_shares_words_with_another_statement_gets_no_marks():
    """The new line took a piece of the old one, but is not an edit of it."""
    rows = page_html("--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-x = x + mlp(ln(x))\n+h = ln(x)\n")
    assert rows.marks() == {"x = x + mlp(ln(x))": [], "h = ln(x)": []}


def test_tabs_are_expanded_after_the_comparison():
    """The same tab stands for 5 spaces after 'alpha' and 6 after 'beta': not a change."""
    rows = page_html("--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-b = 'alpha'\tx\n+b = 'beta'\tx\n")
    assert rows.marks() == {"b = 'alpha'     x": ["alpha"], "b = 'beta'      x": ["beta"]}


@pytest.mark.parametrize("between, folded", [(4, None), (5, None), (6, 2), (9, 5)])
def test_context_folds_only_what_saves_room(between, folded):
    """Two lines kept next to each change; a fold of a single line would save nothing."""
    context = "".join(f" line {k}\n" for k in range(between))
    count = between + 2
    rows = page_html(
        f"--- a/f.py\n+++ b/f.py\n@@ -1,{count} +1,{count} @@\n-a\n+A\n{context}-b\n+B\n"
    ).diff()
    folds = [row[1] for row in rows if row[0] == "pd-fold"]
    shown = [row for row in rows if row[0] == "pd-ctx"]
    assert folds == ([] if folded is None else [f"… {folded} unchanged lines"])
    assert len(shown) == between - (folded or 0)


def test_the_no_newline_marker_is_a_row(rendered):
    rows = Rows(read(rendered, "02-flush/hunk-2.html")).diff()
    assert rows[4:] == [
        ("pd-del", "45", "", "−", '    print("done")'),
        ("pd-eof", "", "", "", "\\ No newline at end of file"),
        ("pd-add", "", "45", "+", '    print("done", flush=True)'),
        ("pd-eof", "", "", "", "\\ No newline at end of file"),
    ]


def test_html_is_escaped_and_well_formed(rendered):
    html = read(rendered, "01-scale/hunk-1.html")
    assert "# scale &lt; 1 &amp; drop &gt; 0: &quot;quiet&quot; &lt;b&gt;" in html
    assert "<b>" not in html
    assert "<script" not in html and "http" not in html  # self-contained, nothing to fetch
    for path in rendered["out"].rglob("*.html"):  # change marks and syntax spans nest properly
        ElementTree.fromstring(path.read_text(encoding="utf-8"))


def test_the_header_has_the_description_and_the_diffstat(rendered):
    scale = Rows(read(rendered, "01-scale/patch.html"))
    assert scale.title == "Scale the blocks by two"
    assert scale.paragraphs == [
        "Blocks now scale their output by 2, and dropout keeps the expected value.",
        "A second paragraph.",
    ]
    assert scale.stats() == [["makemore.py", "+4", "−3", ""]]
    flush = Rows(read(rendered, "02-flush/patch.html"))
    assert flush.title == "Flush the last line" and flush.paragraphs == []
    assert flush.stats() == [
        ["helpers.py", "+2", "−0", ""], ["makemore.py", "+1", "−1", ""], ["2 files", "+3", "−1", ""]
    ]


def test_markdown_is_a_fenced_diff_and_its_caption(rendered):
    assert read(rendered, "01-scale/hunk-2.md") == (
        "```diff\n"
        "@@ -34,7 +35,7 @@ def train(model, steps):\n"
        "     for step in range(steps):\n"
        "         loss = model(torch.ones(1, 64)).sum()\n"
        "         loss.backward()\n"
        "-    return model\n"
        "+    return model.eval()\n"
        " \n"
        " \n"
        " def main():\n"
        "```\n"
        "\n"
        "*01-scale.patch, hunk 2: edits train in makemore.py (+1 −1)*\n"
    )
    assert read(rendered, "01-scale/hunk-1.md").endswith(  # no bold "init" in the post
        "*01-scale.patch, hunk 1: edits \\_\\_init\\_\\_, forward in makemore.py (+3 −2)*\n"
    )


def test_a_fence_outlasts_the_backticks_in_the_diff():
    patch = apply.parse_patch(b"Description: t\n--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+```\n")
    page = dict(diffs.pages(patch, "t.patch", None))["hunk-1"]
    assert diffs.to_markdown(page).startswith("````diff\n@@ -1 +1 @@\n-a\n+```\n````\n")


def test_render_patch_returns_a_figure_per_page(rendered):
    out = rendered["out"]
    figures = rendered["figures"]["02-flush"]
    assert [(figure.path, figure.caption, figure.source) for figure in figures] == [
        (out / "02-flush/patch.html", "02-flush.patch: Flush the last line (2 files, +3 −1)",
         "patches/02-flush.patch"),
        (out / "02-flush/hunk-1.html", "02-flush.patch, hunk 1: adds double in helpers.py (+2 −0)",
         "patches/02-flush.patch"),
        (out / "02-flush/hunk-2.html", "02-flush.patch, hunk 2: edits main in makemore.py (+1 −1)",
         "patches/02-flush.patch"),
    ]
    names = sorted(path.name for path in (out / "02-flush").iterdir())
    assert names == sorted(f"{stem}.{kind}" for stem in ("patch", "hunk-1", "hunk-2")
                           for kind in ("html", "svg", "png", "md"))


def test_images_are_the_same_bytes_in_another_process(rendered, tmp_path):
    subprocess.run([sys.executable, "-m", "analysis.diffs", str(SCALE), "-o", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True)
    assert_same_images(tmp_path / "patches" / "01-scale", rendered["out"] / "01-scale")


def test_images_ignore_other_figures_settings(rendered, tmp_path):
    settings = {"savefig.bbox": "tight", "savefig.facecolor": "black", "text.antialiased": False,
                "patch.antialiased": False, "svg.hashsalt": "other", "font.size": 20}
    with matplotlib.rc_context(settings):
        diffs.render_patch(apply.read_patch(SCALE), tmp_path, f"patches/{SCALE.name}")
    assert_same_images(tmp_path, rendered["out"] / "01-scale")


def assert_same_images(folder: Path, expected: Path) -> None:
    for stem in ("patch", "hunk-1", "hunk-2"):
        svg, png = (folder / f"{stem}.svg").read_bytes(), (folder / f"{stem}.png").read_bytes()
        assert svg.startswith(b"<?xml") and b"<svg" in svg
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert svg == (expected / f"{stem}.svg").read_bytes()
        assert png == (expected / f"{stem}.png").read_bytes()


def drawn_code(page: diffs.Page) -> list[str]:
    """The code of a hunk page as the image draws it, a line per row, continuations included."""
    texts = []
    for draw_line, item in diffs.image_lines(page, diffs.MIN_WIDTH + 26, 3):
        if draw_line is diffs.draw_row and item.kind in "+- ":
            texts.append(item.text)
        elif draw_line is diffs.draw_continued:
            texts.append("↪ " + "".join(segment.text for segment in item[2]))
    return texts


def test_long_lines_wrap_and_are_never_clipped(tmp_path):
    long = "x = f(" + ", ".join(f"argument_{k}" for k in range(20)) + ")"
    width = diffs.MIN_WIDTH + 26 - (2 * 3 + 4)  # the code columns of drawn_code's grid
    rows = drawn_code(page(f"--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+    {long}\n"))
    assert rows[0] == "a" and len(rows) > 3
    # the first row has the whole width, the others lose the indentation and "↪ "
    assert len(rows[1]) <= width and all(len(row) <= width - 4 for row in rows[2:])
    assert "".join(row.removeprefix("↪ ") for row in rows[1:]) == "    " + long  # every character
    assert all(row.endswith(",") or row.endswith(" ") or row is rows[-1] for row in rows[1:])

    def svg_width(columns: int) -> bytes:
        patch = apply.parse_patch(
            f"Description: t\n--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+{'x' * columns}\n".encode()
        )
        diffs.render_patch(patch, tmp_path / str(columns), "t.patch")
        svg = (tmp_path / str(columns) / "hunk-1.svg").read_bytes()
        return svg[svg.index(b'width="'):].split(b" ")[0]

    assert svg_width(70) != svg_width(diffs.MAX_CODE)
    assert svg_width(diffs.MAX_CODE) == svg_width(diffs.MAX_CODE + 1) == svg_width(300)


def test_wrap_breaks_after_a_space_keeping_tokens_and_marks():
    segments = (diffs.Segment("abcde ", "t1", False), diffs.Segment("fgh", "t2", True),
                diffs.Segment(" ij", "t3", False))
    assert diffs.wrap(segments, 20) == [(0, segments)]
    assert diffs.wrap(segments, 8) == [
        (0, (diffs.Segment("abcde ", "t1", False),)),
        (2, (diffs.Segment("fgh", "t2", True), diffs.Segment(" ij", "t3", False))),
    ]
    unbroken = (diffs.Segment("  abcdefghijkl", "t1", True),)  # no space: cut at the edge
    assert [(column, piece[0].text) for column, piece in diffs.wrap(unbroken, 8)] == [
        (0, "  abcdef"), (4, "ghij"), (4, "kl")]


def added_lines(*definitions: tuple[str, int]) -> str:
    """A new file that adds the given definitions, each with a body of so many lines."""
    text = ""
    for header, body in definitions:
        indent = " " * (len(header) - len(header.lstrip()) + 4)
        text += header + "\n" + "".join(f"{indent}x{k} = {k}\n" for k in range(body)) + "\n"
    return text


def figures_of(new_file: str) -> list[tuple[str, str, int]]:
    """(stem, caption, added lines) of each hunk figure of a patch that adds new_file."""
    diff = apply.diff_file("f.py", None, new_file.encode())
    patch = apply.parse_patch(("Description: t\n" + diff).encode())
    return [(stem, page.block.caption, page.block.hunk.added)
            for stem, page in diffs.pages(patch, "t.patch", None)[1:]]


def test_a_long_hunk_is_split_at_definitions():
    assert figures_of(added_lines(("def a():", 24), ("def b():", 10), ("def c():", 20))) == [
        ("hunk-1-1", "adds a, b", 38), ("hunk-1-2", "adds c", 22),
    ]


def test_a_definition_takes_its_decorators_and_comment_into_its_part():
    new_file = added_lines(("def a():", 30)) + "\n# b, cached\n@cache\n" + added_lines(("def b():", 30))
    diff = apply.diff_file("f.py", None, new_file.encode())
    patch = apply.parse_patch(("Description: t\n" + diff).encode())
    first, second = [page.block.hunk.lines for _, page in diffs.pages(patch, "t.patch", None)[1:]]
    assert [line.text for line in first[-3:]] == ["    x29 = 29\n", "\n", "\n"]  # blank lines stay above
    assert [line.text for line in second[:3]] == ["# b, cached\n", "@cache\n", "def b():\n"]


def test_a_long_class_is_split_at_its_methods():
    new_file = added_lines(("class A:", 2), ("    def f(self):", 20), ("    def g(self):", 20),
                           ("    def h(self):", 10))
    assert figures_of(new_file) == [
        ("hunk-1-1", "adds A", 26), ("hunk-1-2", "adds A.g, A.h", 34),
    ]


def test_a_definition_is_kept_whole_up_to_max_whole_and_cut_beyond():
    assert figures_of(added_lines(("def a():", 45))) == [("hunk-1", "adds a", 47)]
    cut = figures_of(added_lines(("def a():", 90)))
    assert [caption for _, caption, _ in cut] == ["adds a", "adds a (continued)", "adds a (continued)"]
    assert [added for _, _, added in cut] == [40, 40, 12]


def test_the_parts_of_a_hunk_are_hunks_of_their_own():
    patch = apply.parse_patch(("Description: t\n" + apply.diff_file(
        "f.py", b"a\nb\nc\n", b"a\nb\n" + added_lines(("def a():", 30), ("def b():", 30)).encode() + b"c\n"
    )).encode())
    (hunk,) = patch.files[0].hunks
    parts = [page.block.hunk for stem, page in diffs.pages(patch, "t.patch", None)[1:]]
    assert len(parts) == 2 and sum((part.lines for part in parts), ()) == hunk.lines

    def lines(hunk: apply.Hunk) -> list[tuple[str, str]]:
        return [(line.kind, line.text) for line in hunk.lines]

    for part in parts:  # each one reads back as the same hunk
        (read_back,) = apply.parse_patch(("--- a/f.py\n+++ b/f.py\n" + diffs.hunk_text(part)).encode()).files
        assert lines(read_back.hunks[0]) == lines(part)
    # a, b and def a() with its 30 lines and a blank; then def b() likewise, and c
    assert [part.ranges for part in parts] == ["@@ -1,2 +1,34 @@", "@@ -3 +35,33 @@"]


@pytest.mark.parametrize("entry", apply.Project(ROOT).entries())
def test_every_figure_of_the_series_is_figure_sized_captioned_and_unclipped(entry):
    project = apply.Project(ROOT)
    k = project.entries().index(entry)
    base = ([project.spine()] + [variant.tree for variant in project.build()])[k]
    figures = diffs.pages(project.read_patch(entry), entry, base)[1:]
    for stem, hunk_page in figures:
        assert hunk_page.block.hunk.added <= diffs.MAX_WHOLE, stem
        assert hunk_page.block.caption.startswith(("adds ", "edits ", "removes ")), stem
        shown = [row for row in drawn_code(hunk_page)]
        lines = [row.text for row in hunk_page.block.rows if row.kind in "+- "]
        assert "".join(shown).replace("↪ ", "") == "".join(lines), stem  # nothing cut off


def make_project(root: Path, entries: list[str]) -> Path:
    """A project whose spine is the fixture spine, with the fixture patches in its series."""
    (root / "upstream").mkdir(parents=True)
    shutil.copy(FIXTURES / "makemore.py", root / "upstream" / "makemore.py")
    apply.Project(root).pin()
    (root / "patches").mkdir()
    for entry in entries:
        shutil.copy(FIXTURES / entry, root / "patches" / entry)
    (root / "patches" / "series").write_text("# the series\n" + "".join(f"{e}\n" for e in entries))
    return root


def test_draw_patches_renders_the_series_and_removes_stale_figures(tmp_path):
    root = make_project(tmp_path / "project", ["01-scale.patch", "02-flush.patch"])
    figures_dir = tmp_path / "figures"
    for stale in ("patches/07-gone/patch.html", "patches/01-scale/hunk-9.png", "other/keep.png"):
        (figures_dir / stale).parent.mkdir(parents=True, exist_ok=True)
        (figures_dir / stale).write_text("old")

    figures = diffs.draw_patches(root, figures_dir)

    assert [(str(figure.path), figure.caption, figure.source) for figure in figures] == [
        ("patches/01-scale/patch.html", "01-scale.patch: Scale the blocks by two (1 file, +4 −3)",
         "patches/01-scale.patch"),
        ("patches/01-scale/hunk-1.html", "01-scale.patch, hunk 1: edits Block.__init__, Block.forward "
         "in makemore.py (+3 −2)", "patches/01-scale.patch"),
        ("patches/01-scale/hunk-2.html", "01-scale.patch, hunk 2: edits train in makemore.py (+1 −1)",
         "patches/01-scale.patch"),
        ("patches/02-flush/patch.html", "02-flush.patch: Flush the last line (2 files, +3 −1)",
         "patches/02-flush.patch"),
        ("patches/02-flush/hunk-1.html",
         "02-flush.patch, hunk 1: adds double in helpers.py (+2 −0)", "patches/02-flush.patch"),
        ("patches/02-flush/hunk-2.html", "02-flush.patch, hunk 2: edits main in makemore.py (+1 −1)",
         "patches/02-flush.patch"),
    ]
    written = sorted(path.relative_to(figures_dir).as_posix()
                     for path in figures_dir.rglob("*") if path.is_file())
    assert written == ["other/keep.png"] + sorted([
        "patches/manifest.json",  # each figure's key: a redraw renders only what changed
        *(f"patches/{patch}/{stem}.{kind}"
          for patch, stems in (("01-scale", 3), ("02-flush", 3))
          for stem in ["patch"] + [f"hunk-{k}" for k in range(1, stems)]
          for kind in ("html", "svg", "png", "md")),
    ])
    caption = Rows((figures_dir / "patches/01-scale/hunk-1.html").read_text()).diff()[0]
    assert caption == ("pd-caption", "makemore.py  edits Block.__init__, Block.forward  "
                                     "@@ -14,14 +14,15 @@  +3 −2")


def test_draw_patches_with_an_empty_series_writes_nothing(tmp_path):
    root = make_project(tmp_path / "project", [])
    assert diffs.draw_patches(root, tmp_path / "figures") == []
    assert not (tmp_path / "figures").exists()
