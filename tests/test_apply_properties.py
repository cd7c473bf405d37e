"""Properties of apply.py's canonical diff and strict applier, on random edits of a real file."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import apply

ROOT = Path(__file__).resolve().parent.parent
# The spine when it exists, else this tool itself: either way, a real Python file.
REAL_FILE = next(p for p in (ROOT / "upstream" / "makemore.py", ROOT / "apply.py") if p.is_file())
REAL_LINES = apply.split_lines(REAL_FILE.read_text(encoding="utf-8"))
PATH = "makemore.py"

# Short lines, heavy on the characters that trip up line handling.
text = st.text(alphabet=st.sampled_from(list("ab ():=#\t\r\x0c\x1c\u2028\u00e9")), max_size=8)
new_lines = st.lists(st.tuples(text, st.sampled_from(["\n", "\r\n"])).map("".join), min_size=1, max_size=3)
position = st.one_of(st.just(0), st.just(-1), st.integers(min_value=0, max_value=10**6))
edit = st.tuples(st.sampled_from(["insert", "delete", "replace"]), position, st.integers(1, 4), new_lines)


@st.composite
def edited_file(draw) -> tuple[bytes, bytes]:
    """(old, new): the real file, maybe without its final newline, and a random edit of it."""
    old = list(REAL_LINES)
    if draw(st.booleans()):
        old[-1] = old[-1].rstrip("\n")
    new = list(old)
    for kind, where, count, lines in draw(st.lists(edit, min_size=1, max_size=5)):
        at = len(new) if where == -1 else where % (len(new) + 1)
        if kind == "insert":
            new[at:at] = lines
        elif kind == "delete":
            del new[at : at + count]
        else:
            new[at : at + count] = lines
    if draw(st.booleans()) and new:  # toggle the final newline
        new[-1] = new[-1][:-1] if new[-1].endswith("\n") else new[-1] + "\n"
    return "".join(old).encode(), "".join(new).encode()


def git_apply(old: bytes, patch_text: str, check: bool = True, unidiff_zero: bool = False) -> bytes | None:
    """What git makes of the patch, applied to old outside any repository; when git refuses,
    a failed test (check) or None. A patch without context is applied as git applies those,
    with --unidiff-zero."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / PATH).write_bytes(old)
        (Path(folder) / "p.patch").write_text(patch_text, encoding="utf-8", newline="")
        env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(Path(folder).parent)}
        for args in (["--check"], []):
            args += ["--unidiff-zero"] * unidiff_zero
            done = subprocess.run(["git", "-c", "core.autocrlf=false", "apply", *args, "p.patch"],
                                  cwd=folder, env=env, check=check, capture_output=True)
            if done.returncode:
                return None
        return (Path(folder) / PATH).read_bytes()


@st.composite
def changed_target(draw, old: bytes) -> bytes:
    """old as a patch may meet it later: as it was, or with lines added at the top, at the end or
    in between, a line changed or removed, or nothing left."""
    lines = apply.split_lines(old.decode("utf-8"))
    at = draw(st.integers(0, len(lines)))
    added = ["# added\n"] * draw(st.integers(1, 3))
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"  # so that added lines stay lines of their own
    kind = draw(st.sampled_from(["same", "top", "end", "insert", "change", "remove", "empty"]))
    changed = {
        "same": lambda: apply.split_lines(old.decode("utf-8")),
        "top": lambda: added + lines,
        "end": lambda: lines + added,
        "insert": lambda: lines[:at] + added + lines[at:],
        "change": lambda: lines[:at] + ["# changed\n"] + lines[at + 1 :],
        "remove": lambda: lines[:at] + lines[at + 1 :],
        "empty": lambda: [],
    }[kind]()
    return "".join(changed).encode()


@settings(max_examples=150, deadline=None)
@given(edited_file())
def test_strict_apply_reproduces_the_edit_byte_for_byte(files):
    old, new = files
    patch_text = apply.diff_file(PATH, old, new)
    patch = apply.parse_patch(patch_text.encode(), "random.patch")
    result = apply.apply_patch({PATH: old}, patch)[PATH]
    assert result == new
    assert apply.diff_file(PATH, old, result) == patch_text  # re-diffing gives the same text


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@settings(max_examples=60, deadline=None)
@given(edited_file())
def test_git_apply_accepts_the_canonical_diff_and_agrees(files):
    old, new = files
    if old == new or not new:  # git reads a plain diff that empties a file as a deletion
        return
    assert git_apply(old, apply.diff_file(PATH, old, new)) == new


@settings(max_examples=60, deadline=None)
@given(edited_file(), st.integers(min_value=1, max_value=20))
def test_a_shifted_file_is_refused_as_drift(files, shift):
    old, new = files
    patch_text = apply.diff_file(PATH, old, new)
    if not patch_text:
        return
    patch = apply.parse_patch(patch_text.encode(), "random.patch")
    shifted = b"# a new line on top\n" * shift + old
    with pytest.raises(apply.ApplyError, match="its old text is found at line"):
        apply.apply_patch({PATH: shifted}, patch)


@settings(max_examples=60, deadline=None)
@given(edited_file(), st.integers(min_value=1, max_value=20))
def test_rebase_carries_the_edit_over_a_shift(files, shift):
    """Lines added on top of the file move every hunk down; rebase puts the same edit below them."""
    old, new = files
    patch = apply.parse_patch(apply.diff_file(PATH, old, new).encode(), "random.patch")
    on_top = b"# a new line on top\n" * shift
    try:
        rebased, _ = apply.rebase_patch({PATH: on_top + old}, patch)
    except apply.ApplyError as error:  # a hunk's text stands at several places
        assert "places" in str(error)
        return
    assert rebased[PATH] == on_top + new


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@settings(max_examples=80, deadline=None)
@given(edited_file(), st.sampled_from([0, 1, 3]), st.data())
def test_whatever_the_strict_applier_takes_git_applies_the_same_way(files, context, data):
    """A patch applies exactly where it was made or not at all: wherever we apply a patch (with
    any context, to a file changed since), git applies it too, with the same result."""
    old, new = files
    patch_text = apply.diff_file(PATH, old, new, context=context)
    if not patch_text or not new:  # git reads a plain diff that empties a file as a deletion
        return
    target = data.draw(changed_target(old))
    patch = apply.parse_patch(patch_text.encode(), "random.patch")
    try:
        ours = apply.apply_patch({PATH: target}, patch)
    except apply.ApplyError:
        return
    without_context = all(hunk.width == 0 for file in patch.files for hunk in file.hunks)
    assert git_apply(target, patch_text, check=False, unidiff_zero=without_context) == ours[PATH]
