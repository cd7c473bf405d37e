"""apply.py's reader, strict applier and canonical writer, on small hand-made patches."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import apply
from apply import ApplyError


def parse(text: str) -> apply.Patch:
    return apply.parse_patch(text.encode(), "test.patch")


def apply_to(old: bytes, patch_text: str, path: str = "f.py") -> bytes:
    return apply.apply_patch({path: old}, parse(patch_text))[path]


def fails(old: bytes, patch_text: str) -> str:
    with pytest.raises(ApplyError) as error:
        apply_to(old, patch_text)
    return str(error.value)


def refused(patch_text: str) -> str:
    with pytest.raises(ApplyError) as error:
        parse(patch_text)
    return str(error.value)


# The five end-of-file cases, each as git writes it: applying the patch to old gives new, and
# the canonical writer writes exactly that patch.
END_OF_FILE_CASES = {
    "both end with a newline": (
        b"a\nb\nc\n",
        b"a\nB\nc\n",
        "--- a/f.py\n+++ b/f.py\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n",
    ),
    "old without, new with": (
        b"a\nb\nc",
        b"a\nb\nc\n",
        "--- a/f.py\n+++ b/f.py\n@@ -1,3 +1,3 @@\n a\n b\n-c\n\\ No newline at end of file\n+c\n",
    ),
    "old with, new without": (
        b"a\nb\nc\n",
        b"a\nb\nc",
        "--- a/f.py\n+++ b/f.py\n@@ -1,3 +1,3 @@\n a\n b\n-c\n+c\n\\ No newline at end of file\n",
    ),
    "neither, last line changed": (
        b"a\nb\nc",
        b"a\nb\nC",
        "--- a/f.py\n+++ b/f.py\n@@ -1,3 +1,3 @@\n a\n b\n-c\n\\ No newline at end of file\n"
        "+C\n\\ No newline at end of file\n",
    ),
    "neither, last line kept as context": (
        b"a\nb\nc\nd",
        b"A\nb\nc\nd",
        "--- a/f.py\n+++ b/f.py\n@@ -1,4 +1,4 @@\n-a\n+A\n b\n c\n d\n\\ No newline at end of file\n",
    ),
}


@pytest.mark.parametrize("case", END_OF_FILE_CASES)
def test_end_of_file_cases_apply_and_are_written_as_git_does(case):
    old, new, patch_text = END_OF_FILE_CASES[case]
    assert apply_to(old, patch_text) == new
    assert apply.diff_file("f.py", old, new) == patch_text


def test_new_file_without_trailing_newline():
    patch_text = "--- /dev/null\n+++ b/g.py\n@@ -0,0 +1,2 @@\n+x = 1\n+y = 2\n\\ No newline at end of file\n"
    tree = apply.apply_patch({"f.py": b"a\n"}, parse(patch_text))
    assert tree == {"f.py": b"a\n", "g.py": b"x = 1\ny = 2"}
    assert apply.diff_file("g.py", None, b"x = 1\ny = 2") == patch_text


def test_unterminated_new_line_must_end_the_file():
    patch_text = "--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+A\n\\ No newline at end of file\n"
    assert "goes on after line 1" in fails(b"a\nb\n", patch_text)


def test_crlf_file_stays_crlf():
    old = b"def f():\r\n    return 1\r\n\r\nx = f()\r\n"
    new = b"def f():\r\n    return 2\r\n\r\nx = f()\r\n"
    patch_text = apply.diff_file("f.py", old, new)
    assert "-    return 1\r\n+    return 2\r\n" in patch_text
    assert patch_text.startswith("--- a/f.py\n+++ b/f.py\n@@ -1,4 +1,4 @@\n")  # LF structure
    assert apply_to(old, patch_text) == new


def test_crlf_patch_does_not_apply_to_an_lf_file():
    patch_text = apply.diff_file("f.py", b"a\r\nb\r\n", b"a\r\nB\r\n")
    assert "expected 'a\\r\\n', found 'a\\n'" in fails(b"a\nb\n", patch_text)


@pytest.mark.parametrize("odd", ["\x0c", "\x1c", "\u2028", "\r"])
def test_line_breaks_other_than_newline_stay_inside_their_line(odd):
    old = f"one\ntwo {odd} still two\nthree\n".encode()
    new = f"one\ntwo {odd} still two\nTHREE\n".encode()
    patch_text = apply.diff_file("f.py", old, new)
    assert f" two {odd} still two\n-three\n" in patch_text
    assert apply_to(old, patch_text) == new


def test_blank_context_lines():
    old = b"a\n\n\nb\n\nc\n"
    new = b"a\n\n\nB\n\nc\n"
    patch_text = apply.diff_file("f.py", old, new)
    assert patch_text.endswith("@@ -1,6 +1,6 @@\n a\n \n \n-b\n+B\n \n c\n")
    assert apply_to(old, patch_text) == new


def test_blank_context_line_that_lost_its_space_is_refused():
    message = refused("--- a/f.py\n+++ b/f.py\n@@ -1,3 +1,3 @@\n a\n\n-b\n+B\n")
    assert "hunk 1" in message and "body has 1 and 1" in message


def test_several_files_in_path_order():
    old = {"b.py": b"b\n", "a.py": b"a\n", "c.py": b"c\n"}
    new = {"b.py": b"B\n", "a.py": b"A\n", "c.py": b"c\n", "d.py": b"d\n"}
    patch_text = apply.diff_trees(old, new)
    assert [line for line in patch_text.splitlines() if line.startswith("+++")] == [
        "+++ b/a.py", "+++ b/b.py", "+++ b/d.py",
    ]
    assert apply.apply_patch(old, parse(patch_text)) == new


def test_section_names_the_nearest_def_or_class_above_the_hunk():
    old = b"class A:\n    async def f(self):\n        x = 1\n        y = 2\n        z = 3\n        w = 4\n"
    new = old.replace(b"w = 4", b"w = 5")
    assert "@@ -3,4 +3,4 @@     async def f(self):\n" in apply.diff_file("f.py", old, new)
    assert "@@ -1,6 +1,6 @@\n class A:" in apply.diff_file("f.py", old, old.replace(b"x = 1", b"x = 0"))


def test_counts_of_one_are_left_out_and_read_back():
    old, new = b"a\nb\nc\nd\ne\nf\ng\nh\n", b"a\nb\nc\nd\ne\nf\ng\nh\ni\n"
    patch_text = apply.diff_file("f.py", old, new)
    assert "@@ -6,3 +6,4 @@" in patch_text
    one_line = "--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n"
    assert apply.diff_file("f.py", b"a\n", b"b\n") == one_line
    assert apply_to(b"a\n", one_line) == b"b\n"


def test_hunks_merge_when_their_context_touches():
    old = b"".join(b"line %d\n" % i for i in range(30))
    gap_6 = old.replace(b"line 5\n", b"five\n").replace(b"line 12\n", b"twelve\n")
    gap_7 = old.replace(b"line 5\n", b"five\n").replace(b"line 13\n", b"thirteen\n")
    assert apply.diff_file("f.py", old, gap_6).count("@@ -") == 1
    assert apply.diff_file("f.py", old, gap_7).count("@@ -") == 2


def test_new_file_whose_target_exists_is_refused():
    patch = parse("--- /dev/null\n+++ b/f.py\n@@ -0,0 +1 @@\n+x\n")
    with pytest.raises(ApplyError, match="creates this file, but the tree already has it"):
        apply.apply_patch({"f.py": b"x\n"}, patch)


def test_patch_on_a_missing_file_is_refused():
    patch = parse("--- a/gone.py\n+++ b/gone.py\n@@ -1 +1 @@\n-x\n+y\n")
    with pytest.raises(ApplyError, match="gone.py: the patch changes this file, but the tree has no"):
        apply.apply_patch({"f.py": b"x\n"}, patch)


@pytest.mark.parametrize("header", ["@@ -3,3 +3,2 @@", "@@ -3 +3,2 @@", "@@ -3,2 +3 @@", "@@ -3,2 +3,3 @@"])
def test_wrong_hunk_counts_are_refused_naming_the_hunk(header):
    message = refused(f"--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,2 @@\n-a\n+A\n b\n{header}\n c\n-d\n+D\n")
    assert f"f.py: hunk 2 '{header}' at patch line 7: its header counts" in message
    assert "but its body has 2 and 2" in message


def test_count_too_small_is_refused_rather_than_cutting_the_hunk_short():
    message = refused("--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+A\n b\n")
    assert "hunk 1 '@@ -1 +1 @@'" in message and "body has 2 and 2" in message


def test_drift_is_refused_with_its_offset():
    patch_text = "--- a/f.py\n+++ b/f.py\n@@ -2,3 +2,3 @@\n b\n-c\n+C\n d\n"
    assert apply_to(b"a\nb\nc\nd\n", patch_text) == b"a\nb\nC\nd\n"
    drifted = b"".join(b"new %d\n" % i for i in range(8)) + b"a\nb\nc\nd\n"
    message = fails(drifted, patch_text)
    assert "f.py: hunk 1 '@@ -2,3 +2,3 @@' does not apply at file line 2 (patch line 4): " \
           "expected 'b\\n', found 'new 1\\n'" in message
    assert "\n" not in message  # one line
    assert "found at line 10 (+8)" in message and "drifted" in message


def test_conflict_is_refused_saying_found_nowhere():
    patch_text = "--- a/f.py\n+++ b/f.py\n@@ -2,3 +2,3 @@\n b\n-c\n+C\n d\n"
    message = fails(b"a\nb\nc, changed upstream\nd\n", patch_text)
    assert "at file line 3 (patch line 5): expected 'c\\n', found 'c, changed upstream\\n'" in message
    assert "found nowhere" in message


def test_hunk_past_the_end_of_the_file():
    message = fails(b"a\n", "--- a/f.py\n+++ b/f.py\n@@ -2 +2 @@\n-b\n+B\n")
    assert "found the end of the file" in message


def test_new_start_must_match_the_hunks_before_it():
    message = fails(b"a\nb\nc\nd\ne\n", "--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,3 @@\n-a\n+A\n+A2\n b\n"
                                       "@@ -4,2 +4,2 @@\n-d\n+D\n e\n")
    assert "hunk 2" in message and "starts at line 5, not 4" in message


def test_whitespace_is_not_forgiven():
    assert "found '  b\\n'" in fails(b"a\n  b\n", "--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n")


HEADER = (
    "Description: Mixture of experts: route each token to k of n MLPs\n"
    " A second line of description.\n"
    " .\n"
    " After an empty line.\n"
    "Part: 2\n"
    "Flags: --n-expert 1 --top-k 1\n"
    "Metrics: load_balance, expert_entropy\n"
    "Last-Update: 2025-01-31\n"
    "\n"
)


def test_header_fields_are_parsed_and_kept_verbatim():
    patch = parse(HEADER + "--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n")
    assert patch.header == HEADER
    assert patch.fields == {
        "Description": "Mixture of experts: route each token to k of n MLPs\n"
        "A second line of description.\n\nAfter an empty line.",
        "Part": "2",
        "Flags": "--n-expert 1 --top-k 1",
        "Metrics": "load_balance, expert_entropy",
        "Last-Update": "2025-01-31",
    }


def test_header_only_patch_is_an_empty_diff():
    patch = parse(HEADER)
    assert patch.files == () and apply.apply_patch({"f.py": b"a\n"}, patch) == {"f.py": b"a\n"}


@pytest.mark.parametrize("line", ["+++ more", "@@ -1 +1 @@"])
def test_header_line_that_reads_as_diff_structure_is_refused(line):
    message = refused(f"Description: x\n{line}\n--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n")
    assert "header line 2 starts with" in message and "reword it" in message


def test_header_line_that_starts_a_file_diff_is_refused():
    """'--- ' ends the header; without a '+++ ' line after it, it was meant as header text."""
    message = refused("Description: x\n--- a note\n--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n")
    assert "patch line 2: '--- a note' starts a file diff, but no '+++ ' line follows" in message
    assert "reword it" in message


def test_stray_line_after_the_last_hunk_is_refused():
    message = refused("--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\nstray words\n")
    assert "patch line 6: 'stray words\\n' does not parse" in message


def test_stray_blank_line_after_the_last_hunk_is_refused():
    assert "stray blank line after hunk 1" in refused("--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n\n")


def test_truncated_patch_is_refused():
    assert "no newline (truncated?)" in refused("--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b")


def test_misspelt_no_newline_marker_is_refused():
    assert "misplaced or misspelt" in refused("--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n\\ No newline\n+b\n")


@pytest.mark.parametrize(
    "files, why",
    [
        ("--- a/f.py\n+++ /dev/null\n", "deleting files is not supported"),
        ("--- a/f.py\n+++ b/g.py\n", "renames are not supported"),
        ("--- a/out/f.py\n+++ b/out/f.py\n", "is not allowed"),
        ("--- a/../f.py\n+++ b/../f.py\n", "is not allowed"),
    ],
)
def test_unsupported_file_diffs_are_refused(files, why):
    assert why in refused(f"{files}@@ -1 +1 @@\n-a\n+b\n")


def test_writer_refuses_deleted_files_and_empty_new_files():
    with pytest.raises(ApplyError, match="deleting files is not supported"):
        apply.diff_trees({"f.py": b"a\n"}, {})
    with pytest.raises(ApplyError, match="empty new file"):
        apply.diff_trees({}, {"f.py": b""})


def test_split_lines_splits_on_newline_only():
    assert apply.split_lines("a\r\nb\x0cc\u2028d\ne") == ["a\r\n", "b\x0cc\u2028d\n", "e"]
    assert apply.split_lines("") == [] and apply.split_lines("\n") == ["\n"]


def test_ignore_rule():
    ignored = [(".stamp.json", False), ("__pycache__", True), ("m.pyc", False), ("ckpt.pt", False),
               ("metrics.jsonl", False), ("out", True), ("out-moe", True)]
    kept = [("makemore.py", False), ("out.py", False), ("models", True), ("notes.txt", False)]
    assert all(apply.is_ignored(name, is_dir) for name, is_dir in ignored)
    assert not any(apply.is_ignored(name, is_dir) for name, is_dir in kept)


# ---------------------------------------------------------------------------- checked against git apply


def git_apply(old: bytes, patch_text: str, path: str = "f.py") -> bytes | None:
    """What git makes of the patch applied to old (outside any repository), or None if it refuses."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / path).write_bytes(old)
        (Path(folder) / "p.patch").write_bytes(patch_text.encode())
        env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(Path(folder).parent)}
        done = subprocess.run(["git", "-c", "core.autocrlf=false", "apply", "p.patch"],
                              cwd=folder, env=env, capture_output=True)
        return (Path(folder) / path).read_bytes() if done.returncode == 0 else None


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


@needs_git
def test_lines_that_start_with_dashes_and_pluses_are_read_by_the_hunk_counts():
    """A removed '-- x' reads '--- x' and an added '++ x' reads '+++ x': inside a hunk whose
    counts are not used up they are hunk lines, not a file header, as git reads them."""
    old, new = b"x\n-- import io\ny\n", b"x\n++ import io\ny\n"
    patch_text = apply.diff_file("f.py", old, new)
    assert "\n--- import io\n+++ import io\n" in patch_text
    assert apply_to(old, patch_text) == new == git_apply(old, patch_text)
    # as `diff -u` writes it, with timestamps after the names
    stamped = patch_text.replace("--- a/f.py\n", "--- a/f.py\t2025-01-31 10:00:00.000 +0000\n", 1)
    stamped = stamped.replace("+++ b/f.py\n", "+++ b/f.py\t2025-01-31 10:00:01.000 +0000\n", 1)
    assert apply_to(old, stamped) == new == git_apply(old, stamped)


@needs_git
@pytest.mark.parametrize("header", ["@@ -0,\u0660 +1 @@", "@@ -\u0661 +\u0661 @@", "@@ -1 +\uff11 @@"])
def test_hunk_headers_take_ascii_digits_only(header):
    patch_text = f"--- a/f.py\n+++ b/f.py\n{header}\n-a\n+x\n"
    assert "not a hunk header" in refused(patch_text)
    assert git_apply(b"a\n", patch_text) is None


@needs_git
@pytest.mark.parametrize("old, patch_text, why", [
    # no context after the change (where it has some before): it reached the end of the file,
    # and must still end there
    (b"a\nb\nc\nd\n", "--- a/f.py\n+++ b/f.py\n@@ -1,3 +1,3 @@\n a\n b\n-c\n+C\n",
     "must end at the end of the file, but the file goes on after line 3"),
    # (a patch without any context is a `diff -U0` one, taken at the lines it names: see
    # test_apply_edges.py)
])
def test_a_hunk_at_an_edge_of_the_file_must_match_at_that_edge(old, patch_text, why):
    assert why in fails(old, patch_text)
    assert git_apply(old, patch_text) is None


@needs_git
def test_hunks_at_the_edges_apply_where_git_applies_them():
    assert apply_to(b"", "--- a/f.py\n+++ b/f.py\n@@ -0,0 +1 @@\n+new\n") == b"new\n"
    at_end = "--- a/f.py\n+++ b/f.py\n@@ -2,3 +2,3 @@\n b\n c\n-d\n+D\n"
    assert apply_to(b"a\nb\nc\nd\n", at_end) == b"a\nb\nc\nD\n" == git_apply(b"a\nb\nc\nd\n", at_end)


def test_an_old_range_from_line_0_must_be_empty():
    assert "line 0" in refused("--- a/f.py\n+++ b/f.py\n@@ -0,1 +1 @@\n-a\n+b\n")


@needs_git
def test_rebase_carries_a_hunk_at_an_edge_of_the_file_across_lines_added_at_that_edge():
    """Lines added below a hunk that ended the file, or above one that started it: its old text
    stands once, and rebase carries it there (the rewritten patch anchors it with context)."""
    patch = parse("--- a/f.py\n+++ b/f.py\n@@ -1,3 +1,3 @@\n a\n b\n-c\n+C\n")
    assert apply.rebase_patch({"f.py": b"a\nb\nc\nd\n"}, patch)[0]["f.py"] == b"a\nb\nC\nd\n"
    assert apply.rebase_patch({"f.py": b"top\na\nb\nc\n"}, patch)[0]["f.py"] == b"top\na\nb\nC\n"
    patch = parse("--- a/f.py\n+++ b/f.py\n@@ -2,3 +2,3 @@\n b\n c\n-d\n+D\n")
    assert apply.rebase_patch({"f.py": b"top\na\nb\nc\nd\n"}, patch)[0]["f.py"] == b"top\na\nb\nc\nD\n"
    assert apply.rebase_patch({"f.py": b"a\nb\nc\nd\ne\n"}, patch)[0]["f.py"] == b"a\nb\nc\nD\ne\n"
    with pytest.raises(ApplyError, match="stands at 2 places"):  # still no guessing
        apply.rebase_patch({"f.py": b"b\nc\nd\nb\nc\nd\n"}, patch)


GIT_DIFF = (
    "diff --git a/f.py b/f.py\n"
    "index 3b18e51..e69de29 100644\n"
    "--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n"
    "diff --git a/g.py b/g.py\n"
    "new file mode 100644\n"
    "index 0000000..89b24ec\n"
    "--- /dev/null\n+++ b/g.py\n@@ -0,0 +1 @@\n+g\n"
)


@needs_git
def test_git_diff_output_is_taken():
    tree = apply.apply_patch({"f.py": b"a\nb\n"}, parse(GIT_DIFF))
    assert tree == {"f.py": b"a\nB\n", "g.py": b"g\n"}
    assert git_apply(b"a\nb\n", GIT_DIFF) == b"a\nB\n"


def test_quilt_index_lines_are_taken():
    quilt = "Index: b/f.py\n" + "=" * 67 + "\n--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n"
    assert apply_to(b"a\nb\n", HEADER + quilt) == b"a\nB\n"
    assert parse(HEADER + quilt).header == HEADER


@pytest.mark.parametrize("line, why", [
    ("deleted file mode 100644", "deleting files is not supported"),
    ("old mode 100644", "mode changes are not supported"),
    ("new file mode 100755", "file modes"),
    ("similarity index 90%", "renames and copies are not supported"),
    ("rename from f.py", "renames and copies are not supported"),
    ("Binary files a/f.py and b/f.py differ", "binary diffs are not supported"),
    ("weird stuff", "not a line of a git diff header"),
])
def test_git_headers_of_unsupported_changes_are_refused_saying_why(line, why):
    message = refused(f"diff --git a/f.py b/f.py\n{line}\n--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n")
    assert why in message and "patch line 2" in message


def test_a_git_header_must_name_the_file_its_diff_changes():
    message = refused("diff --git a/g.py b/g.py\n--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n")
    assert "'diff --git a/g.py b/g.py' names another file than its diff (f.py)" in message


def test_a_git_header_without_a_diff_is_refused():
    message = refused("diff --git a/f.py b/f.py\nnew file mode 100644\nindex 0000000..e69de29\n")
    assert "no '--- ' and '+++ ' lines" in message


def test_crlf_patch_is_refused_saying_crlf_line_endings():
    crlf = "--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n".replace("\n", "\r\n")
    message = refused(HEADER.replace("\n", "\r\n") + crlf)
    assert "CRLF line endings" in message and "patch line 10" in message


def test_an_lf_file_and_a_crlf_hunk_are_told_apart():
    patch_text = apply.diff_file("f.py", b"a\r\nb\r\n", b"a\r\nB\r\n")
    assert "CRLF line endings" in fails(b"a\nb\n", patch_text)


CONTROLS = ["\x1b[31m", "\r", "\x0c", "\x00", "\x85", "\u2028"]


@pytest.mark.parametrize("control", CONTROLS)
def test_messages_show_control_characters_escaped(control):
    renamed = f"--- a/f{control}.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n"
    conflict = f"--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a{control}\n+b\n"
    header = f"Description: x\n@@ {control}\n--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n"
    stray = f"--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-a\n+b\n{control}\n"
    messages = [refused(renamed), fails(b"a\n", conflict), refused(header), refused(stray)]
    for message in messages:
        assert message.isprintable(), message


@needs_git
def test_file_names_inside_a_hunk_whose_counts_run_on_are_hunk_lines_as_git_reads_them():
    patch_text = "--- a/f.py\n+++ b/f.py\n@@ -1,2 +1,2 @@\n-a\n+A\n--- a/g.py\n+++ b/g.py\n"
    (file,) = parse(patch_text).files
    assert [line.text for line in file.hunks[0].lines] == ["a\n", "A\n", "-- a/g.py\n", "++ b/g.py\n"]
    old = b"a\n-- a/g.py\n"
    assert apply_to(old, patch_text) == b"A\n++ b/g.py\n" == git_apply(old, patch_text)


# ---------------------------------------------------------------------------- what a hunk changes

CAPTIONED = '''import os


class A:
    def f(self):
        return 1

    def g(self,
          x):
        return 2


def h():
    return 3
'''


def caption(new: str, old: str = CAPTIONED, with_file: bool = True) -> list[str]:
    """The caption of each hunk of the diff from old to new."""
    (file,) = parse(apply.diff_file("f.py", old.encode(), new.encode(), context=1)).files
    old_lines = apply.split_lines(old) if with_file else None
    return [apply.hunk_changes(hunk, apply.hunk_scopes(hunk, old_lines)).caption for hunk in file.hunks]


@pytest.mark.parametrize("new, captions", [
    (CAPTIONED.replace("return 2", "return 22"), ["edits A.g"]),
    (CAPTIONED.replace("x):", "x, y):"), ["edits A.g"]),  # a signature spread over two lines
    (CAPTIONED.replace("def f(self):", "def f(self, y):"), ["edits A.f"]),
    (CAPTIONED.replace("import os\n", "import os\nimport sys\n"), ["adds top-level code"]),
    (CAPTIONED.replace("import os\n", "import sys\n"), ["edits top-level code"]),
    (CAPTIONED.replace("\n\ndef h", "\n\n@cache\ndef k():\n    return 4\n\n\ndef h"), ["adds k"]),
    (CAPTIONED.replace("\n\n\ndef h", "\n\n    def k(self):\n        return 4\n\n\ndef h"), ["adds A.k"]),
    (CAPTIONED.replace("\n\nclass A", "\n\nclass B:\n    def k(self):\n        return 4\n\n\nclass A"),
     ["adds B"]),
    (CAPTIONED.replace("\n\n\ndef h():\n    return 3\n", "\n"), ["removes h"]),
    (CAPTIONED.replace("return 1", "return 11").replace("\n\n\ndef h", "\n\n\ndef k():\n    pass\n\n\ndef h"),
     ["edits A.f", "adds k"]),
    (CAPTIONED.replace("return 3", "return 33\n\n\ndef k():\n    pass"), ["adds k; edits h"]),
    (CAPTIONED.replace("        return 2", "        y = x\n        return y"), ["edits A.g"]),
])
def test_a_hunk_is_captioned_by_what_it_adds_edits_and_removes(new, captions):
    assert caption(new) == captions


STRINGY = "\n".join([
    "class A:",
    "    def f(self):",
    '        """A docstring with an open bracket (see below,',
    'and a line at the left margin."""',
    "        total = 1 + \\",
    "    2",
    "        return total",
    "",
    "    def g(self):",
    "        return \"(\" + \'\'\'",
    "(\'\'\' + \"#\"  # an unmatched ( in strings and comments",
    "",
    "",
    "def h():",
    "    return 3",
    "",
])


@pytest.mark.parametrize("old, new, captions", [
    ("        return total\n", "        return total + 1\n", ["edits A.f"]),
    ("        return \"(\" + '''\n", "        return \"[\" + '''\n", ["edits A.g"]),
    ("    return 3\n", "    return 4\n", ["edits h"]),
])
def test_strings_comments_and_continued_lines_do_not_end_a_definition(old, new, captions):
    assert caption(STRINGY.replace(old, new), old=STRINGY) == captions


def test_without_the_file_a_caption_starts_from_the_hunks_section():
    new = CAPTIONED.replace("return 2", "return 22")
    assert caption(new, with_file=False) == ["edits g"]  # git's section names g, not its class


def test_a_part_of_a_hunk_is_captioned_by_its_own_lines():
    new = CAPTIONED.replace("\n\ndef h", "\n\nclass B:\n    def k(self):\n        return 4\n\n"
                                        "    def m(self):\n        return 5\n\n\ndef h")
    (file,) = parse(apply.diff_file("f.py", CAPTIONED.encode(), new.encode())).files
    hunk = file.hunks[0]
    scopes = apply.hunk_scopes(hunk, apply.split_lines(CAPTIONED))
    texts = [line.text for line in hunk.lines]
    at_m, at_return_5 = texts.index("    def m(self):\n"), texts.index("        return 5\n")
    assert apply.hunk_changes(hunk, scopes, range(0, at_m)).caption == "adds B"
    assert apply.hunk_changes(hunk, scopes, range(at_m, len(texts))).caption == "adds B.m"
    assert apply.hunk_changes(hunk, scopes, range(at_return_5, len(texts))).caption == "adds B.m (continued)"


def test_a_comment_that_continues_a_class_is_no_news_beside_what_the_part_begins():
    new = CAPTIONED.replace("\n\ndef h", "\n\nclass B:\n    def k(self):\n        return 4\n\n"
                                        "    # the second one\n    def m(self):\n        return 5\n\n\ndef h")
    (file,) = parse(apply.diff_file("f.py", CAPTIONED.encode(), new.encode())).files
    hunk = file.hunks[0]
    scopes = apply.hunk_scopes(hunk, apply.split_lines(CAPTIONED))
    at_comment = [line.text for line in hunk.lines].index("    # the second one\n")
    assert apply.hunk_changes(hunk, scopes, range(at_comment, len(hunk.lines))).caption == "adds B.m"
