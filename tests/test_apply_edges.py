"""Hunks at the edges of a file: zero-context (`diff -U0`) patches, taken at the line each hunk
names, and `rebase` across lines added above the top hunk or below the last one."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import apply
from apply import ApplyError
from test_apply_project import SPINE, project  # noqa: F401 (a fixture)
from test_apply_properties import PATH, REAL_LINES, edited_file

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
needs_diff = pytest.mark.skipif(shutil.which("diff") is None, reason="needs GNU diff")


def parse(text: str) -> apply.Patch:
    return apply.parse_patch(text.encode(), "test.patch")


def apply_to(old: bytes, patch_text: str) -> bytes:
    return apply.apply_patch({PATH: old}, parse(patch_text))[PATH]


def git_apply(old: bytes, patch_text: str, *args: str) -> bytes | None:
    """What `git apply ARGS` makes of the patch, applied to old outside any repository."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / PATH).write_bytes(old)
        (Path(folder) / "p.patch").write_text(patch_text, encoding="utf-8", newline="")
        env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(Path(folder).parent)}
        done = subprocess.run(["git", "-c", "core.autocrlf=false", "apply", *args, "p.patch"],
                              cwd=folder, env=env, capture_output=True)
        return (Path(folder) / PATH).read_bytes() if done.returncode == 0 else None


def gnu_diff(old: bytes, new: bytes, context: int = 0) -> str:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "old").write_bytes(old)
        (Path(folder) / "new").write_bytes(new)
        done = subprocess.run(["diff", f"-U{context}", "--label", f"a/{PATH}", "--label", f"b/{PATH}",
                               "old", "new"], cwd=folder, capture_output=True)
        assert done.returncode in (0, 1), done.stderr
        return done.stdout.decode("utf-8")


def git_diff(old: bytes, new: bytes, context: int = 0, git_lines: bool = True) -> str:
    """`git diff -U<context>` of old and new, with or without its 'diff --git' and 'index' lines."""
    with tempfile.TemporaryDirectory() as folder:
        for side, data in (("a", old), ("b", new)):
            (Path(folder) / side).mkdir()
            (Path(folder) / side / PATH).write_bytes(data)
        done = subprocess.run(["git", "-c", "core.autocrlf=false", "diff", "--no-index", "--no-prefix",
                               f"-U{context}", f"a/{PATH}", f"b/{PATH}"], cwd=folder, capture_output=True)
        text = done.stdout.decode("utf-8")
    if not git_lines:
        text = "".join(line for line in apply.split_lines(text)
                       if not line.startswith(("diff --git ", "index ")))
    return text


OLD = b"a\nb\nc\nd\n"
ZERO_CONTEXT_EDITS = {
    "insert before line 1": b"new\na\nb\nc\nd\n",  # @@ -0,0 +1 @@
    "insert after line 1": b"a\nnew\nb\nc\nd\n",  # @@ -1,0 +2 @@
    "change line 1": b"A\nb\nc\nd\n",
    "change a middle line": b"a\nB\nc\nd\n",
    "change the last line": b"a\nb\nc\nD\n",
    "delete line 1": b"b\nc\nd\n",
    "delete a middle line": b"a\nc\nd\n",
    "delete the last line": b"a\nb\nc\n",
    "append": b"a\nb\nc\nd\ne\n",
    "drop the final newline": b"a\nb\nc\nd",
    "two edits": b"A\nb\nc\nD\n",
}


@pytest.mark.parametrize("edit", ZERO_CONTEXT_EDITS)
def test_a_zero_context_hunk_is_taken_at_the_line_it_names(edit):
    new = ZERO_CONTEXT_EDITS[edit]
    patch_text = apply.diff_file(PATH, OLD, new, context=0)
    assert apply_to(OLD, patch_text) == new


@needs_git
@needs_diff
@pytest.mark.parametrize("edit", ZERO_CONTEXT_EDITS)
def test_diff_U0_and_git_diff_U0_are_taken_as_git_apply_unidiff_zero_takes_them(edit):
    new = ZERO_CONTEXT_EDITS[edit]
    for patch_text in (gnu_diff(OLD, new), git_diff(OLD, new), git_diff(OLD, new, git_lines=False)):
        assert apply_to(OLD, patch_text) == new == git_apply(OLD, patch_text, "--unidiff-zero")


@needs_git
def test_an_insertion_at_line_0_goes_before_line_1_of_a_zero_context_patch():
    patch_text = f"--- a/{PATH}\n+++ b/{PATH}\n@@ -0,0 +1 @@\n+new\n"
    assert apply_to(b"x\n", patch_text) == b"new\nx\n" == git_apply(b"x\n", patch_text, "--unidiff-zero")
    assert apply_to(b"", patch_text) == b"new\n"


def test_in_a_patch_with_context_a_hunk_at_line_0_is_still_for_an_empty_file():
    """The patch's other file diff shows it was written with context: the hunk without any
    was made for an empty file (as git reads it without --unidiff-zero)."""
    patch_text = (f"--- a/g.py\n+++ b/g.py\n@@ -1,4 +1,4 @@\n a\n-b\n+B\n c\n d\n"
                  f"--- a/{PATH}\n+++ b/{PATH}\n@@ -0,0 +1 @@\n+new\n")
    tree = {"g.py": b"a\nb\nc\nd\ne\n", PATH: b"x\n"}
    with pytest.raises(ApplyError, match="so the file must be empty, but it has 1 line"):
        apply.apply_patch(tree, parse(patch_text))
    assert apply.apply_patch({**tree, PATH: b""}, parse(patch_text))[PATH] == b"new\n"


def test_in_a_patch_with_context_a_hunk_at_an_edge_must_stand_at_that_edge():
    """With context elsewhere in the patch, a hunk with none after its change reached the end of
    the file, and one that names line 1 with none before it was made at the top."""
    other = "--- a/g.py\n+++ b/g.py\n@@ -1,4 +1,4 @@\n-a\n+A\n b\n c\n d\n"
    tree = {"g.py": b"a\nb\nc\nd\n", PATH: b"a\nb\nc\nd\ne\nf\n"}
    short_end = other + f"--- a/{PATH}\n+++ b/{PATH}\n@@ -3,4 +3,4 @@\n c\n d\n e\n-f\n+F\n"
    assert apply.apply_patch(tree, parse(short_end))[PATH] == b"a\nb\nc\nd\ne\nF\n"
    with pytest.raises(ApplyError, match="must end at the end of the file"):
        apply.apply_patch({**tree, PATH: b"a\nb\nc\nd\ne\nf\ng\n"}, parse(short_end))
    short_top = other + f"--- a/{PATH}\n+++ b/{PATH}\n@@ -1,0 +2 @@\n+new\n"
    with pytest.raises(ApplyError, match="must start at the top of the file"):
        apply.apply_patch(tree, parse(short_top))


def test_a_zero_context_hunk_still_matches_byte_for_byte():
    patch_text = apply.diff_file(PATH, OLD, b"a\nB\nc\nd\n", context=0)
    with pytest.raises(ApplyError, match=r"found at line 3 \(\+1\)"):
        apply_to(b"top\n" + OLD, patch_text)


# ---------------------------------------------------------------------------- rebase at the edges


def test_rebase_carries_a_hunk_at_the_top_below_lines_added_above_it():
    patch = parse(apply.diff_file(PATH, OLD + b"e\n", b"A\nb\nc\nd\ne\n"))
    assert patch.files[0].hunks[0].ranges == "@@ -1,4 +1,4 @@"
    with pytest.raises(ApplyError, match="python apply.py rebase"):
        apply.apply_patch({PATH: b"top\n" + OLD + b"e\n"}, patch)
    tree, moves = apply.rebase_patch({PATH: b"top\n" + OLD + b"e\n"}, patch)
    assert tree[PATH] == b"top\nA\nb\nc\nd\ne\n"
    assert moves == [f"test.patch: {PATH}: hunk 1 @@ -1,4 +1,4 @@: moved +1 line"]


def test_rebase_carries_a_hunk_at_the_end_above_lines_added_below_it():
    patch = parse(apply.diff_file(PATH, b"z\n" + OLD, b"z\na\nb\nc\nD\n"))
    with pytest.raises(ApplyError, match="must end at the end of the file.*python apply.py rebase"):
        apply.apply_patch({PATH: b"z\n" + OLD + b"end\n"}, patch)
    tree, moves = apply.rebase_patch({PATH: b"z\n" + OLD + b"end\n"}, patch)
    assert tree[PATH] == b"z\na\nb\nc\nD\nend\n"
    assert len(moves) == 1 and "stays at line 2" in moves[0]


def test_rebase_still_refuses_a_hunk_without_old_text_away_from_its_place():
    patch_text = (f"--- a/g.py\n+++ b/g.py\n@@ -1,4 +1,4 @@\n-a\n+A\n b\n c\n d\n"
                  f"--- a/{PATH}\n+++ b/{PATH}\n@@ -0,0 +1 @@\n+new\n")
    with pytest.raises(ApplyError, match="must be empty"):
        apply.rebase_patch({"g.py": b"a\nb\nc\nd\n", PATH: b"x\n"}, parse(patch_text))


def test_rebase_command_rewrites_a_patch_of_the_spines_first_and_last_lines(project):  # noqa: F811
    project.add_patch("doc", '"""A tiny stand-in for the spine."""', '"""A tiny, wider stand-in."""')
    project.add_patch("main", "    print(train(int(sys.argv[1])))\n", "    print(train(2))\n")
    spine = "#!/usr/bin/env python3\n" + SPINE + "    print('done')\n"
    project.spine.write_text(spine)
    code, _, err = project.run("pin")
    assert code == 1 and "python apply.py rebase" in err
    out = project.ok("rebase")
    assert "patches/01-doc.patch: rebased" in out and "patches/02-main.patch: rebased" in out
    project.ok("check")
    project.ok("apply")
    expected = spine.replace('"""A tiny stand-in for the spine."""', '"""A tiny, wider stand-in."""')
    assert project.variant("main").read_text() == expected.replace("int(sys.argv[1])", "2")


# ---------------------------------------------------------------------------- properties


@settings(max_examples=100, deadline=None)
@given(edited_file())
def test_a_zero_context_diff_reproduces_the_edit(files):
    old, new = files
    patch_text = apply.diff_file(PATH, old, new, context=0)
    assert apply.apply_patch({PATH: old}, parse(patch_text))[PATH] == new


@needs_diff
@settings(max_examples=40, deadline=None)
@given(edited_file())
def test_gnu_diff_U0_reproduces_the_edit(files):
    old, new = files
    patch_text = gnu_diff(old, new)
    if patch_text:
        assert apply.apply_patch({PATH: old}, parse(patch_text))[PATH] == new


@needs_git
@settings(max_examples=40, deadline=None)
@given(edited_file())
def test_git_apply_unidiff_zero_agrees_on_zero_context_diffs(files):
    old, new = files
    patch_text = apply.diff_file(PATH, old, new, context=0)
    if patch_text and new:  # git reads a plain diff that empties a file as a deletion
        assert git_apply(old, patch_text, "--unidiff-zero") == new


@settings(max_examples=60, deadline=None)
@given(edited_file(), st.integers(min_value=1, max_value=20))
def test_rebase_carries_the_edit_over_lines_added_at_the_end(files, count):
    old, new = files
    if not old.endswith(b"\n"):
        return
    patch = apply.parse_patch(apply.diff_file(PATH, old, new).encode(), "random.patch")
    below = b"# a new line at the end\n" * count
    try:
        rebased, _ = apply.rebase_patch({PATH: old + below}, patch)
    except apply.ApplyError as error:  # a hunk's text stands at several places, or it ends the file
        assert "places" in str(error) or "ends the file" in str(error)
        return
    assert rebased[PATH] == new + below
    assert len(REAL_LINES) > 3  # the edit was of a real file, not a toy
