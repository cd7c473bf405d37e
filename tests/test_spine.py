"""The spine, upstream/makemore.py, trained for a few dozen steps on tiny data."""

import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY_MODEL_FLAGS as TINY
from runs.datasets import census_first_names, write_items

ROOT = Path(__file__).resolve().parent.parent
SPINE = ROOT / "upstream" / "makemore.py"


@pytest.fixture(scope="module")
def makemore():
    spec = importlib.util.spec_from_file_location("makemore", SPINE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train(makemore, input_file, work_dir, *flags):
    code = makemore.main(["-i", str(input_file), "-o", str(work_dir), *TINY, *flags])
    return code, read_metrics(work_dir)


def read_metrics(work_dir):
    path = Path(work_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def losses(records):
    return [{k: v for k, v in r.items() if k == "step" or "loss" in k} for r in records]


@pytest.mark.parametrize("model_type", ["bigram", "mlp", "rnn", "gru", "bow", "transformer"])
def test_every_model_type_learns_in_30_steps(makemore, names_file, tmp_path, model_type):
    code, records = train(makemore, names_file, tmp_path, "--type", model_type, "--max-steps", "30",
                          "--eval-interval", "30", "--learning-rate", "1e-2")
    assert code == 0
    assert [r["step"] for r in records] == [0, 30]
    assert records[1]["train_loss"] < records[0]["train_loss"] - 0.1
    assert records[1]["test_loss"] < records[0]["test_loss"] - 0.1


def test_metrics_records_have_the_documented_keys(makemore, names_file, tmp_path):
    _, records = train(makemore, names_file, tmp_path, "--max-steps", "20", "--eval-interval", "10")
    assert [r["step"] for r in records] == [0, 10, 20]
    for record in records[1:]:
        assert set(record) == {"step", "train_loss", "test_loss", "tokens_per_s", "step_ms"}
        assert record["tokens_per_s"] > 0 and record["step_ms"] > 0
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "checkpoint.pt").is_file()


def test_the_same_seed_gives_identical_losses(makemore, names_file, tmp_path):
    flags = ("--max-steps", "40", "--eval-interval", "10", "--seed", "7")
    _, first = train(makemore, names_file, tmp_path / "a", *flags)
    _, second = train(makemore, names_file, tmp_path / "b", *flags)
    _, other_seed = train(makemore, names_file, tmp_path / "c", "--max-steps", "40", "--eval-interval", "10")
    assert losses(first) == losses(second)
    assert losses(first) != losses(other_seed)


def test_resume_ends_with_the_same_losses_as_an_uninterrupted_run(makemore, names_file, tmp_path):
    _, uninterrupted = train(makemore, names_file, tmp_path / "whole", "--max-steps", "40", "--eval-interval", "10")
    train(makemore, names_file, tmp_path / "split", "--max-steps", "20", "--eval-interval", "10")
    code, resumed = train(makemore, names_file, tmp_path / "split", "--max-steps", "40", "--eval-interval", "10",
                          "--resume")
    assert code == 0
    assert losses(resumed) == losses(uninterrupted)


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(makemore, names_file, tmp_path):
    """Interrupt a real training process at whatever step it has reached: it stops at a step
    boundary with exit 130, and --resume finishes with the losses of an uninterrupted run. (The
    resumed and the uninterrupted run train in this process, whose torch threads the stopped one
    is given, for the same arithmetic.)"""
    # 400 steps: the Ctrl-C comes at step 50, with seconds of training still to go
    flags = ["--max-steps", "400", "--eval-interval", "50"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen([sys.executable, str(SPINE), "-i", str(names_file), *TINY, *flags,
                                "-o", str(tmp_path / "cut")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while len(read_metrics(tmp_path / "cut")) < 2 and time.time() < deadline:  # past step 50
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    stopped_at = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["step"]
    assert 50 <= stopped_at < 400
    assert f"stopped at step {stopped_at}" in stderr
    assert train(makemore, names_file, tmp_path / "cut", *flags, "--resume")[0] == 0
    _, whole = train(makemore, names_file, tmp_path / "whole", *flags)
    assert losses(read_metrics(tmp_path / "cut")) == losses(whole)


def test_several_input_files_are_several_domains(makemore, names_file, tmp_path):
    sums = write_items([f"{a}+{b}={a + b}" for a in range(12) for b in range(12)], tmp_path / "sums.txt")
    _, records = train(makemore, f"{names_file},{sums}", tmp_path / "out", "--max-steps", "10",
                       "--eval-interval", "10")
    assert {"test_loss/names", "test_loss/sums"} <= set(records[-1])
    data = makemore.load_data(f"{names_file},{sums}", seed=1)
    assert data.domains == ["names", "sums"]
    # each file is split on its own: 10% of each is held out
    assert (data.test.domain == 0).sum() == 40 and (data.test.domain == 1).sum() == 14
    assert set(data.vocab.chars) == set("".join(census_first_names()[:400])) | set("0123456789+=")


def test_data_follows_makemores_contract(makemore, names_file):
    data = makemore.load_data(str(names_file), seed=3407)
    assert len(data.test) == 40 and len(data.train) == 360
    assert sorted(data.train.items + data.test.items) == sorted(census_first_names()[:400])
    item = data.train.items[0]
    tokens = data.vocab.encode(item)
    assert data.train.x[0, 0] == 0 and data.train.x[0, 1:1 + len(item)].tolist() == tokens
    assert data.train.y[0, :len(item)].tolist() == tokens and data.train.y[0, len(item)] == 0
    assert (data.train.y[0, len(item) + 1:] == -1).all()
    assert data.block_size == max(len(n) for n in census_first_names()[:400]) + 1


def test_sample_only_prints_samples_from_the_best_model(makemore, names_file, tmp_path, capsys):
    train(makemore, names_file, tmp_path, "--max-steps", "10", "--eval-interval", "10")
    capsys.readouterr()
    assert makemore.main(["-i", str(names_file), "-o", str(tmp_path), *TINY, "--sample-only", "--prompt", "ma"]) == 0
    lines = capsys.readouterr().out.splitlines()
    report = lines[lines.index("-" * 80):]
    samples = [line for line in report if line != "-" * 80 and " samples that are " not in line]
    assert len(samples) == 50 and all(sample.startswith("ma") for sample in samples)
    assert sum(int(line.split()[0]) for line in report if " samples that are " in line) == 50


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("case, message", [
    ("missing", "not found"),
    ("empty", "is empty"),
    ("blank", "no usable lines"),
    ("too-few", "at least 10 are needed"),
    ("latin-1", "not UTF-8 text"),
])
def test_bad_input_files_give_one_line_and_exit_1(makemore, tmp_path, capsys, case, message):
    files = {"missing": tmp_path / "nope.txt", "empty": write(tmp_path / "e.txt", ""),
             "blank": write(tmp_path / "b.txt", "\n  \n\t\n"), "too-few": write(tmp_path / "f.txt", "ab\ncd\n"),
             "latin-1": tmp_path / "l.txt"}
    files["latin-1"].write_bytes("zoë\n".encode("latin-1") * 20)
    assert makemore.main(["-i", str(files[case]), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("makemore: error: ") and message in err and err.count("\n") == 1


def test_resume_with_another_vocabulary_is_refused(makemore, names_file, tmp_path, capsys):
    train(makemore, names_file, tmp_path, "--max-steps", "10", "--eval-interval", "10")
    upper = write(tmp_path / "upper.txt", "".join(n.upper() + "\n" for n in census_first_names()[:50]))
    code, _ = train(makemore, upper, tmp_path, "--max-steps", "20", "--resume")
    err = capsys.readouterr().err
    assert code == 1 and "vocabulary clash" in err and err.count("\n") == 1


def test_a_prompt_with_an_unknown_character_is_refused(makemore, names_file, tmp_path, capsys):
    code, _ = train(makemore, names_file, tmp_path, "--max-steps", "10", "--prompt", "Zoe")
    err = capsys.readouterr().err
    assert code == 1 and "'Z'" in err and err.count("\n") == 1
    assert not (tmp_path / "checkpoint.pt").exists()  # refused before any training


def test_a_finished_run_is_not_overwritten_by_a_fresh_one(makemore, names_file, tmp_path, capsys):
    train(makemore, names_file, tmp_path, "--max-steps", "10", "--eval-interval", "10")
    before = (tmp_path / "metrics.jsonl").read_text()
    code, _ = train(makemore, names_file, tmp_path, "--max-steps", "10")
    assert code == 1 and "--resume" in capsys.readouterr().err
    assert (tmp_path / "metrics.jsonl").read_text() == before


def test_default_transformer_has_about_0_2m_parameters(makemore):
    config = makemore.ModelConfig(vocab_size=27, block_size=16)
    n_params = sum(p.numel() for p in makemore.create_model("transformer", config).parameters())
    assert 0.19e6 < n_params < 0.21e6


# -----------------------------------------------------------------------------
# batches cut after their longest item


@pytest.mark.parametrize("model_type", ["bigram", "mlp", "rnn", "gru", "bow", "transformer"])
def test_a_batch_cut_after_its_longest_item_gives_the_same_loss_and_gradients(makemore, names_file,
                                                                             model_type):
    """The cut positions hold only padding: no target reads them and, every model being causal,
    no earlier position sees them. So cutting them changes nothing but the work done."""
    data = makemore.load_data(str(names_file), seed=1)
    lengths = (data.train.y != -1).sum(dim=1)
    by_length = lengths.argsort()
    rows = torch.cat([by_length[:6], by_length[len(by_length) // 2:][:1]])  # short items and a median one
    x, y = data.train.x[rows], data.train.y[rows]
    width = int(lengths[rows].max())
    assert lengths[rows].min() < width < data.block_size  # mixed lengths, and padding to cut
    torch.manual_seed(0)
    model = makemore.create_model(model_type, makemore.ModelConfig(vocab_size=len(data.vocab),
                                                                   block_size=data.block_size))

    def loss_and_grads(x, y):
        model.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    full_loss, full_grads = loss_and_grads(x, y)
    cut_loss, cut_grads = loss_and_grads(x[:, :width], y[:, :width])
    assert cut_loss == pytest.approx(full_loss, rel=1e-6)
    for full, cut in zip(full_grads, cut_grads):
        torch.testing.assert_close(cut, full, rtol=1e-5, atol=1e-7)
    batches = makemore.BatchSampler(data.train, batch_size=8, seed=1, device="cpu")
    for _ in range(20):  # the sampler cuts each batch right after its longest item
        bx, by, n_targets = batches.next()
        assert bx.size(1) == by.size(1) == (by != -1).sum(dim=1).max()
        assert n_targets == (by != -1).sum()


def test_the_cut_keeps_targets_that_a_patch_moved_away_from_the_start(makemore):
    """A patch may mask early targets (an answer-only loss, a tool's output): the cut still
    comes after the last target, not after as many positions as there are targets."""
    y = torch.tensor([[-1, -1, 5, 0, -1, -1], [3, -1, -1, -1, 0, -1], [4, 0, -1, -1, -1, -1]])
    assert makemore.used_widths(y).tolist() == [4, 5, 2]


# -----------------------------------------------------------------------------
# bad flags: one line, exit 2, nothing written


@pytest.mark.parametrize("flags, message", [
    (["--device", "cuda"], "has no cuda"),
    (["--device", "nosuch"], "is not a device"),
    (["--n-head", "3"], "must be a multiple of --n-head 3"),
    (["--n-embd", "0"], "--n-embd must be positive"),
    (["--n-layer", "-1"], "--n-layer must be positive"),
    (["--n-embd2", "0"], "--n-embd2 must be positive"),
    (["--batch-size", "0"], "--batch-size must be positive"),
    (["--learning-rate", "0"], "--learning-rate must be positive"),
    (["--weight-decay", "-0.1"], "--weight-decay must not be negative"),
    (["--sample-interval", "-5"], "--sample-interval must not be negative"),
    (["--top-k", "0"], "--top-k must be positive, or -1"),
    (["--max-steps", "0"], "--max-steps must be positive, or -1"),
    (["--max-steps", "-2"], "--max-steps must be positive, or -1"),
    (["--eval-interval", "0"], "--eval-interval must be positive"),
    (["--resume"], "no checkpoint"),
    (["--type", "nosuch"], "invalid choice"),
])
def test_bad_flags_give_one_line_and_write_nothing(makemore, names_file, tmp_path, capsys, flags, message):
    work_dir = tmp_path / "out"
    with pytest.raises(SystemExit) as exit:
        makemore.main(["-i", str(names_file), "-o", str(work_dir), *flags])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.startswith("makemore: error: ") and message in err, err
    assert err.count("\n") == 1
    assert not work_dir.exists()


def test_a_work_dir_that_is_a_file_is_refused(makemore, names_file, tmp_path, capsys):
    work_file = write(tmp_path / "out", "not a folder")
    with pytest.raises(SystemExit):
        makemore.main(["-i", str(names_file), "-o", str(work_file)])
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and err.count("\n") == 1
    assert work_file.read_text() == "not a folder"


# -----------------------------------------------------------------------------
# signals: only a person's second Ctrl-C aborts


def test_repeated_sigterm_still_stops_cleanly(names_file, tmp_path):
    """A runner, or a dying parent, may send SIGTERM more than once: every one means "checkpoint
    and stop", so the training exits 130 with its checkpoint saved, no traceback, no temp file."""
    work_dir = tmp_path / "out"
    command = [sys.executable, str(SPINE), "-i", str(names_file), *TINY, "--max-steps", "100000",
               "--eval-interval", "20", "-o", str(work_dir)]
    process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while len(read_metrics(work_dir)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    for _ in range(5):
        process.send_signal(signal.SIGTERM)
        time.sleep(0.01)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopped at step" in stderr
    assert sorted(p.name for p in work_dir.iterdir()) == ["checkpoint.pt", "metrics.jsonl", "model.pt"]


def test_only_a_second_ctrl_c_aborts(makemore):
    stop = makemore.StopRequest()
    stop.request(signal.SIGTERM, None)
    stop.request(signal.SIGTERM, None)  # programs repeat themselves: still just a request
    assert stop.requested
    with pytest.raises(KeyboardInterrupt):
        stop.request(signal.SIGINT, None)  # a person insisting


# -----------------------------------------------------------------------------
# the contracts patches build on


def test_every_model_config_knob_is_the_flag_of_the_same_name(makemore):
    args = makemore.parse_args(["--n-embd", "32", "--n-head", "2"])
    knobs = [f.name for f in dataclasses.fields(makemore.ModelConfig)]
    assert [k for k in knobs if not hasattr(args, k)] == ["block_size", "vocab_size"]
    config = makemore.model_config(args, stand_in_data(vocab=5, block_size=7))
    assert (config.n_embd, config.n_head, config.vocab_size, config.block_size) == (32, 2, 5, 7)


def stand_in_data(vocab, block_size):
    """A stand-in for load_data's result: model_config reads only these two facts from it."""
    return type("Data", (), {"vocab": [None] * vocab, "block_size": block_size})()


def test_sample_groups_sort_every_sample(makemore, names_file, tmp_path):
    train(makemore, names_file, tmp_path, "--max-steps", "10", "--eval-interval", "10")
    args = makemore.parse_args(["-i", str(names_file), "-o", str(tmp_path), *TINY])
    data = makemore.load_data(args.input_file, args.seed)
    model = makemore.create_model(args.type, makemore.model_config(args, data))
    groups = makemore.sample_groups(model, data, args, num=40, seed=1)
    assert list(groups) == ["in train", "in test", "new"] and sum(map(len, groups.values())) == 40
    assert set(groups["in train"]) <= set(data.train.items) and not set(groups["new"]) & set(data.train.items)
    counts = makemore.parameter_counts(model)
    assert counts["total"] == counts["active"] == sum(p.numel() for p in model.parameters())
