"""Run folders: the one place that declares, writes and reads their files, and says whether a run
is stale.

RUN_FILES declares every file a run folder (runs/results/<recipe>/<run>/) may hold, which of them
are committed and who writes each (formats: runs/README.md, whose table a test holds to this one,
as it holds .gitignore). The runner, the probes, the analysis and the tests read them through
here, so the format has one owner.
"""

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import apply
from runs import ROOT, file_sha256

RESULTS_DIR = ROOT / "runs" / "results"
SAMPLE_GROUPS = ("in train", "in test", "new")


@dataclass(frozen=True)
class RunFile:
    name: str
    committed: bool
    holds: str  # what it holds and who writes it: runs/README.md's table says the same


RUN_FILES = (
    RunFile("config.json", True, "what produced the run (below); written by the runner"),
    RunFile("metrics.jsonl", True, "the trainer's log: one JSON object per evaluation"),
    RunFile("summary.json", True, "final numbers, written last by the runner"),
    RunFile("samples.txt", True, "samples of the trained model, grouped as in train / in test / new (the probes)"),
    RunFile("probes.json", True, "measurements of the trained (and the initial) model (the probes)"),
    RunFile("tool_eval.json", True, "every held-out query's answers and the baselines at the last evaluation "
                                    "(the trainer, 03-tool-token.patch)"),
    RunFile("tool_rounds.json", True, "the calling policy before each round of call labels and dreams, and now "
                                      "(the trainer, 03-tool-token.patch)"),
    RunFile("synth.json", True, "every wake's solutions, library and search costs (the trainer, "
                                "04-neuro-symbolic.patch)"),
    RunFile("train.log", False, "the output of the trainer and of the probes"),
    RunFile("model.pt", False, "the chosen weights (what the probes and `python -m runs sample` load)"),
    RunFile("checkpoint.pt", False, "everything `--resume` needs; deleted when the run is finished"),
    RunFile(".runner.json", False, "the runner's bookkeeping: training time across resumes, and whether "
                                   "training is done"),
)
RUN_FILE_NAMES = {file.name for file in RUN_FILES}


def read_json(path):
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path, value, indent=2):
    """Atomically: a reader never sees half a file, an interrupted write leaves the old one."""
    apply.write_atomic(Path(path), (json.dumps(value, indent=indent) + "\n").encode())


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

    def json(self, name):
        """A declared JSON file of the run, read; None when the run has none."""
        if name not in RUN_FILE_NAMES or not name.endswith(".json"):
            raise ValueError(f"{name} is not a JSON file a run folder holds (runs.store.RUN_FILES)")
        path = self.directory / name
        if not path.is_file():
            return None
        stat = path.stat()  # read once while unchanged: figures ask for a run's files many times
        return _read_once(str(path), stat.st_mtime_ns, stat.st_size)

    @property
    def chosen_by(self):
        """The trainer's rule for model.pt: valid_loss when the run holds items back for validation
        (--validation), else test_loss."""
        return "valid_loss" if "valid_loss" in self.metrics[-1] else "test_loss"

    @property
    def chosen(self):
        """The evaluation whose weights model.pt holds: the lowest of chosen_by."""
        return min(self.metrics, key=lambda record: record[self.chosen_by])


@functools.lru_cache(maxsize=128)
def _read_once(path, mtime_ns, size):
    return json.loads(Path(path).read_text())


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


# -----------------------------------------------------------------------------
# staleness: one definition, apply.py's


def staleness(config, root=ROOT):
    """Why a run's code differs from today's, or None if it is current. The code is the spine
    plus the diffs of the variant's patches (headers excluded: rewording a Description changes
    nothing), digested by apply.Project.code_digest, which the variants' stamps use too."""
    recorded = config["code"].get("digest")
    if recorded is None:
        return "it predates code digests"
    try:
        today = current_digest(Path(root).resolve(), config["variant"])
    except apply.ApplyError as error:
        return f"its variant no longer builds: {str(error).splitlines()[0]}"
    if today == recorded:
        return None
    spine = config["code"]["spine"]
    spine_file = Path(root) / spine["path"]
    if not spine_file.is_file() or file_sha256(spine_file) != spine["sha256"]:
        return "the spine has changed since it ran"
    patches = config["code"]["patches"]
    if [patch["name"] for patch in patches] != apply.Project(Path(root).resolve()).series_up_to(config["variant"]):
        return "the patch series up to its variant has changed since it ran"
    patch_files = [Path(root) / "patches" / patch["name"] for patch in patches]
    if all(path.is_file() and file_sha256(path) == patch["sha256"] for path, patch in zip(patch_files, patches)):
        return "a file beside the spine in upstream/ has changed since it ran (every file there is the spine's)"
    names = ", ".join(patch["name"] for patch in patches)
    return f"the code of its patches ({names}) has changed since it ran"


def current_digest(root, variant):
    """apply's code digest of a variant today; parsed once per process for the same files."""
    project = apply.Project(root)
    spine_tree = sorted(path for path in project.spine_file.parent.rglob("*") if path.is_file())
    inputs = [*spine_tree, project.series_file, *sorted(project.patches_dir.glob("*.patch"))]
    contents = hashlib.sha256(b"".join(file_sha256(path).encode() for path in inputs if path.is_file()))
    return _code_digest(root, variant, contents.hexdigest())


@functools.lru_cache(maxsize=64)
def _code_digest(root, variant, contents):
    return apply.Project(root).code_digest(variant)


# -----------------------------------------------------------------------------
# samples.txt: "N samples that are GROUP:" before each group's N samples, one per line


def write_samples(path, groups):
    """groups: {"in train": [...], "in test": [...], "new": [...]}, as the variant sorts them."""
    lines = []
    for group in SAMPLE_GROUPS:
        lines.append(f"{len(groups[group])} samples that are {group}:")
        lines += groups[group]
    apply.write_atomic(Path(path), ("\n".join(lines) + "\n").encode())


def read_samples(directory):
    """samples.txt as {"in train": [...], "in test": [...], "new": [...]}, or None when there is
    none. Counting lines (rather than looking for the next header) keeps empty samples."""
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
