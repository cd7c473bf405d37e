"""The runner: recipes in, finished runs out; never overwrites, resumes after interruption,
refuses bad input in one line before anything trains."""

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

import apply
import runs.__main__ as cli
from runs import file_sha256, load_module
from runs.recipe import RecipeError, parse_recipe
from runs.store import read_samples, staleness

ROOT = Path(__file__).resolve().parent.parent

TINY = """
[flags]
n-layer = 1
n-head = 2
n-embd = 8
n-embd2 = 8
batch-size = 8
eval-batches = 1
sample-interval = 0
"""


def recipe_text(names_file, steps=30, seeds="[1, 2]", extra="", grid='type = ["bigram", "transformer"]',
                eval_interval=10, purpose="a test recipe"):
    return f"""
purpose = "{purpose}"
steps = {steps}
seeds = {seeds}
{extra}
[dataset]
builder = "names"
file = "{names_file}"
{TINY}
eval-interval = {eval_interval}

[grid]
{grid}
"""


class Lab:
    """A recipes folder, a results folder and a dataset cache, all temporary."""

    def __init__(self, root, names_file):
        self.recipes, self.results, self.cache = root / "recipes", root / "results", root / "cache"
        self.names_file = names_file

    def write(self, name, text):
        self.recipes.mkdir(exist_ok=True)
        (self.recipes / f"{name}.toml").write_text(text)

    def argv(self, *args):
        return [*args, "--recipes", str(self.recipes), "--results", str(self.results), "--cache", str(self.cache)]

    def main(self, *args):
        """The runner in this process: the same runner, starting the same training and probe
        processes, without another Python that imports torch first (seconds each). The tests that
        signal the runner start it as a reader does, in its own process."""
        return cli.main(self.argv(*args))

    def run_dirs(self, recipe):
        return sorted(path.name for path in (self.results / recipe).iterdir() if path.is_dir())


@pytest.fixture
def lab(tmp_path, names_file):
    return Lab(tmp_path, names_file)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, names_file):
    """One recipe of two tiny runs (a bigram and a transformer; a second seed would only repeat
    them: the interrupted recipe below trains two), trained together, shared by the tests that only
    read it; first_call is what the runner printed."""
    lab = Lab(tmp_path_factory.mktemp("trained"), names_file)
    lab.write("tiny", recipe_text(names_file, seeds="[1]"))
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = lab.main("tiny", "--jobs", "2")
    lab.first_call = output.getvalue()
    assert code == 0, lab.first_call
    return lab


def snapshot(directory):
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}


# -----------------------------------------------------------------------------
# recipes


def test_runs_are_arms_times_grid_times_seeds_with_names_that_say_what_differs():
    recipe = parse_recipe("r", {
        "purpose": "p", "steps": 10, "seeds": [1, 2], "dataset": {"builder": "names"},
        "flags": {"n-layer": 2}, "grid": {"n-embd": [8, 16]},
        "arm": [{"name": "small", "flags": {"n-head": 1}}, {"name": "wide", "flags": {"n-head": 2, "n-layer": 3}}],
    })
    names = [spec.name for spec in recipe.runs()]
    assert names == [f"{arm},n-embd={e},seed={s}" for arm in ("small", "wide") for e in (8, 16) for s in (1, 2)]
    wide = recipe.runs()[-1]
    assert wide.flags == {"n-layer": 3, "n-head": 2, "n-embd": 16} and wide.seed == 2 and wide.arm == "wide"


def test_an_arms_seeds_replace_the_recipes():
    recipe = parse_recipe("r", {
        "purpose": "p", "steps": 10, "seeds": [1, 2, 3], "dataset": {"builder": "names"},
        "arm": [{"name": "headline"}, {"name": "side", "seeds": [1]}],
    })
    assert [spec.name for spec in recipe.runs()] == ["headline,seed=1", "headline,seed=2", "headline,seed=3",
                                                    "side,seed=1"]


@pytest.mark.parametrize("change, message", [
    ({"arm": [{"name": "a", "seeds": [2, 2]}]}, "arm a: 'seeds' repeats a seed"),
    ({"arm": [{"name": "a", "seeds": []}]}, "arm a: 'seeds' must be a non-empty list of integers"),
    ({"arm": [{"name": "a", "seeds": 3}]}, "arm a: 'seeds' must be a non-empty list of integers"),
    ({"steps": 0}, "'steps' must be positive"),
    ({"seeds": [1, 1]}, "repeats a seed"),
    ({"seeds": "1"}, "'seeds' must be a list"),
    ({"steps": "3"}, "'steps' must be an integer, not '3'"),
    ({"steps": True}, "'steps' must be an integer, not True"),
    ({"purpose": 3}, "'purpose' must be a string, not 3"),
    ({"flags": {"seed": 3}}, "--seed is set by the runner"),
    ({"flags": {"--n-layer": 3}}, "without the leading dashes"),
    ({"grid": {"n-layer": 3}}, "must be a non-empty list"),
    ({"probes": ["x-ray"]}, "unknown probes"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"grid": {"learning-rate": [1e-3, 0.001]}}, "[grid] learning-rate repeats the value 0.001"),
    ({"grid": {"type": ["transformer", "transformer"]}}, "[grid] type repeats the value transformer"),
    ({"grid": {"input": ["a/b"]}}, "[grid] input: the value 'a/b' has a '/' or '..'"),
    ({"grid": {"input": [".."]}}, "[grid] input: the value '..' has a '/' or '..'"),
    ({"arm": [{"name": "../elsewhere"}]}, "arm name '../elsewhere' has a '/' or '..'"),
    ({"arm": [{"name": "a/b"}]}, "arm name 'a/b' has a '/' or '..'"),
    ({"probes": 5}, "'probes' must be a list of probe names"),
    ({"probes": "samples"}, "'probes' must be a list of probe names, e.g. [\"samples\"], not 'samples'"),
    ({"flags": 3}, "'flags' must be a table, not 3"),
    ({"grid": [1]}, "'grid' must be a table, not [1]"),
    ({"dataset": {"builder": ["names"]}}, "[dataset]: 'builder' must be a string"),
    ({"dataset": {"builder": "names", "seed": "x"}}, "[dataset]: 'seed' must be an integer"),
    ({"arm": 3}, "'arm' must be a list of [[arm]] tables"),
    ({"arm": [{"name": "a", "flags": 3}]}, "[[arm]] 'a': 'flags' must be a table"),
    ({"variant": 3}, "'variant' must be a string"),
])
def test_a_bad_recipe_is_one_line_naming_the_problem(change, message):
    table = {"purpose": "p", "steps": 10, "seeds": [1], "dataset": {"builder": "names"}, **change}
    with pytest.raises(RecipeError) as error:
        parse_recipe("r", table)
    assert message in str(error.value) and "\n" not in str(error.value)


# -----------------------------------------------------------------------------
# training a recipe


def test_a_recipe_trains_every_run_and_records_what_made_it(trained):
    assert trained.run_dirs("tiny") == ["type=bigram,seed=1", "type=transformer,seed=1"]
    run = trained.results / "tiny" / "type=transformer,seed=1"
    config = json.loads((run / "config.json").read_text())
    assert config["command"].startswith("python upstream/makemore.py -i ")
    assert config["argv"][config["argv"].index("--seed") + 1] == "1" and config["threads"] == 1
    resolved = config["resolved"]  # every flag, its default included, as the spine's parser resolved it
    assert resolved["seed"] == 1 and resolved["type"] == "transformer" and resolved["eval-interval"] == 10
    assert resolved["learning-rate"] == load_module(ROOT / "upstream/makemore.py").parse_args(["-i", "x"]).learning_rate
    assert config["code"] == {"digest": apply.Project(ROOT).code_digest("spine"),
                              "spine": {"path": "upstream/makemore.py",
                                        "sha256": file_sha256(ROOT / "upstream/makemore.py")}, "patches": []}
    data = config["dataset"]["files"][0]
    assert data["sha256"] == file_sha256(ROOT / data["path"]) == file_sha256(trained.names_file)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in metrics] == [0, 10, 20, 30]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["final_test_loss"] == metrics[-1]["test_loss"]
    assert summary["best_test_loss"] == min(record["test_loss"] for record in metrics)
    assert summary["samples"]["n"] == 500 == sum(summary["samples"][g] for g in ("in_train", "in_test", "new"))
    assert "samples that are new" in (run / "samples.txt").read_text()
    assert "tiny: 2 trained" in trained.first_call


def test_a_finished_run_keeps_its_best_weights_but_not_its_checkpoint(trained):
    for name in trained.run_dirs("tiny"):
        run = trained.results / "tiny" / name
        assert (run / "model.pt").is_file() and not (run / "checkpoint.pt").exists()


def test_the_recorded_command_reproduces_the_run(trained, tmp_path):
    run = trained.results / "tiny" / "type=transformer,seed=1"
    config = json.loads((run / "config.json").read_text())
    argv = config["argv"]
    argv[argv.index("-o") + 1] = str(tmp_path / "again")
    env = dict(os.environ, OMP_NUM_THREADS=str(config["threads"]))
    subprocess.run([sys.executable, *argv], cwd=ROOT, check=True, capture_output=True, env=env)
    losses = [{k: r[k] for k in ("step", "train_loss", "test_loss")}
              for r in map(json.loads, (tmp_path / "again" / "metrics.jsonl").read_text().splitlines())]
    recorded = [{k: r[k] for k in ("step", "train_loss", "test_loss")}
                for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert losses == recorded


def test_a_second_call_trains_nothing_and_touches_no_finished_run(trained, capsys):
    before = {name: snapshot(trained.results / "tiny" / name) for name in trained.run_dirs("tiny")}
    assert trained.main("tiny") == 0
    assert "2 finished, 0 to train" in capsys.readouterr().out
    assert {name: snapshot(trained.results / "tiny" / name) for name in trained.run_dirs("tiny")} == before


def test_listing_shows_each_recipe_its_purpose_and_finished_count(trained, capsys):
    trained.write("untrained", recipe_text(trained.names_file, purpose="not yet"))
    assert trained.main() == 0
    listing = capsys.readouterr().out
    assert "tiny                   2/2 finished  a test recipe" in listing
    assert "untrained              0/4 finished  not yet" in listing


def test_an_interrupted_recipe_finishes_without_retraining_finished_runs(lab, capsys):
    # 2000 bigram steps: about a second of training (it costs little) left when the second run's
    # first checkpoint appears, however busy the machine
    lab.write("slow", recipe_text(lab.names_file, steps=2000, grid='type = ["bigram"]', eval_interval=100))
    first, second = (lab.results / "slow" / f"type=bigram,seed={s}" for s in (1, 2))
    runner = subprocess.Popen([sys.executable, "-m", "runs", *lab.argv("slow")], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300  # generous: the machine may be shared
    while not ((first / "summary.json").is_file() and (second / "checkpoint.pt").is_file()):
        assert runner.poll() is None and time.monotonic() < deadline, runner.stdout.read()
        time.sleep(0.05)
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) == 130
    assert not (second / "summary.json").exists()
    finished = snapshot(first)

    assert lab.main("slow") == 0
    assert "1 finished, 1 to train" in capsys.readouterr().out
    assert snapshot(first) == finished
    assert "resuming from step" in (second / "train.log").read_text()
    steps = [json.loads(line)["step"] for line in (second / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(0, 2001, 100))


def test_a_failing_run_is_reported_and_the_others_still_finish(lab, capsys):
    # the names have no capital letters: a prompt of one is refused when the data is read, at run time
    lab.write("mixed", recipe_text(lab.names_file, grid='type = ["bigram"]\nprompt = ["a", "Z"]', seeds="[1]"))
    assert lab.main("mixed") == 1
    output = capsys.readouterr().out
    assert "type=bigram,prompt=Z,seed=1: failed (exit 1)" in output
    assert "--prompt has characters the model does not know" in output
    assert (lab.results / "mixed" / "type=bigram,prompt=a,seed=1" / "summary.json").is_file()


def test_a_checkpoint_that_would_run_code_is_never_resumed(lab, capsys, tmp_path):
    from runs.recipe import load_recipe
    from runs.runner import prepare
    from test_probes import Opens

    lab.write("one", recipe_text(lab.names_file, grid='type = ["bigram"]', seeds="[1]"))
    job, = prepare(load_recipe("one", lab.recipes), lab.results, lab.cache)
    job.directory.mkdir(parents=True)
    (job.directory / "config.json").write_text(json.dumps(job.config))  # as if it had started here
    marker = tmp_path / "it ran"
    torch.save({"model": {}, "payload": Opens(marker)}, job.directory / "checkpoint.pt")
    assert lab.main("one") == 1
    out = capsys.readouterr().out
    assert "type=bigram,seed=1: failed: " in out and "is not a checkpoint of ours" in out
    assert not marker.exists() and not (job.directory / "summary.json").exists()


def test_a_run_whose_loss_became_nan_fails_and_is_not_a_result(lab, capsys):
    lab.write("wild", recipe_text(lab.names_file, grid='type = ["bigram"]\nlearning-rate = [1e30]', seeds="[1]"))
    assert lab.main("wild") == 1
    assert "learning-rate=1e+30,seed=1: failed: training diverged: train loss nan at step 10" in capsys.readouterr().out
    assert not (lab.results / "wild" / "type=bigram,learning-rate=1e+30,seed=1" / "summary.json").exists()


def test_quick_shrinks_the_steps_and_keeps_out_of_the_results(lab, tmp_path, monkeypatch, capsys):
    lab.write("long", recipe_text(lab.names_file, steps=100000, grid='type = ["bigram"]', seeds="[1]",
                                  eval_interval=500))
    monkeypatch.setattr(cli, "QUICK_DIR", tmp_path / "quick")
    assert cli.main(["long", "--quick", "--recipes", str(lab.recipes), "--cache", str(lab.cache)]) == 0
    run = tmp_path / "quick" / "long" / "type=bigram,seed=1"
    config = json.loads((run / "config.json").read_text())
    assert config["quick"] and config["steps"] == 200 and config["flags"]["eval-interval"] == 20
    assert json.loads((run / "summary.json").read_text())["steps"] == 200
    assert not (lab.results / "long").exists()


# -----------------------------------------------------------------------------
# stopping: a training stops cleanly however many stop signals come from its runner


class FakeChild:
    def __init__(self):
        self.signals = []

    def send_signal(self, signum):
        self.signals.append(signum)


def test_a_runner_passes_on_every_ctrl_c_but_asks_each_training_to_stop_once_otherwise(capsys):
    from runs.runner import Runner

    runner = Runner([])
    children = [FakeChild(), FakeChild()]
    runner.children.update(children)
    runner.stop(signal.SIGTERM, None)
    runner.stop(signal.SIGTERM, None)
    assert [child.signals for child in children] == [[signal.SIGTERM]] * 2
    runner.stop(signal.SIGINT, None)  # a person's Ctrl-C: a second one aborts, as typed at a training
    runner.stop(signal.SIGINT, None)
    assert [child.signals for child in children] == [[signal.SIGTERM, signal.SIGINT, signal.SIGINT]] * 2
    assert capsys.readouterr().err.count("stopping:") == 1


def processes_of(directory):
    """The processes (not zombies) whose command line names this run folder: its training or probes."""
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if proc.name.isdigit() and str(directory).encode() in argv and state != "Z":
                found.append(int(proc.name))
    return found


def start_training(lab, *options, steps=2000):
    """A runner training one tiny run (about a second of steps), once the run's first checkpoint is saved."""
    lab.write("one", recipe_text(lab.names_file, steps=steps, grid='type = ["bigram"]', seeds="[1]",
                                 eval_interval=500))
    run = lab.results / "one" / "type=bigram,seed=1"
    runner = subprocess.Popen([sys.executable, "-m", "runs", *lab.argv("one"), *options], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300  # generous: the machine may be shared
    while not (run / "checkpoint.pt").is_file():
        assert runner.poll() is None and time.monotonic() < deadline, runner.stdout.read()
        time.sleep(0.02)
    return runner, run


def test_list_names_the_unfinished_runs_and_run_trains_exactly_one(lab, capsys):
    lab.write("two", recipe_text(lab.names_file, steps=20, grid='type = ["bigram"]', seeds="[1, 2]"))
    assert lab.main("two", "--list") == 0
    assert capsys.readouterr().out == "type=bigram,seed=1\ntype=bigram,seed=2\n"
    assert lab.main("two", "--run", "type=bigram,seed=2") == 0
    assert lab.run_dirs("two") == ["type=bigram,seed=2"]
    assert (lab.results / "two" / "type=bigram,seed=2" / "summary.json").is_file()
    capsys.readouterr()
    assert lab.main("two", "--list") == 0 and capsys.readouterr().out == "type=bigram,seed=1\n"
    assert lab.main("two", "--run", "nope") == 1 and "has no run 'nope'" in capsys.readouterr().err


def test_two_processes_never_train_one_run(lab, capsys):
    """A scheduler may start `--run` of a run that another process trains: the second leaves it alone."""
    runner, run = start_training(lab, "--run", "type=bigram,seed=1", steps=10 ** 6)  # stopped below
    try:
        assert lab.main("one", "--run", "type=bigram,seed=1") == 1
        assert "another process is training it: left to that one" in capsys.readouterr().out
        assert lab.main("one") == 1  # the pool, too, leaves it to its trainer
        assert "1 busy" in capsys.readouterr().out
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=60)


def assert_stopped_cleanly_and_resumable(lab, run, capsys):
    """The training saved a checkpoint and exited without a traceback or a half-written file, and
    the next call resumes it (shown here by the trainer's own --resume, which the runner calls, run
    in this process: the checkpoint is what is tested, not a second start of torch)."""
    from runs.recipe import load_recipe
    from runs.runner import prepare

    deadline = time.monotonic() + 60
    while processes_of(run.resolve()):
        assert time.monotonic() < deadline, "the training did not stop"
        time.sleep(0.05)
    log = (run / "train.log").read_text()
    assert "checkpoint saved; continue with --resume" in log and "Traceback" not in log, log
    assert not list(run.glob("*.tmp")) and not (run / "summary.json").exists()

    [job] = prepare(load_recipe("one", lab.recipes), lab.results, lab.cache)
    assert job.state == "resume"
    capsys.readouterr()
    assert load_module(ROOT / job.config["file"]).main([*job.config["argv"][1:], "--resume"]) == 0
    assert "resuming from step" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(0, 2001, 500))


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_training_whose_runner_is_killed_outright_checkpoints_and_resumes(lab, capsys):
    runner, run = start_training(lab)
    runner.kill()
    runner.wait(timeout=10)
    assert_stopped_cleanly_and_resumable(lab, run, capsys)


def test_sigterm_twice_to_the_runner_stops_its_training_cleanly(lab, capsys):
    runner, run = start_training(lab)
    runner.send_signal(signal.SIGTERM)
    time.sleep(0.01)
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) == 130
    assert "stopped; it resumes from its checkpoint next time" in runner.stdout.read()
    assert_stopped_cleanly_and_resumable(lab, run, capsys)


def test_ctrl_c_during_the_probes_says_so_and_the_next_call_runs_only_the_probes(lab, capsys):
    lab.write("one", recipe_text(lab.names_file, grid='type = ["bigram"]', seeds="[1]"))
    run = lab.results / "one" / "type=bigram,seed=1"
    runner = subprocess.Popen([sys.executable, "-m", "runs", *lab.argv("one")], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in runner.stdout:
        if "running its probes" in line:
            break
    while not processes_of(run.resolve()):
        assert runner.poll() is None, runner.stdout.read()
        time.sleep(0.01)
    runner.send_signal(signal.SIGINT)
    output = runner.stdout.read()
    assert runner.wait(timeout=60) == 130
    assert "probes interrupted; they rerun next time" in output
    assert "resumes from its checkpoint" not in output
    assert not (run / "summary.json").exists()
    trained = snapshot(run)

    assert lab.main("one") == 0
    again = capsys.readouterr().out
    assert "trained earlier; running its probes" in again and "resuming" not in again
    assert (run / "summary.json").is_file()
    assert snapshot(run)["metrics.jsonl"] == trained["metrics.jsonl"]
    assert "resuming from step" not in (run / "train.log").read_text()


def test_a_run_trained_to_its_last_step_goes_straight_to_its_probes(tmp_path):
    from runs.runner import STATE_FILE, run_state

    config = {"argv": ["x"], "torch": "2", "code": {"digest": "d"}, "dataset": {"files": [{"sha256": "s"}]}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert run_state(tmp_path, config) == ("fresh", None)
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    assert run_state(tmp_path, config) == ("resume", None)
    (tmp_path / STATE_FILE).write_text(json.dumps({"wall_s": 1.0, "trained": True}))
    assert run_state(tmp_path, config) == ("probe", None)
    assert run_state(tmp_path, {**config, "argv": ["y"]})[0] == "fresh"  # other flags: train again
    (tmp_path / "summary.json").write_text("{}")
    assert run_state(tmp_path, config) == ("finished", None)


# -----------------------------------------------------------------------------
# sampling a trained run: python -m runs sample RUN_DIR


def sampled(capsys, *argv):
    assert cli.main(["sample", *map(str, argv)]) == 0
    groups = read_samples_text(capsys.readouterr().out)
    return [item for group in ("in train", "in test", "new") for item in groups[group]]


def read_samples_text(text):
    path = Path(tempfile.mkdtemp()) / "samples.txt"
    path.write_text(text)
    return read_samples(path.parent)


def test_sample_rebuilds_a_runs_model_from_its_own_flags(trained, capsys):
    run = trained.results / "tiny" / "type=transformer,seed=1"  # a tiny transformer: no default size fits
    first = sampled(capsys, run, "-n", 12, "--prompt", "ma")
    assert len(first) == 12 and all(item.startswith("ma") for item in first)
    assert sampled(capsys, run, "-n", 12, "--prompt", "ma") == first  # the run's seed by default
    assert sampled(capsys, run, "-n", 12, "--prompt", "ma", "--seed", 99) != first


def test_sample_rebuilds_a_dataset_that_is_gone_and_refuses_one_that_changed(trained, capsys,
                                                                              tmp_path, monkeypatch):
    from runs import sample

    run = tmp_path / "tiny" / "type=bigram,seed=1"
    shutil.copytree(trained.results / "tiny" / "type=bigram,seed=1", run)
    config = json.loads((run / "config.json").read_text())
    for entry in config["dataset"]["files"]:
        entry["path"] = str(tmp_path / "gone" / "names.txt")  # as on a fresh clone: no dataset cache
    (run / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(sample, "CACHE_DIR", tmp_path / "cache")
    assert len(sampled(capsys, run, "-n", 5)) == 5
    assert list((tmp_path / "cache").glob("names-*/names.txt"))

    config["dataset"]["files"][0]["sha256"] = "0" * 64
    (run / "config.json").write_text(json.dumps(config))
    assert cli.main(["sample", str(run)]) == 1
    assert "its dataset cannot be rebuilt as it was" in capsys.readouterr().err


def test_sample_refuses_more_samples_than_fit_in_memory(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sample", "any/run", "-n", "100000000"])
    assert "-n must be 1 to 10,000" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    ("not a run", "is not a run folder: it has no config.json"),
    ("no weights", "has no model.pt: weights are not committed; train the recipe into a folder of your own "
                   "(python -m runs tiny --results out/mine) and sample out/mine/tiny/type=bigram,seed=1"),
    ("unfinished", "has no model.pt: train it first (python -m runs tiny)"),
    ("prompt", "--prompt has characters the model does not know: 'Z'"),
    ("long prompt", "characters: the model writes items of at most"),
    ("variant", "variant 'warp-drive': "),
    ("flags", "says: unrecognized arguments: --warp 9"),
])
def test_sample_errors_are_one_line(trained, capsys, tmp_path, change, message):
    run = tmp_path / "type=bigram,seed=1"
    shutil.copytree(trained.results / "tiny" / "type=bigram,seed=1", run)
    config = json.loads((run / "config.json").read_text())
    argv = ["sample", str(run)]
    if change in ("no weights", "unfinished"):
        (run / "model.pt").unlink()
        if change == "unfinished":
            (run / "summary.json").unlink()
    elif change == "prompt":
        argv += ["--prompt", "Zed"]
    elif change == "long prompt":
        argv += ["--prompt", "a" * 40]
    elif change == "variant":
        config["variant"] = "warp-drive"
    elif change == "flags":
        config["argv"] += ["--warp", "9"]
    (run / "config.json").write_text(json.dumps(config))
    if change == "not a run":
        (run / "config.json").unlink()
    assert cli.main(argv) == 1
    error = capsys.readouterr().err
    assert error.startswith("runs sample: error: ") and error.count("\n") == 1 and message in error


def test_a_recipe_cannot_be_named_after_the_sample_command(lab, capsys):
    lab.write("sample", recipe_text(lab.names_file))
    assert lab.main() == 0
    listing = capsys.readouterr().out
    assert "sample               (broken: sample.toml: 'sample' is the name of a command" in listing
    with pytest.raises(SystemExit):
        cli.main(["sample"])
    assert "usage: python -m runs sample" in capsys.readouterr().err


# -----------------------------------------------------------------------------
# bad input: one line, and nothing trained


@pytest.mark.parametrize("name, text, message", [
    ("nope", None, "no recipe 'nope'"),
    ("flag", "grid:n-expert = [4]", "unrecognized arguments: --n-expert 4"),
    ("value", "grid:type = [\"lstm\"]", "invalid choice: 'lstm'"),
    ("variant", "extra:variant = \"warp-drive\"", "no patch named 'warp-drive'"),
    ("data", "file:/no/such/names.txt", "dataset:"),
    ("toml", "raw:steps = = 3", "not valid TOML"),
    ("topk", "grid:top-k = [100]", "--top-k 100 is more than the vocabulary's"),
])
def test_bad_input_is_one_line_before_anything_trains(lab, capsys, name, text, message):
    if text is not None:
        kind, _, value = text.partition(":")
        if kind == "raw":
            lab.write(name, value)
        elif kind == "file":
            lab.write(name, recipe_text(value))
        else:
            lab.write(name, recipe_text(lab.names_file, **{kind: value}))
    assert lab.main(name) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("runs: error: ")
    assert message in error
    assert not (lab.results / name).exists()


def test_ctrl_c_before_any_run_starts_is_one_line(lab, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "prepare", interrupted)  # Ctrl-C while the dataset is built, say
    lab.write("tiny", recipe_text(lab.names_file))
    assert lab.main("tiny") == 130
    assert capsys.readouterr().err == "runs: interrupted before any run started: nothing was trained\n"


@pytest.mark.parametrize("flag", ["--results", "--cache"])
def test_a_results_or_cache_folder_that_is_a_file_is_one_line(tmp_path, capsys, flag):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(SystemExit) as exit:
        cli.main(["part3-baseline", flag, str(tmp_path / "afile" / "sub")])
    assert exit.value.code == 2 and (tmp_path / "afile").read_text() == "mine"
    assert capsys.readouterr().err.splitlines()[-1] == \
        f"python -m runs: error: {flag} {tmp_path / 'afile' / 'sub'}: {tmp_path / 'afile'} is a file, not a folder"


def test_a_flag_the_data_cannot_serve_is_one_line_before_any_run_trains(lab, capsys):
    """A held-out domain the data does not have: found when the runner reads each flag set's data
    as its runs will, before any of them trains."""
    lab.write("held", recipe_text(lab.names_file, extra='variant = "act"', grid='ponder-cost = [0.01, 0.1]\n'
                                                                               'act-max-steps = [2]\nheld-out = ["nosuch"]'))
    assert lab.main("held") == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "'nosuch' is not a domain" in error
    assert not (lab.results / "held").exists()
    lab.write("tool", recipe_text(lab.names_file, extra='variant = "tool-token"', grid='tool = ["on"]'))
    assert lab.main("tool") == 1  # names hold no calls to learn from
    assert "--tool on needs data written with tool calls" in capsys.readouterr().err
    assert not (lab.results / "tool").exists()


@pytest.mark.parametrize("source, line, problem", [
    ("import torch\n\ndef parse_args(argv):\n    return argv)\n", 4, "SyntaxError: unmatched ')'"),
    ("import torch\nimport no_such_module\n", 2, "ModuleNotFoundError: No module named 'no_such_module'"),
    ("def size():\n    return 1 / 0\n\nSIZE = size()\n", 2, "ZeroDivisionError: division by zero"),
    ("import torch\nimport broken_helper\n", 2, "SyntaxError: invalid syntax (broken_helper.py, line 1)"),
])
def test_a_variant_that_does_not_load_is_one_line_naming_its_file_and_line(tmp_path, monkeypatch, source, line,
                                                                           problem):
    from runs.runner import Job, check_flags

    file = tmp_path / "makemore.py"
    file.write_text(source)
    (tmp_path / "broken_helper.py").write_text("x = = 1\n")  # a module the variant imports
    monkeypatch.syspath_prepend(tmp_path)
    config = {"file": str(file), "argv": [str(file)], "code": {"patches": [{"name": "01-moe.patch"}]}}
    with pytest.raises(RecipeError) as error:
        check_flags([Job("seed=1", tmp_path, config, [], "fresh")], "r")
    assert str(error.value) == \
        f"recipe r: {file} does not load: line {line}: {problem} (it is the spine + 01-moe.patch)"


# -----------------------------------------------------------------------------
# stale results


def test_a_finished_run_of_other_code_is_reported_stale_and_left_alone(trained, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(trained.results, results)
    run = results / "tiny" / "type=bigram,seed=1"
    config = json.loads((run / "config.json").read_text())
    assert staleness(config) is None
    config["code"]["digest"] = "0" * 64  # as if it had run on another spine
    config["code"]["spine"]["sha256"] = "0" * 64
    (run / "config.json").write_text(json.dumps(config))
    assert staleness(config) == "the spine has changed since it ran"
    before = snapshot(run)
    argv = ["tiny", "--recipes", str(trained.recipes), "--results", str(results), "--cache", str(trained.cache)]
    cli.main(argv)
    assert "1 finished run(s) are stale (the spine has changed since it ran)" in capsys.readouterr().out
    assert snapshot(run) == before


def code_config(project, variant):
    """What the runner records of a run's code, made from a test project's files."""
    spine = {"path": "upstream/makemore.py", "sha256": file_sha256(project.spine)}
    patches = [] if variant == "spine" else [
        {"name": entry, "sha256": file_sha256(project.root / "patches" / entry)}
        for entry in project.series()[1:][:["spine", "first", "second"].index(variant)]]
    digest = apply.Project(project.root).code_digest(variant)
    return {"variant": variant, "code": {"digest": digest, "spine": spine, "patches": patches}}


def test_stale_means_the_code_changed_not_a_patch_header(tmp_path, capsys):
    from test_apply_project import Project

    project = Project(tmp_path, capsys)
    project.ok("pin")
    project.add_patch("first", "        self.depth = 1\n", "        self.depth = 2\n")
    project.add_patch("second", "    offset = 0.0\n", "    offset = 1.0\n")
    configs = {name: code_config(project, name) for name in ("spine", "first", "second")}
    assert all(staleness(config, tmp_path) is None for config in configs.values())

    first = project.patch("first")
    first.write_text(first.read_text().replace("Description: first:", "Description: first, reworded:"))
    assert all(staleness(config, tmp_path) is None for config in configs.values())

    series = project.root / "patches" / "series"
    listed = series.read_text()
    series.write_text(listed.replace("01-first.patch\n", "").replace("02-second.patch\n",
                                                                      "02-second.patch\n01-first.patch\n"))
    assert staleness(configs["second"], tmp_path) == "the patch series up to its variant has changed since it ran"
    series.write_text(listed)
    assert all(staleness(config, tmp_path) is None for config in configs.values())

    first.write_text(first.read_text().replace("+        self.depth = 2", "+        self.depth = 3"))
    assert staleness(configs["spine"], tmp_path) is None
    for name in ("first", "second"):  # the edited patch's runs and its successors'
        assert "01-first.patch" in staleness(configs[name], tmp_path)

    (project.spine.parent / "README.md").write_text("notes beside the spine\n")  # part of the spine's tree
    assert "a file beside the spine in upstream/" in staleness(configs["spine"], tmp_path)
    (project.spine.parent / "README.md").unlink()
    assert staleness(configs["spine"], tmp_path) is None

    project.spine.write_text(project.spine.read_text() + "# an edit\n")
    project.ok("pin")
    assert staleness(configs["spine"], tmp_path) == "the spine has changed since it ran"


def test_a_run_whose_variant_no_longer_builds_is_stale_with_the_reason(tmp_path, capsys):
    from test_apply_project import Project

    project = Project(tmp_path, capsys)
    project.ok("pin")
    project.add_patch("first", "        self.depth = 1\n", "        self.depth = 2\n")
    config = code_config(project, "first")
    project.patch("first").unlink()
    assert staleness(config, tmp_path).startswith("its variant no longer builds: ")


# -----------------------------------------------------------------------------
# the committed recipes and results


def test_every_committed_recipe_prepares_cleanly(tmp_path):
    """Its variant applies, its dataset builds, and the variant's parser accepts every run's flags."""
    from runs.recipe import load_recipe, recipe_names
    from runs.runner import prepare

    assert recipe_names()
    for name in recipe_names():
        jobs = prepare(load_recipe(name), tmp_path / "results", tmp_path / "cache")
        assert {job.state for job in jobs} == {"fresh"}


def test_committed_results_are_finished_runs_of_their_recipes():
    """And current, but for a recipe that the README's table says is retraining (its figures say
    which runs are stale): between sessions, while a patch's runs are retrained."""
    from runs.recipe import load_recipe
    from runs.runner import resolved_flags, variant_code
    from runs.store import RESULTS_DIR, staleness

    modules = {}
    retraining = {name for row in (ROOT / "README.md").read_text().splitlines() if "| retraining: " in row
                  for name in row.split("| retraining: ")[1].rstrip(" |").split(", ")}
    committed = subprocess.run(["git", "ls-files", "runs/results"], cwd=ROOT, capture_output=True, text=True).stdout
    for recipe_dir in sorted(RESULTS_DIR.iterdir()) if RESULTS_DIR.is_dir() else []:
        names = {spec.name for spec in load_recipe(recipe_dir.name).runs()}
        for run in (path for path in recipe_dir.iterdir() if path.is_dir()):
            if f"{run.relative_to(ROOT).as_posix()}/config.json" not in committed:
                continue  # training here, now
            assert run.name in names, f"{run} is not a run of recipe {recipe_dir.name}"
            assert {"config.json", "metrics.jsonl", "summary.json", "samples.txt"} <= {p.name for p in run.iterdir()}
            config = json.loads((run / "config.json").read_text())
            stale = staleness(config)
            assert stale is None or recipe_dir.name in retraining, f"{run} is stale: {stale}"
            if stale is None:  # its resolved flags are what its own variant's parser makes of its command
                if config["variant"] not in modules:
                    modules[config["variant"]] = load_module(ROOT / variant_code(config["variant"])["file"])
                args = modules[config["variant"]].parse_args(config["argv"][1:])
                assert config["resolved"] == resolved_flags(args), run


def test_every_file_a_run_folder_holds_is_declared_once_and_git_agrees():
    """runs.store.RUN_FILES is the one list: the committed results hold only its committed files,
    .gitignore ignores exactly the others, and runs/README.md's table says the same."""
    from runs.store import RUN_FILES

    committed = subprocess.run(["git", "ls-files", "runs/results"], cwd=ROOT, capture_output=True,
                               text=True).stdout.split("\n")
    names = {Path(path).name for path in committed if path.count("/") == 4}
    assert names <= {f.name for f in RUN_FILES if f.committed}
    for file in RUN_FILES:
        ignored = subprocess.run(["git", "check-ignore", "-q", f"runs/results/r/run,seed=1/{file.name}"], cwd=ROOT)
        assert (ignored.returncode == 0) == (not file.committed), file.name
    table = [f"| `{f.name}` | {'yes' if f.committed else 'no'} | {f.holds} |" for f in RUN_FILES]
    readme = (ROOT / "runs" / "README.md").read_text()
    assert "| file | committed | what it holds |\n|---|---|---|\n" + "\n".join(table) + "\n\n" in readme


def test_a_second_runner_on_the_same_recipe_is_refused(lab, capsys):
    from runs.runner import recipe_lock

    lab.write("tiny", recipe_text(lab.names_file, grid='type = ["bigram"]', seeds="[1]"))
    with recipe_lock(lab.results / "tiny"):
        assert lab.main("tiny") == 1
    assert "another runner is training" in capsys.readouterr().err
    assert not (lab.results / "tiny" / "type=bigram,seed=1").exists()
