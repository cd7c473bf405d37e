"""The neuro-symbolic patch's hook (04-neuro-symbolic.patch, makemore.py's side): list tasks become
the guide's rows, a run with --synth-cycles wakes and sleeps and records every wake, the model's
programs become proposals and a grammar, and bad flags are one line. The symbolic side is
test_programs.py's; that the patch at its defaults trains like the variant before is test_series.py's."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import apply
from conftest import TINY_MODEL_FLAGS
from runs import load_module
from runs.datasets import build, write_items

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def variant():
    return apply.Project(ROOT).ensure_variant("neuro-symbolic") / "makemore.py"


@pytest.fixture(scope="module")
def mm(variant):
    return load_module(variant)


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    """The lab's list tasks: 12 training tasks and 10 held-out ones (the trainer needs 10 a file)."""
    folder = tmp_path_factory.mktemp("lists")
    domains = build("list_tasks", 0)
    files = [write_items(domains["lists"][:12], folder / "lists.txt"),
             write_items(domains["lists.test"][:10], folder / "lists.test.txt")]
    return ",".join(map(str, files))


def synth_command(task_files, work_dir, *flags):
    return ["-i", task_files, "-o", str(work_dir), *TINY_MODEL_FLAGS, "--synth-nodes", "200",
            "--synth-proposals", "4", "--synth-dreams", "20", *flags]


def train(variant, task_files, work_dir, *flags):
    return subprocess.run([sys.executable, str(variant), *synth_command(task_files, work_dir, *flags)],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_rows_are_trained_on_their_answers_alone(mm):
    vocab = mm.Vocabulary(mm.programs.ALPHABET)
    data = mm.Data(vocab, 40, ["rows"], None, None)
    split = mm.encode_rows(["[1]>[2]=(cdr $0)", "[1]>2|[3]=4"], data)
    for row, item in enumerate(split.items):
        scored = (split.y[row] != -1).nonzero().squeeze(1).tolist()
        assert scored == list(range(item.index("=") + 1, len(item) + 1))  # the answer's characters and <stop>


def test_a_task_file_becomes_the_guides_rows(mm, task_files):
    args = mm.parse_args(["-i", task_files, "--synth-cycles", "2", "--max-steps", "10"])
    data = mm.for_synthesis(mm.for_tasks(mm.load_data(args.input_file, args.seed), args), args)
    train_tasks, test_tasks = data.tasks
    assert (len(train_tasks), len(test_tasks)) == (12, 10)  # every line of a file, whatever the trainer's split
    assert data.vocab.chars == mm.programs.ALPHABET and data.block_size == mm.programs.ROW_CHARS + 1
    assert all("|" in row and "=" in row for row in data.train.items)  # answers only, before any program
    held_out = {t.name for t in test_tasks}
    assert not held_out & {t.name for t in train_tasks}


def test_a_run_wakes_sleeps_and_records_every_wake(mm, task_files, tmp_path):
    # in this process: the run's records are the point; the real command line is tested below
    assert mm.main(synth_command(task_files, tmp_path / "run", "--synth-cycles", "2", "--max-steps", "40",
                                 "--eval-interval", "20")) == 0
    record = json.loads((tmp_path / "run" / "synth.json").read_text())
    assert [w["cycle"] for w in record["wakes"]] == [0, 1, 2]  # two cycles, then the last wake
    assert [w["step"] for w in record["wakes"]] == [0, 20, 40]
    for wake in record["wakes"]:
        assert len(wake["tasks"]) == 22 and wake["solved"]["n_test"] == 10
        for result_ in wake["tasks"].values():
            assert result_["nodes"] >= 1 and (result_["program"] is None) == (result_["cost"] is None)
    last = record["wakes"][-1]
    assert len(last["neural"]) == 50  # 5 held-out inputs of each held-out task
    assert all(row["router"] == (row["symbolic"] if last["tasks"][row["task"]]["program"] else row["neural"])
               for row in last["neural"])
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"synth/solved_test", "synth/solved_test_hard", "synth/library"} <= metrics[-1].keys()


def test_the_models_programs_become_proposals_and_a_grammar(mm, task_files):
    args = mm.parse_args(["-i", task_files, "--synth-cycles", "1", "--max-steps", "10", *TINY_MODEL_FLAGS,
                          "--synth-proposals", "6"])
    data = mm.for_synthesis(mm.for_tasks(mm.load_data(args.input_file, args.seed), args), args)
    torch.manual_seed(0)
    model = mm.create_model(args.type, mm.model_config(args, data))
    synth = mm.SynthTraining(args, data, Path("."))
    propose = synth.guide(model, 0)
    task = data.tasks[0][0]
    weights, proposals = propose(task)
    names = {name for name, _ in synth.loop.library.heads()}
    assert set(weights) == names  # every head keeps a weight: nothing becomes impossible
    for program in proposals:  # an untrained model rarely writes one, but what it writes must type
        assert mm.programs.type_checks(program, task.output_type, (task.input_type,), synth.loop.library)


@pytest.mark.parametrize("flags, message", [
    (["--synth-cycles", "-1", "--max-steps", "10"], "--synth-cycles must not be negative"),
    (["--synth-cycles", "2"], "--synth-cycles needs --max-steps"),
    (["--synth-cycles", "2", "--max-steps", "10", "--synth-nodes", "0"], "--synth-nodes must be positive"),
    (["--synth-cycles", "2", "--max-steps", "10", "--tool", "on"], "exclude each other"),
])
def test_bad_synthesis_flags_are_one_line(mm, flags, message, tmp_path, capsys):
    # the variant's main in this process, exiting as the command would; the real command line's
    # one-line error is the next test's
    with pytest.raises(SystemExit) as exit:
        mm.main(["-o", str(tmp_path / "run"), *flags])
    error = capsys.readouterr().err
    assert exit.value.code == 2
    assert message in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_items_that_are_not_list_tasks_are_one_line(variant, names_file, tmp_path):
    names_copy = write_items(names_file.read_text().split()[:20], tmp_path / "people.test.txt")
    result = train(variant, f"{names_file},{names_copy}", tmp_path / "run", "--synth-cycles", "1",
                   "--max-steps", "10")
    assert result.returncode == 1
    assert "is not a list task" in result.stderr and len(result.stderr.strip().splitlines()) == 1
