"""apply.py's commands, run through main() on small projects in temporary folders."""

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import apply

SPINE = '''"""A tiny stand-in for the spine."""

import sys


def train(steps):
    loss = 0.0
    seen = 0
    for step in range(steps):
        loss += step
        seen += 1
    mean = loss / max(seen, 1)
    print("seen", seen)
    print("mean", mean)
    return loss


def evaluate(loss):
    scale = 1.0
    offset = 0.0
    return scale * loss + offset


class Model:
    def __init__(self, width):
        self.width = width
        self.depth = 1
        self.name = "model"

    def forward(self, x):
        return x * self.width


if __name__ == "__main__":
    print(train(int(sys.argv[1])))
'''

HEADER = (
    "Description: Wider: scale the model's output by two\n"
    " Continuation line, with a non-ASCII character: \u00e9.\n"
    "Part: 1\r\n"  # a CRLF line, to show the header is kept byte for byte
    "Flags: --wide 0\n"
    "Metrics: width\n"
    "Last-Update: 2025-01-31\n"
    "\n"
)


class Project:
    """A temporary project, and main() run on it as the command line would."""

    def __init__(self, root: Path, capsys):
        self.root, self.capsys = root, capsys
        self.spine = root / "upstream" / "makemore.py"
        self.spine.parent.mkdir()
        self.spine.write_text(SPINE)
        (root / "patches").mkdir()
        (root / "patches" / "series").write_text("# the series\n")

    def run(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = apply.main(list(argv), root=self.root)
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv: str) -> str:
        code, out, err = self.run(*argv)
        assert code == 0, err
        return out

    def variant(self, name: str) -> Path:
        return self.root / "variants" / name / "makemore.py"

    def patch(self, name: str) -> Path:
        (path,) = (self.root / "patches").glob(f"*-{name}.patch")
        return path

    def series(self) -> list[str]:
        return (self.root / "patches" / "series").read_text().splitlines()

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.variant(name)
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))

    def fill_header(self, name: str, header: str = "") -> None:
        """Write the header that `new` left as a template to fill in."""
        self.patch(name).write_text(header or f"Description: {name}: a test patch\nPart: 1\n\n")

    def add_patch(self, name: str, old: str, new: str, header: str = "") -> None:
        """new NAME, fill in its header, edit its variant, refresh: the way people make a patch."""
        self.ok("new", name)
        self.fill_header(name, header)
        self.edit(name, old, new)
        self.ok("refresh", name)


@pytest.fixture
def project(tmp_path, capsys):
    project = Project(tmp_path, capsys)
    project.ok("pin")
    return project


def git_apply(patch: Path, tree: dict[str, bytes], folder: Path) -> dict[str, bytes]:
    """Apply patch to tree with git, outside any repository."""
    folder.mkdir()
    for path, data in tree.items():
        (folder / path).write_bytes(data)
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(folder.parent)}
    for args in (["--check"], []):
        subprocess.run(["git", "-c", "core.autocrlf=false", "apply", *args, str(patch)],
                       cwd=folder, env=env, check=True, capture_output=True)
    return apply.read_tree(folder)


@pytest.mark.parametrize("argv", [["check"], ["apply"], [], ["status"], ["new", "x"], ["diff", "x"],
                                  ["refresh", "x"]])
def test_pin_mismatch_stops_every_command(project, argv):
    project.spine.write_text(SPINE + "# edited\n")
    code, out, err = project.run(*argv)
    assert code == 1 and out == ""
    assert "upstream/makemore.py.sha256" in err and "pinned" in err and "found" in err
    assert "python apply.py pin" in err and len(err.strip().splitlines()) == 1


def test_missing_pin(project):
    (project.root / "upstream" / "makemore.py.sha256").unlink()
    code, _, err = project.run("check")
    assert code == 1 and "makemore.py.sha256 is missing" in err


def test_pin_writes_the_sha256sum_line(project):
    pin = (project.root / "upstream" / "makemore.py.sha256").read_text()
    assert pin == f"{apply.sha256(SPINE.encode())}  makemore.py\n"


def test_empty_series(project):
    assert "(0 patches)" in project.ok("check")
    assert "nothing to write" in project.ok("apply")
    assert project.ok("status").strip() == "patch  applies  variant  edited"


def test_new_edit_refresh_check_and_git_agrees(project, tmp_path):
    assert "variants/wide: written" in project.ok("new", "wide")
    assert project.series()[-1] == "01-wide.patch"
    assert project.variant("wide").read_text() == SPINE
    assert project.patch("wide").read_text().startswith("Description: wide: <a one-line title>\n")
    project.edit("wide", "return x * self.width", "return 2 * x * self.width")
    project.fill_header("wide")
    assert "refreshed (+1 -1 lines)" in project.ok("refresh", "wide")
    assert "(1 patch)" in project.ok("check")
    patch_text = project.patch("wide").read_text()
    assert "@@ -28,7 +28,7 @@     def __init__(self, width):\n" in patch_text
    result = git_apply(project.patch("wide"), {"makemore.py": SPINE.encode()}, tmp_path / "git")
    assert result == {"makemore.py": project.variant("wide").read_bytes()}
    assert "variants/wide: up to date" in project.ok("apply")


def test_refresh_of_an_unedited_variant_leaves_the_patch_byte_identical(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width", HEADER)
    project.add_patch("deep", "for step in range(steps):", "for step in range(2 * steps):")
    before = project.patch("wide").read_bytes()
    assert before.startswith(HEADER.encode())
    assert project.ok("refresh", "wide") == "patches/01-wide.patch: unchanged\n"  # and nothing later is stale
    assert project.patch("wide").read_bytes() == before


def test_refresh_keeps_the_header_verbatim(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width", HEADER)
    project.edit("wide", "loss = 0.0", "loss = 1.0")
    project.ok("refresh", "wide")
    data = project.patch("wide").read_bytes()
    assert data.startswith(HEADER.encode()) and data.count(b"@@ -") == 2
    assert apply.read_patch(project.patch("wide")).fields["Part"] == "1"


def test_refresh_refuses_the_header_template_of_new(project):
    project.ok("new", "wide")
    project.edit("wide", "return x * self.width", "return 2 * x * self.width")
    template = project.patch("wide").read_bytes()
    code, out, err = project.run("refresh", "wide")
    assert code == 1 and out == "" and project.patch("wide").read_bytes() == template
    assert err == ("error: patches/01-wide.patch: fill in its header first: Description, Part, Flags, "
                   "Metrics still hold the <placeholder> that `new` wrote\n")
    project.patch("wide").write_text(template.decode().replace("<a one-line title>", "Wider"))
    assert "Part, Flags, Metrics still hold" in project.run("refresh", "wide")[2]


def test_refresh_writes_new_files_too(project, tmp_path):
    project.ok("new", "helper")
    project.fill_header("helper")
    (project.variant("helper").parent / "helper.py").write_text("def help():\n    return 1\n")
    project.ok("refresh", "helper")
    assert "--- /dev/null\n+++ b/helper.py\n@@ -0,0 +1,2 @@\n" in project.patch("helper").read_text()
    result = git_apply(project.patch("helper"), {"makemore.py": SPINE.encode()}, tmp_path / "git")
    assert result["helper.py"] == b"def help():\n    return 1\n"
    assert "up to date" in project.ok("apply")


def test_refresh_refuses_a_removed_file(project):
    project.ok("new", "gone")
    project.fill_header("gone")
    project.variant("gone").unlink()
    code, _, err = project.run("refresh", "gone")
    assert code == 1 and "deleting files is not supported" in err


def test_apply_writes_variants_and_stamps(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    project.add_patch("deep", "for step in range(steps):", "for step in range(2 * steps):")
    shutil.rmtree(project.root / "variants")
    assert project.ok("apply").splitlines() == ["variants/wide: written", "variants/deep: written"]
    deep = project.variant("deep").read_text()
    assert "2 * x * self.width" in deep and "range(2 * steps)" in deep
    stamp = apply.read_stamp(project.variant("deep").parent)
    assert list(stamp["patches"]) == ["01-wide.patch", "02-deep.patch"]
    assert stamp["files"] == {"makemore.py": apply.sha256(deep.encode())}
    assert stamp["spine"] == {"makemore.py": apply.sha256(SPINE.encode())}
    assert project.ok("apply").splitlines() == ["variants/wide: up to date", "variants/deep: up to date"]


def test_edited_variant_is_refused_without_force(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    project.edit("wide", "loss = 0.0", "loss = 1.0")
    (project.variant("wide").parent / "notes.py").write_text("# mine\n")
    patch = project.patch("wide")
    patch.write_bytes(patch.read_bytes().replace(b"+        return 2 *", b"+        return 3 *"))
    code, out, err = project.run("apply")
    assert code == 1 and out == ""
    assert "variants/wide was edited by hand since it was generated (makemore.py, notes.py)" in err
    assert "refresh wide" in err and "--force" in err
    assert "loss = 1.0" in project.variant("wide").read_text()  # nothing written


def test_force_discards_the_edit_but_not_the_work_dir(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    folder = project.variant("wide").parent
    generated = project.variant("wide").read_bytes()
    project.edit("wide", "loss = 0.0", "loss = 1.0")
    (folder / "notes.py").write_text("# mine\n")
    for path in ("out/metrics.jsonl", "out-long/model.pt", "metrics.jsonl", "__pycache__/m.pyc"):
        (folder / path).parent.mkdir(exist_ok=True)
        (folder / path).write_text("run output\n")
    assert "variants/wide: written (removed notes.py)" in project.ok("--force")
    assert project.variant("wide").read_bytes() == generated
    assert (folder / "out" / "metrics.jsonl").exists() and (folder / "metrics.jsonl").exists()
    assert "up to date" in project.ok("apply")


def test_run_outputs_are_not_edits(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    folder = project.variant("wide").parent
    (folder / "out").mkdir()
    (folder / "out" / "model.pt").write_bytes(b"\0")
    (folder / "samples.jsonl").write_text("{}\n")
    assert "up to date" in project.ok("apply")


def test_stale_variants_are_regenerated(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    project.add_patch("deep", "for step in range(steps):", "for step in range(2 * steps):")
    project.edit("wide", "scale = 1.0", "scale = 2.0")
    project.ok("refresh", "wide")
    assert project.ok("status").splitlines()[2].split() == ["02-deep.patch", "yes", "stale", "no"]
    assert project.ok("apply").splitlines() == ["variants/wide: up to date", "variants/deep: written"]
    assert "scale = 2.0" in project.variant("deep").read_text()
    project.spine.write_text(SPINE.replace('"""A tiny', '"""A small'))
    project.ok("pin")
    assert project.ok("apply").splitlines() == ["variants/wide: written", "variants/deep: written"]
    assert '"""A small' in project.variant("deep").read_text()


def test_editing_a_header_leaves_the_variant_current_and_refreshable(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    diff = project.patch("wide").read_bytes().split(b"\n\n", 1)[1]
    project.patch("wide").write_bytes(HEADER.encode() + diff)
    assert project.ok("status").splitlines()[1].split() == ["01-wide.patch", "yes", "current", "no"]
    project.edit("wide", "scale = 1.0", "scale = 2.0")
    assert "refreshed" in project.ok("refresh", "wide")
    assert project.patch("wide").read_bytes().startswith(HEADER.encode())


def test_apply_is_all_or_nothing(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    project.add_patch("deep", "for step in range(steps):", "for step in range(2 * steps):")
    project.spine.write_text(SPINE.replace("for step in range(steps):", "for step in range(steps + 1):"))
    assert project.run("pin")[0] == 1
    before = project.variant("wide").read_bytes()
    code, out, err = project.run("apply")
    assert code == 1 and out == ""
    assert "patches/02-deep.patch: makemore.py: hunk 1" in err and "found nowhere" in err
    assert project.variant("wide").read_bytes() == before


def test_refresh_that_breaks_a_later_patch_names_it(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    project.add_patch("deep", "for step in range(steps):", "for step in range(2 * steps):")
    project.add_patch("last", "offset = 0.0", "offset = 0.5")
    project.edit("wide", "loss += step", "loss += step * step")
    code, out, err = project.run("refresh", "wide")
    assert code == 1 and "patches/01-wide.patch: refreshed" in out
    assert "02-deep.patch no longer applies" in err
    assert "patches/02-deep.patch: makemore.py: hunk 1 '@@ -6,7 +6,7 @@" in err
    assert "not checked, as they build on it: 03-last.patch" in err
    assert "step * step" in project.patch("wide").read_text()  # the refresh is kept
    code, _, err = project.run("check")
    assert code == 1 and "02-deep.patch" in err


def test_refresh_refuses_a_stale_variant(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    project.add_patch("deep", "for step in range(steps):", "for step in range(2 * steps):")
    project.edit("wide", "scale = 1.0", "scale = 2.0")
    project.ok("refresh", "wide")
    project.edit("deep", "import sys", "import os, sys")
    code, _, err = project.run("refresh", "deep")
    assert code == 1 and "generated from an older spine or series" in err


def test_new_after_renumbers(project):
    project.add_patch("a", "scale = 1.0", "scale = 0.5")
    project.add_patch("b", "import sys", "import os, sys")
    project.add_patch("c", "return x * self.width", "return 2 * x * self.width")
    series = project.root / "patches" / "series"
    series.write_text(series.read_text().replace("02-b.patch", "02-b.patch  # keeps its comment"))
    out = project.ok("new", "x", "--after", "a")
    assert "renamed patches/02-b.patch -> patches/03-b.patch" in out
    assert "renamed patches/03-c.patch -> patches/04-c.patch" in out
    assert project.series() == ["# the series", "01-a.patch", "02-x.patch",
                                "03-b.patch  # keeps its comment", "04-c.patch"]
    assert sorted(p.name for p in (project.root / "patches").glob("*.patch")) == [
        "01-a.patch", "02-x.patch", "03-b.patch", "04-c.patch"]
    assert project.variant("x").read_bytes() == project.variant("a").read_bytes()
    assert "(4 patches)" in project.ok("check")
    # b and c are stale (their inputs now include x), and come out the same as before
    before = project.variant("c").read_bytes()
    assert project.ok("apply").splitlines()[-2:] == ["variants/b: written", "variants/c: written"]
    assert project.variant("c").read_bytes() == before


@pytest.mark.parametrize("argv, why", [
    (["new", "wide"], "exists already"),
    (["new", "Bad_Name"], "is not a patch name"),
    (["new", "x_y"], "is not a patch name"),
    (["new", "01-wide"], "'01-wide' starts with a number: give the name alone ('wide')"),
    (["new", "spine"], "'spine' names the unpatched file"),
    (["new", "y", "--after", "nope"], "no patch named 'nope'"),
    (["diff", "nope"], "no patch named 'nope'"),
])
def test_bad_names_are_refused(project, argv, why):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    code, _, err = project.run(*argv)
    assert code == 1 and why in err


def test_status_rows(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    project.add_patch("deep", "for step in range(steps):", "for step in range(2 * steps):")
    project.edit("deep", "import sys", "import os, sys")
    (project.root / "patches" / "99-stray.patch").write_text("")
    (project.root / "patches" / "98-\x1b[2J.patch").write_text("")
    (project.root / "variants" / "\x1b[2J").mkdir()
    out = project.ok("status")
    assert out.replace("\n", "").isprintable()
    rows = out.splitlines()
    assert rows[:3] == [
        "patch          applies  variant  edited",
        "01-wide.patch  yes      current  no",
        "02-deep.patch  yes      current  yes: makemore.py",
    ]
    assert "warning: patches/99-stray.patch is not in patches/series" in rows
    assert "warning: patches/98-\\x1b[2J.patch is not in patches/series" in rows


def test_status_of_a_broken_series(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    project.add_patch("deep", "for step in range(steps):", "for step in range(2 * steps):")
    text = project.patch("wide").read_text()
    project.patch("wide").write_text(text.replace("-        return x * self.width",
                                                  "-        return x * self.widht"))
    (project.root / "patches" / "series").write_text("01-wide.patch\n02-deep.patch\n03-gone.patch\n")
    code, out, err = project.run("status")
    rows = out.splitlines()
    assert code == 1  # as check: a patch does not apply
    assert rows[1].split() == ["01-wide.patch", "NO", "stale", "no"]
    assert rows[2].split() == ["02-deep.patch", "-", "stale", "no"]
    assert rows[3].split() == ["03-gone.patch", "-", "missing", "-"]
    assert err.startswith("error: patches/01-wide.patch: makemore.py: hunk 1") and "found nowhere" in err
    assert len(err.splitlines()) == 1


def test_status_of_a_missing_patch_file_exits_1(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    (project.root / "patches" / "series").write_text("01-wide.patch\n02-gone.patch\n")
    code, out, err = project.run("status")
    assert code == 1 and out.splitlines()[2].split() == ["02-gone.patch", "NO", "missing", "-"]
    assert "patches/02-gone.patch does not exist" in err


def test_a_variant_whose_patch_left_the_series_is_named_and_removed(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    project.add_patch("deep", "for step in range(steps):", "for step in range(2 * steps):")
    project.add_patch("kept", "scale = 1.0", "scale = 2.0")
    deep = project.variant("deep").parent
    (deep / "out").mkdir()
    (deep / "out" / "metrics.jsonl").write_text("{}\n")  # a run's output: not apply's to remove
    project.edit("kept", "offset = 0.0", "offset = 1.0")
    (project.root / "patches" / "series").write_text("01-wide.patch\n")
    (project.root / "variants" / "mine").mkdir()
    rows = project.ok("status").splitlines()
    assert "warning: variants/deep: no patch in patches/series makes it; `python apply.py` removes it" in rows
    assert ("warning: variants/kept: no patch in patches/series makes it; it was edited by hand "
            "(makemore.py), so apply keeps it: remove it yourself (rm -r variants/kept) once you no "
            "longer need the edit") in rows
    assert any(row.startswith("warning: variants/mine: no patch") and "no stamp" in row for row in rows)

    code, out, err = project.run("apply")
    assert code == 0
    assert out.splitlines() == ["variants/wide: up to date",
                                "variants/deep: removed, as no patch in patches/series makes it"]
    assert sorted(path.name for path in deep.rglob("*")) == ["metrics.jsonl", "out"]
    assert "variants/deep: no patch in patches/series makes it; it holds nothing that apply made" in err
    assert "offset = 1.0" in project.variant("kept").read_text()
    shutil.rmtree(deep)  # as the warning says
    assert not any("variants/deep" in row for row in project.ok("status").splitlines())


def test_ensure_variant_leaves_other_variants_alone(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    project.add_patch("deep", "for step in range(steps):", "for step in range(2 * steps):")
    (project.root / "patches" / "series").write_text("01-wide.patch\n")
    apply.Project(project.root).ensure_variant("wide")
    assert project.variant("deep").exists()


def test_check_refuses_a_missing_or_unlisted_patch(project):
    (project.root / "patches" / "series").write_text("01-gone.patch\n")
    code, _, err = project.run("check")
    assert code == 1 and "lists 01-gone.patch, but patches/01-gone.patch does not exist" in err
    (project.root / "patches" / "series").write_text("")
    (project.root / "patches" / "01-stray.patch").write_text("")
    code, _, err = project.run("check")
    assert code == 1 and "01-stray.patch: in patches/ but not in patches/series" in err


@pytest.mark.parametrize("entry", ["moe.patch", "\u0660\u0661-moe.patch"])
def test_bad_series_entry(project, entry):
    (project.root / "patches" / "series").write_text(f"{entry}\n")
    code, _, err = project.run("check")
    assert code == 1 and f"line 1: {entry!r} is not NN-name.patch" in err


def test_diff_prints_the_patch_s_hunks(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width", HEADER)
    data = project.patch("wide").read_bytes()
    assert project.ok("diff", "wide").encode() == data[len(HEADER.encode()):]


def test_diff_stat_summary_captions_hunks_by_what_they_change(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width", HEADER)
    project.edit("wide", "loss = 0.0", "loss = 1.0\n    loss *= 1.0")
    project.ok("refresh", "wide")
    assert project.ok("diff", "wide", "--stat").splitlines() == [
        "patches/01-wide.patch: Wider: scale the model's output by two",
        "  makemore.py  +3 -2",
        "  1 file, +3 -2",
        "makemore.py:",
        "  @@ -4,7 +4,8 @@  +2 -1  edits train",
        "  @@ -28,7 +29,7 @@  +1 -1  edits Model.forward",  # its @@ line says __init__ (git's rule)
    ]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_diff_from_spine_is_the_variant_against_the_spine(project, tmp_path):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    project.add_patch("deep", "for step in range(steps):", "for step in range(2 * steps):")
    shown = project.ok("diff", "deep", "--from-spine")
    assert shown == apply.diff_file("makemore.py", SPINE.encode(), project.variant("deep").read_bytes())
    (tmp_path / "spine.patch").write_text(shown)
    result = git_apply(tmp_path / "spine.patch", {"makemore.py": SPINE.encode()}, tmp_path / "git")
    assert result == {"makemore.py": project.variant("deep").read_bytes()}
    assert project.ok("diff", "wide", "--from-spine") == project.ok("diff", "wide")


def test_diff_of_a_patch_without_hunks_prints_nothing(project):
    project.ok("new", "empty")
    assert project.ok("diff", "empty") == ""


def test_pin_reports_whether_the_series_still_applies(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    project.spine.write_text(SPINE.replace("return x * self.width", "return x"))
    code, out, err = project.run("pin")
    assert code == 1 and "pinned" in out and "01-wide.patch" in err


def test_ensure_variant_for_runners(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    shutil.rmtree(project.root / "variants")
    folder = apply.Project(project.root).ensure_variant("wide")
    assert folder == project.root / "variants" / "wide"
    assert "2 * x" in (folder / "makemore.py").read_text()


@pytest.mark.parametrize("argv", [["bogus"], ["refresh"], ["apply", "--nope"]])
def test_usage_errors_exit_2(project, argv):
    with pytest.raises(SystemExit) as exit_:
        project.run(*argv)
    assert exit_.value.code == 2


def test_files_no_longer_generated_are_removed(project):
    project.ok("new", "helper")
    project.fill_header("helper")
    folder = project.variant("helper").parent
    (folder / "lib").mkdir()
    (folder / "lib" / "helper.py").write_text("def help():\n    return 1\n")
    project.ok("refresh", "helper")
    patch = project.patch("helper")
    data = patch.read_bytes()
    patch.write_bytes(data[: data.index(b"--- /dev/null")])  # back to a header-only patch
    assert project.ok("apply").splitlines() == ["variants/helper: written (removed lib/helper.py)"]
    assert not (folder / "lib").exists() and project.variant("helper").exists()


def test_rebase_moves_drifted_hunks_and_nothing_else(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width", header=HEADER)
    project.add_patch("deep", "for step in range(steps):", "for step in range(2 * steps):")
    project.spine.write_text(SPINE.replace("import sys\n", "import os\nimport sys\n\n\n# drift\n"))
    code, _, err = project.run("pin")
    assert code == 1 and "(+4)" in err and "python apply.py rebase" in err
    header_before = project.patch("wide").read_bytes().split(b"--- a/")[0]
    out = project.ok("rebase")
    assert "patches/01-wide.patch: makemore.py: hunk 1 @@ -28,7 +28,7 @@: moved +4 lines" in out
    assert "patches/02-deep.patch: makemore.py: hunk 1 @@ -6,7 +6,7 @@: moved +4 lines" in out
    assert project.patch("wide").read_bytes().split(b"--- a/")[0] == header_before
    project.ok("check")
    project.ok("apply")
    expected = SPINE.replace("import sys\n", "import os\nimport sys\n\n\n# drift\n")
    expected = expected.replace("return x * self.width", "return 2 * x * self.width")
    assert project.variant("deep").read_text() == expected.replace("range(steps)", "range(2 * steps)")
    assert project.ok("rebase") == "every patch applies as it is: nothing to rebase\n"


def test_rebase_refuses_a_conflict_and_writes_nothing(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    project.add_patch("deep", "for step in range(steps):", "for step in range(2 * steps):")
    project.spine.write_text(SPINE.replace("import sys\n", "import sys\n# drift\n")
                             .replace("for step in range(steps):", "for step in range(steps + 1):"))
    project.run("pin")
    patches = {path: path.read_bytes() for path in (project.root / "patches").iterdir()}
    code, out, err = project.run("rebase")
    assert code == 1 and out == ""
    assert "patches/02-deep.patch: makemore.py: hunk 1" in err and "found nowhere" in err
    assert {path: path.read_bytes() for path in (project.root / "patches").iterdir()} == patches


def test_rebase_refuses_an_ambiguous_place(project):
    project.add_patch("deep", "        self.name = \"model\"\n", "        self.name = \"deep\"\n")
    twin = "    def __init__(self, width):\n        self.width = width\n        self.depth = 1\n"
    twin += "        self.name = \"model\"\n\n    def forward(self, x):\n        return x * self.width\n"
    project.spine.write_text(SPINE.replace("class Model:\n", "class Model:\n" + twin + "\n\nclass Copy:\n")
                             .replace("import sys\n", "import sys\n# drift\n"))
    project.run("pin")
    code, _, err = project.run("rebase", "deep")
    assert code == 1 and "stands at 2 places" in err


def git_diff(old: bytes, new: bytes, folder: Path) -> str:
    """What `git diff` prints for an edit of makemore.py, in a repository of its own."""
    folder.mkdir()
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(folder.parent), "GIT_CONFIG_GLOBAL": "/dev/null"}
    (folder / "makemore.py").write_bytes(old)
    for command in (["init", "-q"], ["add", "makemore.py"]):
        subprocess.run(["git", *command], cwd=folder, env=env, check=True, capture_output=True)
    (folder / "makemore.py").write_bytes(new)
    done = subprocess.run(["git", "diff"], cwd=folder, env=env, check=True, capture_output=True)
    return done.stdout.decode()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_diff_output_saved_as_the_patch_is_taken_and_refresh_makes_it_canonical(project, tmp_path):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width", HEADER)
    project.edit("wide", "scale = 1.0", "scale = 2.0")
    edited = project.variant("wide").read_bytes()
    saved = git_diff(SPINE.encode(), edited, tmp_path / "repo")
    assert saved.startswith("diff --git a/makemore.py b/makemore.py\nindex ")
    project.patch("wide").write_bytes(HEADER.encode() + saved.encode())
    assert "(1 patch)" in project.ok("check")
    assert project.ok("apply") == "variants/wide: written\n"  # the edit is in the patch now
    assert project.variant("wide").read_bytes() == edited
    assert "refreshed" in project.ok("refresh", "wide")
    canonical = HEADER + apply.diff_file("makemore.py", SPINE.encode(), edited)
    assert project.patch("wide").read_bytes() == canonical.encode()
    assert "unchanged" in project.ok("refresh", "wide")


def test_error_messages_show_a_patch_s_control_characters_escaped(project):
    project.add_patch("wide", "return x * self.width", "return 2 * x * self.width")
    text = project.patch("wide").read_text()
    project.patch("wide").write_text(text.replace("-        return x * self.width",
                                                  "-        return x * self.width\x1b[2J\r\x0c"))
    for command in ("check", "apply", "status"):
        code, _, err = project.run(command)
        assert code == 1 and err.count("\n") == 1 and err.isprintable() is False  # just the newline
        assert err.rstrip("\n").isprintable() and "\\x1b[2J\\r\\x0c" in err


REPO = Path(__file__).resolve().parent.parent


def ast_definitions(source: str) -> dict[str, range]:
    """Each def and class of a Python file by qualified name, with its lines (decorators too)."""
    spans = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                spans[name] = range(first, child.end_lineno + 1)
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return spans


def ast_changes(hunk: apply.Hunk, old: str, new: str) -> apply.Changes:
    """What a hunk changes, told by Python's own parser: the oracle for hunk_changes."""
    sides = {"-": ast_definitions(old), "+": ast_definitions(new)}
    found, top_level = {"adds": [], "edits": [], "removes": []}, set()
    for line, (old_number, new_number) in zip(hunk.lines, line_numbers(hunk)):
        if line.kind == " " or not line.text.strip():
            continue
        number, spans = (new_number, sides["+"]) if line.kind == "+" else (old_number, sides["-"])
        other = sides["-" if line.kind == "+" else "+"]
        around = [name for name, span in spans.items() if number in span]  # outermost first
        if not around:
            top_level.add(line.kind)
            continue
        whole = [name for name in around if name not in other]
        verb = ("adds" if line.kind == "+" else "removes") if whole else "edits"
        name = whole[0] if whole else around[-1]
        if name not in found[verb]:
            found[verb].append(name)
    if top_level:
        kind = top_level.pop() if len(top_level) == 1 else " "
        found[{"+": "adds", "-": "removes", " ": "edits"}[kind]].append("top-level code")
    return apply.Changes(*map(tuple, found.values()))


def line_numbers(hunk):
    old, new, numbers = hunk.old_start, hunk.new_start, []
    for line in hunk.lines:
        numbers.append((old, new))
        old += line.kind != "+"
        new += line.kind != "-"
    return numbers


@pytest.mark.parametrize("entry", apply.Project(REPO).entries())
def test_captions_of_the_real_patches_agree_with_pythons_parser(entry):
    project = apply.Project(REPO)
    entries = project.entries()
    k = entries.index(entry)
    trees = [project.spine()] + [variant.tree for variant in project.build()]
    patch = project.read_patch(entry)
    for file in patch.files:
        old = trees[k].get(file.path, b"").decode()
        new = trees[k + 1][file.path].decode()
        for hunk in file.hunks:
            changes = apply.hunk_changes(hunk, apply.hunk_scopes(hunk, apply.split_lines(old)))
            assert changes == ast_changes(hunk, old, new), hunk.header


def test_the_moe_hunk_that_adds_class_moe_says_so():
    patch = apply.Project(REPO).read_patch("01-moe.patch")
    spine = apply.Project(REPO).spine()["makemore.py"].decode()
    (hunk,) = [hunk for file in patch.files for hunk in file.hunks
               if any(line.text.startswith("class MoE") for line in hunk.lines)]
    caption = apply.hunk_changes(hunk, apply.hunk_scopes(hunk, apply.split_lines(spine))).caption
    assert "MoE" in caption.split("adds ")[1] and "CausalSelfAttention" not in caption
