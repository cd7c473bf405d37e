"""The runner: a recipe's runs prepared, trained as separate processes, probed and summarised.

Each run trains the generated variant file exactly as a reader would type it. A run is finished
when summary.json exists (written last); everything before that can be interrupted and resumed.
"""

import contextlib
import importlib.metadata
import io
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import apply
from runs import datasets
from runs import ROOT, file_sha256, load_module
from runs.recipe import RecipeError
from runs.probes import CheckpointError, check_checkpoint, trainers_data
from runs.store import load_run, read_json, write_json

SPINE_FILE = ROOT / "upstream" / "makemore.py"
QUICK_DIR = ROOT / "out" / "quick"  # where --quick runs go: never into the results
CACHE_DIR = ROOT / "data" / "cache"  # the datasets, as runs/datasets.py materialises them
QUICK_STEPS = 200  # --quick: enough steps to see every piece work, a few seconds a run
PROGRESS_SECONDS = 10.0  # at most one progress line per run this often
OUTCOMES = ("done", "failed", "interrupted", "busy")  # what becomes of a job the runner takes on
STATE_FILE = ".runner.json"  # per run, git-ignored: training time across resumes, and whether trained


@dataclass
class Job:
    name: str
    directory: Path
    config: dict
    probes: list
    state: str  # "finished", "probe" (trained, not measured yet), "resume" or "fresh"
    note: str | None = None  # why an unfinished run starts over


def shown(path):
    """A path as configs and messages carry it: relative to the project root when inside it."""
    path = Path(path).resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


# -----------------------------------------------------------------------------
# preparing: variants, dataset, commands, and what state each run is in


def prepare(recipe, results_dir, cache_dir, quick=False, threads=1):
    """The jobs of a recipe, every input checked before anything trains (RecipeError if not)."""
    variants = {spec.variant for spec in recipe.runs()}
    code = {name: variant_code(name) for name in sorted(variants)}
    files = dataset_files(recipe.dataset, cache_dir)
    jobs = []
    for spec in recipe.runs():
        spec = shrunk(spec) if quick else spec
        directory = Path(results_dir) / recipe.name / spec.name
        inputs = ",".join(f["path"] for f in files)
        argv = [code[spec.variant]["file"], "-i", inputs, "-o", shown(directory),
                "--seed", str(spec.seed), "--max-steps", str(spec.steps), *flag_arguments(spec.flags)]
        config = {
            "recipe": recipe.name, "run": spec.name, "arm": spec.arm, "variant": spec.variant,
            "file": code[spec.variant]["file"], "seed": spec.seed, "steps": spec.steps, "quick": quick,
            "flags": spec.flags, "argv": argv, "command": "python " + shlex.join(argv),
            "dataset": {**recipe.dataset, "files": files},
            "code": code[spec.variant]["code"],
            "torch": importlib.metadata.version("torch"), "python": platform.python_version(),
            "threads": threads,
        }
        jobs.append(Job(spec.name, directory, config, recipe.probes, *run_state(directory, config)))
    check_flags(jobs, recipe.name)
    return jobs


def variant_code(name):
    """The file a variant trains from and the hashes of what made it: the spine and its patches."""
    spine = {"path": shown(SPINE_FILE), "sha256": file_sha256(SPINE_FILE)}
    project = apply.Project(ROOT)
    try:
        digest = project.code_digest(name)  # checks the pin, for the spine's recipes too
        upto = project.series_up_to(name)
        file = SPINE_FILE if name == "spine" else project.ensure_variant(name) / "makemore.py"
    except apply.ApplyError as error:
        raise RecipeError(f"variant {name!r}: {error}") from None
    patches = [{"name": entry, "sha256": file_sha256(project.patches_dir / entry)} for entry in upto]
    return {"file": shown(file), "code": {"digest": digest, "spine": spine, "patches": patches}}


def dataset_files(dataset, cache_dir):
    try:
        built = datasets.materialise(dataset["builder"], dataset["seed"], dataset["args"], cache_dir)
    except datasets.DatasetError as error:
        raise RecipeError(f"dataset: {error}") from None
    return [{"domain": f["domain"], "path": shown(f["path"]), "sha256": f["sha256"]} for f in built]


def shrunk(spec):
    """A --quick run: few steps, and an evaluation every tenth of them (or the recipe's own interval,
    when shorter), so that a curve can be drawn."""
    steps = min(spec.steps, QUICK_STEPS)
    interval = min(int(spec.flags.get("eval-interval", steps)), max(1, steps // 10))
    return replace(spec, steps=steps, flags={**spec.flags, "eval-interval": interval})


def flag_arguments(flags):
    """{"n-layer": 2, "shared-expert": True} -> ["--n-layer", "2", "--shared-expert"]."""
    arguments = []
    for key, value in flags.items():
        if value is True:
            arguments.append(f"--{key}")
        elif value is not False:  # a false switch is simply left off
            arguments += [f"--{key}", str(value)]
    return arguments


def check_flags(jobs, recipe_name):
    """Parse every run's command line with the variant's own parser, and read its data as the run
    will, so that a flag the variant does not have, a bad value, or one the data cannot serve is
    one line now rather than a crash in the middle of a recipe. The data is read once per flag set:
    runs that differ only in their seed ask the same of it."""
    modules, checked = {}, set()
    for job in jobs:
        file = job.config["file"]
        if file not in modules:
            modules[file] = load_variant(job.config, f"recipe {recipe_name}: ")
        where = f"recipe {recipe_name}: run {job.name}: {file} says: "
        args = parse_flags(modules[file], job.config["argv"][1:], where)
        job.config["resolved"] = resolved_flags(args)
        flag_set = (file, json.dumps(job.config["flags"], sort_keys=True))
        if flag_set not in checked and job.state != "finished":
            check_data(modules[file], args, where)
            checked.add(flag_set)


def resolved_flags(args):
    """Every flag as the variant's parser resolved it, defaults included, under its long name: what
    analysis reads, so that nothing downstream restates a variant's default."""
    return {name.replace("_", "-"): str(value) if isinstance(value, Path) else value
            for name, value in sorted(vars(args).items())}


def check_data(module, args, where):
    """What the flags ask of the data: a held-out domain that is not there, a separator an item
    lacks, a --top-k above the vocabulary (the spine would crash at its first sample: see
    docs/spine.md)."""
    try:
        data = trainers_data(module, args)
    except module.UsageError as error:
        raise RecipeError(where + str(error)) from None
    if args.top_k > len(data.vocab):
        raise RecipeError(where + f"--top-k {args.top_k} is more than the vocabulary's {len(data.vocab)} tokens")


def parse_flags(module, argv, where):
    """The variant's own parser's reading of argv, or its complaint as one line (RecipeError)."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return module.parse_args(argv)
    except SystemExit:
        message = errors.getvalue().strip().splitlines()[-1].split("error: ", 1)[-1]
        raise RecipeError(where + message.removesuffix(" (see --help)")) from None


def load_variant(config, where=""):
    """The module of a run's variant file, or one line (RecipeError) saying where it fails to load."""
    file = config["file"]
    try:
        return load_module(ROOT / file)
    except Exception as error:
        if isinstance(error, SyntaxError) and Path(error.filename or "") == ROOT / file:
            line, problem = error.lineno, f"SyntaxError: {error.msg}"
        else:  # a statement run on import failed (an import of a broken module too): name its line
            lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
                     if Path(frame.filename) == ROOT / file]
            line, problem = lines[-1] if lines else "?", f"{type(error).__name__}: {error}"
    patches = [patch["name"] for patch in config["code"]["patches"]]
    made = f" (it is the spine + {', '.join(patches)})" if patches else ""
    raise RecipeError(f"{where}{file} does not load: line {line}: {problem}{made}")


def run_state(directory, config):
    """finished (summary.json exists), probe (this very command and code trained to its last
    step, its probes not run yet), resume (a checkpoint of this command and code), or fresh."""
    if (directory / "summary.json").is_file():
        return "finished", None
    old = read_json(directory / "config.json")
    if old is None or not (directory / "checkpoint.pt").is_file():
        return "fresh", None
    if not same_training(old, config):
        return "fresh", "its command, data or code changed since it started, so it starts over"
    trained = (read_json(directory / STATE_FILE) or {}).get("trained", False)
    return ("probe" if trained else "resume"), None


def same_training(old, new):
    keys = ("argv", "torch")
    return all(old.get(key) == new[key] for key in keys) and \
        old["code"].get("digest") == new["code"]["digest"] and \
        [f["sha256"] for f in old["dataset"]["files"]] == [f["sha256"] for f in new["dataset"]["files"]]


# -----------------------------------------------------------------------------
# training: one process per run, its output parsed for progress


STEP_LINE = re.compile(r"step (\d+) \| loss ([\d.naninf]+)")


class Progress:
    """One line per run now and then: its step, loss and ETA, and the recipe's overall count."""

    def __init__(self, total, finished):
        self.total, self.finished = total, finished

    def say(self, name, message):
        print(f"[{self.finished}/{self.total} done] {name}: {message}", flush=True)

    def run_finished(self, name, message):
        self.finished += 1
        self.say(name, message)


class StepClock:
    """Turns the trainer's 'step N | loss X' lines into throttled progress with an ETA."""

    def __init__(self, steps):
        self.steps = steps
        self.first = None  # (step, time) of the first step seen in this process
        self.last_said = 0.0

    def line(self, text):
        """The progress message for this output line, or None if it is not time for one."""
        match = STEP_LINE.match(text)
        if not match:
            return None
        step, now = int(match[1]), time.monotonic()
        if self.first is None:  # the rate, and so the ETA, needs a second line
            self.first, self.last_said = (step, now), now
            return None
        if now - self.last_said < PROGRESS_SECONDS and step < self.steps:
            return None
        self.last_said = now
        rate = (step - self.first[0]) / (now - self.first[1])
        eta = format_seconds((self.steps - step) / rate)
        return f"step {step}/{self.steps}, loss {float(match[2]):.4f}, ETA {eta}"


def format_seconds(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def child_environment(threads):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def parent_death_signal():
    """Linux: a training whose runner is killed outright gets SIGTERM, so it saves a checkpoint and
    stops instead of running on unsupervised. prctl is looked up now, not in the forked child,
    where a threaded parent's locks could deadlock it."""
    if sys.platform != "linux":
        return None
    import ctypes
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


DIE_WITH_PARENT = parent_death_signal()

STOPPED = {"training": "stopped; it resumes from its checkpoint next time",
           "probes": "probes interrupted; they rerun next time"}


class Runner:
    """Trains the jobs, `parallel` at a time, each as a generator that yields while one of its
    processes runs, all advanced by the main thread. So the thread that starts every process lives
    as long as the runner: Linux sends the parent-death signal when that *thread* exits, and a
    process started from a pool thread could get it early. (It can still come more than once, once
    per thread of the dying runner the process is handed to: the trainer takes every SIGTERM after
    the first as the same request.)"""

    def __init__(self, jobs, parallel=1):
        self.jobs, self.parallel = jobs, parallel
        self.threads = jobs[0].config["threads"] if jobs else 1
        self.children = set()
        self.asked = set()  # the children already asked to stop
        self.stopping = False
        self.progress = Progress(len(jobs), sum(job.state == "finished" for job in jobs))

    # -- signals: the first Ctrl-C or SIGTERM asks every training to checkpoint and stop

    def stop(self, signum, frame):
        """A person's Ctrl-C is passed on every time, so that a second one aborts, as it does when
        typed at a training. SIGTERM comes from programs, maybe more than once: a child gets at
        most one stop request from it."""
        if not self.stopping:
            print("\nstopping: each running training saves a checkpoint; run the recipe again to resume",
                  file=sys.stderr, flush=True)
        self.stopping = True
        for child in list(self.children):
            if signum == signal.SIGINT or child not in self.asked:
                self.ask_to_stop(child, signum)

    def ask_to_stop(self, child, signum):
        self.asked.add(child)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    def run(self):
        """Train every unfinished job; returns {state: count} with state done/failed/interrupted/busy."""
        waiting = [job for job in self.jobs if job.state != "finished"]
        running, outcomes = [], []  # running: (job, its steps) pairs
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while waiting or running:
                while waiting and len(running) < self.parallel and not self.stopping:
                    job = waiting.pop(0)
                    running.append((job, self.finish(job)))
                for task in list(running):
                    outcome = self.advance(*task)
                    if outcome:
                        outcomes.append(outcome)
                        running.remove(task)
                if self.stopping:  # what has not started stays for the next call
                    outcomes += ["interrupted"] * len(waiting)
                    waiting = []
                if running:
                    time.sleep(0.2)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return {state: outcomes.count(state) for state in OUTCOMES}

    def advance(self, job, steps):
        """Let a job go on until it waits again; its outcome once it has ended, else None."""
        try:
            next(steps)
            return None
        except StopIteration as end:
            return end.value
        except Exception as error:  # one broken run must not take the others down
            self.progress.say(job.name, f"failed: {type(error).__name__}: {error}")
            return "failed"

    def finish(self, job):
        """Train (unless that is done), probe, summarise: done, failed, interrupted, or busy when
        another process (a `--run` of it) is training it."""
        with held(job.directory.with_name(job.directory.name + ".lock")) as free:
            if not free:
                self.progress.say(job.name, "another process is training it: left to that one")
                return "busy"
            return (yield from self.train_and_measure(job))

    def train_and_measure(self, job):
        if job.state == "fresh" and job.directory.exists():
            self.progress.say(job.name, f"starting over: {job.note}" if job.note else "starting over")
            shutil.rmtree(job.directory)
        job.directory.mkdir(parents=True, exist_ok=True)
        write_json(job.directory / "config.json", job.config)
        if job.state != "probe":
            argv = job.config["argv"] + (["--resume"] if job.state == "resume" else [])
            resuming = job.state == "resume"
            try:  # a run folder from elsewhere could hold a pickle that runs code when the trainer loads it
                if resuming:
                    check_checkpoint(job.directory / "checkpoint.pt")
            except CheckpointError as error:
                self.progress.say(job.name, f"failed: {error}")
                return "failed"
            self.progress.say(job.name, "resuming from its checkpoint" if resuming else "training")
            code = yield from self.supervise(job, [sys.executable] + argv, StepClock(job.config["steps"]),
                                             timed=True)
            if code != 0:
                return self.unfinished(job, code, "training")
            problem = diverged(job.directory)
            if problem:  # the trainer finished, but what it learned is not a result
                self.progress.say(job.name, f"failed: {problem} (log: {shown(job.directory / 'train.log')})")
                return "failed"
            update_state(job.directory, trained=True)  # the trainer exits 0 only at its last step
        if self.stopping:
            return self.unfinished(job, None, "probes")
        when = " earlier" if job.state == "probe" else ""
        self.progress.say(job.name, f"trained{when}; running its probes")
        code = yield from self.supervise(job, [sys.executable, "-m", "runs.probes", shown(job.directory),
                                               *job.probes])
        if code != 0:
            return self.unfinished(job, code, "probes")
        summary = summarize(job.directory)
        write_json(job.directory / "summary.json", summary)  # last: this makes the run finished
        (job.directory / "checkpoint.pt").unlink(missing_ok=True)  # a finished run never resumes
        chosen = "best test loss" if summary["chosen_by"] == "test_loss" else "test loss at the best validation loss,"
        self.progress.run_finished(job.name, f"{chosen} {summary['best_test_loss']:.4f} at step "
                                             f"{summary['best_step']} ({format_seconds(summary['wall_s'])})")
        return "done"

    def unfinished(self, job, code, phase):
        if self.stopping:
            self.progress.say(job.name, STOPPED[phase])
            return "interrupted"
        log = job.directory / "train.log"
        last = log.read_text().strip().splitlines()[-1:] if log.is_file() else []
        failed = "failed" if phase == "training" else f"{phase} failed"
        self.progress.say(job.name, f"{failed} (exit {code}): {' '.join(last)} (log: {shown(log)})")
        return "failed"

    def supervise(self, job, argv, clock=None, timed=False):
        """Run one process for a job, its output appended to train.log; yields while it runs and
        returns its exit code. The process writes the log itself (no pipe through the runner), so
        a runner that dies leaves it a working stdout to report its checkpoint on."""
        started = time.monotonic()
        log_file = job.directory / "train.log"
        with log_file.open("a") as log, log_file.open("rb") as follow:
            follow.seek(0, os.SEEK_END)
            child = subprocess.Popen(argv, cwd=ROOT, env=child_environment(self.threads), stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=DIE_WITH_PARENT)
            self.children.add(child)
            if self.stopping and child not in self.asked:  # the stop came while it was being started
                self.ask_to_stop(child, signal.SIGTERM)
            try:
                while child.poll() is None:
                    self.report(job, follow, clock)
                    yield
                self.report(job, follow, clock)
                return child.returncode
            finally:
                self.children.discard(child)
                if timed:
                    update_state(job.directory, seconds=time.monotonic() - started)

    def report(self, job, follow, clock):
        """Progress from the lines the process has written since the last look; a line still
        being written is left for the next look."""
        while True:
            start = follow.tell()
            line = follow.readline()
            if not line.endswith(b"\n"):
                follow.seek(start)
                return
            message = clock and clock.line(line.decode("utf-8", "replace"))
            if message:
                self.progress.say(job.name, message)


def diverged(directory):
    """Where a run's losses stopped being numbers (nan or inf), as one line; None when they never did."""
    for record in load_run(directory).metrics:
        bad = [key for key, value in record.items() if key.endswith("_loss") and not math.isfinite(value)]
        if bad:
            return f"training diverged: {bad[0].replace('_', ' ')} {record[bad[0]]} at step {record['step']}"
    return None


def update_state(directory, seconds=0.0, **changes):
    """The runner's own record of a run (.runner.json): the training time across resumes, and
    whether the trainer has finished its steps."""
    state = {"wall_s": 0.0, "trained": False, **(read_json(directory / STATE_FILE) or {})}
    state["wall_s"] += seconds
    write_json(directory / STATE_FILE, {**state, **changes})


# -----------------------------------------------------------------------------
# summarising a finished run


def summarize(directory):
    run = load_run(directory)
    metrics = run.metrics
    final, best = metrics[-1], run.chosen
    domains = [key.split("/", 1)[1] for key in final if key.startswith("test_loss/")]
    timed = [record for record in metrics if record.get("step_ms") is not None]
    return {
        "steps": final["step"], "params": run.probes["parameters"]["total"],
        "final_train_loss": final["train_loss"], "final_test_loss": final["test_loss"],
        # model.pt's evaluation: the lowest test loss, or with --validation the lowest validation loss
        "best_test_loss": best["test_loss"], "best_step": best["step"],
        "chosen_by": run.chosen_by,
        "final_test_loss_by_domain": {d: final[f"test_loss/{d}"] for d in domains},
        "best_test_loss_by_domain": {d: best[f"test_loss/{d}"] for d in domains},
        "tokens_per_s": mean(record["tokens_per_s"] for record in timed),
        "step_ms": mean(record["step_ms"] for record in timed),
        "wall_s": read_json(directory / STATE_FILE)["wall_s"],
        "samples": (run.probes or {}).get("samples"),
    }


def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else None


# -----------------------------------------------------------------------------
# a recipe's results folder is trained by one runner's pool at a time, and each run by one process


@contextlib.contextmanager
def recipe_lock(directory):
    with held(Path(directory) / ".lock") as free:
        if not free:
            raise RecipeError(f"another runner is training {shown(directory)} right now")
        yield


@contextlib.contextmanager
def held(lock_file):
    """An advisory lock on lock_file for the block: yields whether this process got it (at once,
    never waiting); the lock goes with the process, however it ends."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one trainer a run is then up to you
        yield True
        return
    with lock_file.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
