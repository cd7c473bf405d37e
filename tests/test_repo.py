"""The repository's own promises: its series applies, CI runs the README's test command."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    """The commands in the README's first two fenced blocks: the main job, then the tests."""
    blocks = re.findall(r"```\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    return blocks[0], blocks[1]


def test_ci_runs_the_readmes_test_command():
    _, test_command = readme_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_the_readmes_main_command_applies_the_series_runs_a_short_recipe_and_draws_it():
    main_command, _ = readme_commands()
    steps = main_command.split(" && ")
    apply_at = next(i for i, step in enumerate(steps) if "apply.py" in step)
    train_at = next(i for i, step in enumerate(steps) if "-m runs " in step and "--quick" in step)
    draw_at = next(i for i, step in enumerate(steps) if "-m analysis compare" in step)
    assert apply_at < train_at < draw_at
    recipe = steps[train_at].split("-m runs ")[1].split()[0]
    assert (ROOT / "runs" / "recipes" / f"{recipe}.toml").is_file()
    assert f"out/quick/{recipe}" in steps[draw_at]


def test_the_committed_series_applies():
    result = subprocess.run([sys.executable, str(ROOT / "apply.py"), "check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_readmes_table_of_posts_is_the_series_with_each_patchs_part():
    """The posts are the spine's Part 3 and one patch each, in series order, named by its Part: header;
    analysis draws one part per post (analysis/partN.py)."""
    from analysis.__main__ import PARTS

    series = [line.split("#")[0].strip() for line in (ROOT / "patches" / "series").read_text().splitlines()]
    series = [entry for entry in series if entry]
    parts = [re.search(r"^Part: (\d+)", (ROOT / "patches" / entry).read_text(), flags=re.M)[1] for entry in series]
    rows = re.findall(r"^\| Part (\d+): [^|]*\| (?:`([^`]+)`|\(the spine\)) \|", (ROOT / "README.md").read_text(),
                      flags=re.M)
    assert rows == [("3", "")] + list(zip(parts, series))
    assert [part.name for part in PARTS] == [f"part{n}" for n, _ in rows]
