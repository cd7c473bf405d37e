"""Reading results back: a run folder's files, and whether the code that made it is still current.

Shared by the runner (which reports stale finished runs) and the analysis (which marks them)."""

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from runs import ROOT

RESULTS_DIR = ROOT / "runs" / "results"


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Run:
    """A run folder read back: config.json, summary.json (None while unfinished), metrics.jsonl,
    probes.json (None when the recipe asked for none)."""

    directory: Path
    config: dict
    summary: dict | None
    metrics: list = field(default_factory=list)
    probes: dict | None = None

    @property
    def name(self):
        return self.directory.name

    @property
    def finished(self):
        return self.summary is not None


def read_json(path):
    return json.loads(path.read_text()) if path.is_file() else None


def load_run(directory):
    directory = Path(directory)
    config = read_json(directory / "config.json")
    if config is None:
        raise FileNotFoundError(f"{directory} is not a run folder: it has no config.json")
    metrics_file = directory / "metrics.jsonl"
    metrics = [json.loads(line) for line in metrics_file.read_text().splitlines()] if metrics_file.is_file() else []
    return Run(directory, config, read_json(directory / "summary.json"), metrics, read_json(directory / "probes.json"))


def load_recipe_runs(recipe_dir, finished_only=True):
    """Every run folder of a recipe's results, in name order."""
    runs = [load_run(d) for d in sorted(Path(recipe_dir).iterdir()) if (d / "config.json").is_file()]
    return [run for run in runs if run.finished or not finished_only]


def staleness(config, root=ROOT):
    """Why a run's code no longer matches the current files, or None if it still does."""
    root = Path(root)
    spine = config["code"]["spine"]
    spine_file = root / spine["path"]
    if not spine_file.is_file() or file_sha256(spine_file) != spine["sha256"]:
        return "the spine has changed since it ran"
    for patch in config["code"]["patches"]:
        patch_file = root / "patches" / patch["name"]
        if not patch_file.is_file():
            return f"{patch['name']} is gone"
        if file_sha256(patch_file) != patch["sha256"]:
            return f"{patch['name']} has changed since it ran"
    return None


def read_samples(directory):
    """samples.txt as {"in train": [...], "in test": [...], "new": [...]}, or None when there is none.
    The file is the spine's print_samples output: a header "N samples that are GROUP:" before each
    group's N lines. Counting lines (rather than looking for the next header) keeps empty samples."""
    path = Path(directory) / "samples.txt"
    if not path.is_file():
        return None
    groups = {}
    lines = iter(path.read_text().split("\n"))
    for line in lines:
        header = re.fullmatch(r"(\d+) samples that are (.+):", line)
        if header:
            count, group = int(header[1]), header[2]
            groups.setdefault(group, []).extend(next(lines) for _ in range(count))
    return groups
