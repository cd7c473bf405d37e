"""02-act.patch: adaptive computation time over a shared block, and the task flags around it."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import apply
from conftest import TINY_MODEL_FLAGS
from runs import load_module
from runs.datasets import DatasetError, build, write_items

ROOT = Path(__file__).resolve().parent.parent
N_EMBD, N_HEAD = 16, 2


@pytest.fixture(scope="module")
def variant():
    return apply.Project(ROOT).ensure_variant("act") / "makemore.py"


@pytest.fixture(scope="module")
def mm(variant):
    return load_module(variant)


def act_model(mm, max_steps=5, fixed=0, bias=0.0, vocab=12, block_size=10, seed=0, **settings):
    """A tiny recurrent transformer. A halting bias of 0 makes tokens halt after different numbers
    of steps, which is what most of these tests need."""
    torch.manual_seed(seed)
    config = mm.ModelConfig(vocab_size=vocab, block_size=block_size, n_embd=N_EMBD, n_head=N_HEAD,
                            act_max_steps=0 if fixed else max_steps, act_fixed_steps=fixed,
                            halt_bias_init=bias, **settings)
    return mm.create_model("transformer", config)


def items(lengths, vocab=12, block_size=10, seed=1):
    """Rows <start> + tokens, padded with 0 after each item, as the data loader makes them."""
    generator = torch.Generator().manual_seed(seed)
    idx = torch.zeros(len(lengths), block_size, dtype=torch.long)
    for row, length in enumerate(lengths):
        idx[row, 1:1 + length] = torch.randint(1, vocab, (length,), generator=generator)
    return idx


def real_positions(idx):
    real = idx != 0
    real[:, 0] = True
    return real


# --- halting ---------------------------------------------------------------------------------------


def test_halting_weights_sum_to_one_and_no_token_takes_more_than_k_steps(mm, monkeypatch):
    """Let every step return a token-specific state that does not change with the step: the
    output is then (sum of the token's halting weights) x that state, so it must be the state."""
    model = act_model(mm, max_steps=6).eval()
    idx = items([9, 3, 6, 1])
    real = real_positions(idx)
    states = torch.randn(idx.numel(), N_EMBD)
    monkeypatch.setattr(model.act, "step", lambda x, going, keys, values, T: (states[going], keys, values))
    output = model.act(torch.zeros(*idx.shape, N_EMBD), real)
    torch.testing.assert_close(output[real], states.view(*idx.shape, N_EMBD)[real])
    assert (output[~real] == 0).all()
    steps = model.act.last_steps
    assert steps[real].min() >= 1 and steps[real].max() <= 6 and (steps[~real] == 0).all()
    assert len(steps[real].unique()) > 1  # tokens halted at different steps: the test saw halting


def test_a_later_token_changes_no_earlier_output_or_step_count(mm):
    model = act_model(mm).eval()
    idx = items([8, 8])
    changed = idx.clone()
    changed[:, 6] = (changed[:, 6] % 11) + 1  # another token at position 6
    logits, _ = model(idx)
    steps = model.act.last_steps.clone()
    changed_logits, _ = model(changed)
    torch.testing.assert_close(changed_logits[:, :6], logits[:, :6], rtol=0, atol=0)
    assert torch.equal(model.act.last_steps[:, :6], steps[:, :6])
    assert not torch.equal(changed_logits[:, 6:], logits[:, 6:])  # and it does change the later ones


def masked_reference(act, x, real):
    """The same computation, written the slow way: every position runs every step and halted
    positions are masked out of the update; attention is written out with an explicit causal mask.
    A position that halts shows the later steps the keys and values of its output."""
    B, T, C = x.shape
    block, H = act.block, act.block.attn.n_head
    state, keys, values = x, torch.zeros_like(x), torch.zeros_like(x)
    going, halted = real.clone(), torch.zeros(B, T)
    output, steps = torch.zeros_like(x), torch.zeros(B, T)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for n in range(act.max_steps):
        inputs = state + act.step_embedding.weight[n]
        q, k, v = block.attn.c_attn(block.ln_1(inputs)).split(C, dim=2)
        keys = torch.where(going.unsqueeze(-1), k, keys)
        values = torch.where(going.unsqueeze(-1), v, values)
        split = lambda t: t.view(B, T, H, C // H).transpose(1, 2)  # noqa: E731
        scores = split(q) @ split(keys).transpose(-2, -1) / math.sqrt(C // H)
        mixed = F.softmax(scores.masked_fill(future, float("-inf")), dim=-1) @ split(values)
        new = inputs + block.attn.c_proj(mixed.transpose(1, 2).reshape(B, T, C))
        new = new + block.mlp(block.ln_2(new))
        h = torch.sigmoid(act.halt(new)).squeeze(-1)
        stop = going & ((halted + h >= 1 - act.EPSILON) | (n == act.max_steps - 1))
        weight = torch.where(stop, 1 - halted, torch.where(going, h, torch.zeros_like(h)))
        output = output + weight.unsqueeze(-1) * new
        steps = torch.where(stop, torch.full_like(steps, n + 1), steps)
        halted = torch.where(going, halted + h, halted)
        state = torch.where(going.unsqueeze(-1), new, state)
        going = going & ~stop
        if n + 1 < act.max_steps:
            _, k, v = block.attn.c_attn(block.ln_1(output + act.step_embedding.weight[n + 1])).split(C, dim=2)
            keys, values = (torch.where(stop.unsqueeze(-1), new_kv, kv) for new_kv, kv in ((k, keys), (v, values)))
    return output, steps


@pytest.mark.parametrize("bias", [0.0, -1.0, 2.0])
def test_skipping_halted_positions_computes_what_masking_them_does(mm, bias):
    model = act_model(mm, max_steps=5, bias=bias).eval()
    idx = items([9, 2, 5, 7, 4])
    x = model.wte(idx) + model.wpe(torch.arange(idx.size(1)))
    real = real_positions(idx)
    with torch.no_grad():
        output = model.act(x, real)
        expected, steps = masked_reference(model.act, x, real)
    torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(model.act.last_steps, steps)


def test_the_ponder_cost_trains_the_halting_unit(mm):
    model = act_model(mm, ponder_cost=0.1).train()
    idx = items([9, 5, 7])
    model(idx, idx)
    assert model.act.ponder.requires_grad
    mm.ponder_loss(model.act).backward()
    assert model.act.halt.weight.grad.abs().sum() > 0 and model.act.halt.bias.grad.abs() > 0


def test_a_loss_on_the_last_position_reaches_the_halting_of_earlier_ones(mm):
    """With the loss on answers only, a question token's halting must still learn from it: an
    earlier position that halted before the last one shows it its h-weighted output, so the
    gradient reaches that position's halting probabilities (it was exactly 0 when a halted
    position showed the keys of its last step's input)."""
    model = act_model(mm, max_steps=6, bias=0.0, seed=1).train()
    idx = items([9], seed=2)
    halts = []

    def keep(module, inputs, h):
        h.retain_grad()
        halts.append(h)
    model.act.halt.register_forward_hook(keep)
    logits, _ = model(idx)
    F.cross_entropy(logits[0, 9:], torch.tensor([0])).backward()  # the last position predicts <stop>
    steps = model.act.last_steps[0]
    earlier = [p for p in range(9) if steps[p] < steps[9]]
    assert earlier, "the test needs positions that halted before the last one"
    first_step = halts[0].grad.squeeze(1)  # step 1 runs every position, in flat order
    assert all(first_step[p] != 0 for p in earlier)


@pytest.mark.parametrize("fixed", [3, 0])
def test_a_shared_router_balances_every_step_the_block_ran(mm, fixed, monkeypatch):
    """The block runs several times a forward pass; each run's balancing loss and load count
    (before, only the last step's survived, so the router's first steps felt no pressure)."""
    monkeypatch.setattr(mm.MoE, "balancing_losses", lambda self, logits, probs, load: probs.new_tensor(1.0))
    model = act_model(mm, max_steps=5, fixed=fixed, n_expert=3, expert_top_k=2).train()
    idx = items([9, 4, 6])
    model(idx)
    steps = model.act.last_steps if not fixed else real_positions(idx) * fixed
    mlp = model.act.block.mlp
    assert mlp.router_loss == int(steps.max())  # one balancing loss a step
    assert int(mlp.step_load.sum()) == 2 * int(steps.sum())  # each token's two choices at each step it took
    assert mm.router_loss(mm.moe_layers(model)) == mlp.router_loss


def test_fixed_depth_runs_the_shared_block_exactly_n_times(mm):
    for n in (1, 3):
        model = act_model(mm, fixed=n)
        calls = []
        model.act.block.register_forward_hook(lambda *args: calls.append(1))
        model(items([4, 6]))
        assert len(calls) == n and model.act.halt is None and mm.ponder_loss(model.act) == 0.0
        assert not model.blocks  # the shared block replaces the stack


def test_the_step_loop_ends_when_every_position_has_halted(mm):
    model = act_model(mm, max_steps=8, bias=10.0).eval()
    with torch.no_grad():
        model.act.halt.weight.zero_()  # h = sigmoid(10) > 1 - eps for everyone: all halt at step 1
    calls = []
    model.act.block.attn.c_attn.register_forward_hook(lambda *args: calls.append(1))
    model(items([9, 3]))
    assert len(calls) == 1 and (model.act.last_steps[model.act.last_steps > 0] == 1).all()


# --- the task flags --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    domains = build("algorithmic", 0, parity=[5, 6], ordered=[4], count=60)  # parity-05: its 32 items
    return ",".join(str(write_items(items, folder / f"{name}.txt")) for name, items in domains.items())


def test_answer_loss_only_keeps_the_targets_after_the_separator(mm, tasks):
    args = mm.parse_args(["-i", tasks, "--answer-sep", "=", "--answer-loss-only"])
    data = mm.for_tasks(mm.load_data(args.input_file, args.seed), args)
    for split in (data.train, data.test):
        for row, item in enumerate(split.items):
            kept = (split.y[row] != -1).nonzero().squeeze(1).tolist()
            answer = item.split("=")[1]
            assert kept == list(range(len(item) - len(answer), len(item) + 1))  # the answer, then <stop>


def test_held_out_domains_are_never_trained_on(mm, tasks):
    args = mm.parse_args(["-i", tasks, "--held-out", "parity-06"])
    data = mm.for_tasks(mm.load_data(args.input_file, args.seed), args)
    held = data.domains.index("parity-06")
    assert held not in data.train.domain.tolist() and held in data.test.domain.tolist()
    six_bits = {item for item in Path(tasks.split(",")[2]).read_text().splitlines()}
    assert len(six_bits) == 60 and not six_bits & set(data.train.items)
    assert sorted(data.test.items[r] for r in (data.test.domain == held).nonzero().squeeze(1)) == sorted(six_bits)


def test_validation_items_are_held_back_from_training_and_from_the_test(mm, tasks):
    args = mm.parse_args(["-i", tasks, "--held-out", "parity-06", "--validation"])
    whole = mm.for_tasks(mm.load_data(args.input_file, args.seed), args)
    trained = len(whole.train)
    data = mm.read_data(args)
    assert len(data.train) + len(data.valid) == trained
    assert not set(data.valid.items) & (set(data.train.items) | set(data.test.items))  # distinct items
    for d, name in enumerate(data.domains):
        in_valid = int((data.valid.domain == d).sum())
        assert in_valid == int((whole.train.domain == d).sum() * 0.1) and (in_valid > 0) == (name != "parity-06")
    assert mm.read_data(mm.parse_args(["-i", tasks])).valid is None  # off means off


def test_greedy_answers_are_what_the_model_writes_up_to_stop(mm):
    class Scripted(torch.nn.Module):
        """Writes 1, 2, <stop> after any question, whatever its length."""

        def forward(self, idx, targets=None):
            written = idx.size(1) - self.question_length - 1
            logits = torch.zeros(idx.size(0), idx.size(1), 5)
            logits[:, -1, [1, 2, 0][min(written, 2)]] = 1.0
            return logits, None

    vocab = mm.Vocabulary(list("ab=c"))
    model = Scripted()
    model.question_length = 3
    model.weight = torch.nn.Parameter(torch.zeros(1))  # the decoder finds the model's device by it
    assert mm.greedy_answers(model, vocab, ["ab="], block_size=10) == {"ab=": "ab"}


def test_decoding_a_batch_of_unequal_prompts_is_decoding_each_alone(mm):
    """Right padding never reaches a causal model's earlier positions, nor ACT's halting."""
    model = act_model(mm, max_steps=4, vocab=6, block_size=12).eval()
    prompts = [[0, 1, 2], [0, 3], [0, 4, 5, 1, 2, 3]]
    together = mm.greedy_decode(model, prompts, max_len=12)
    assert together == [mm.greedy_decode(model, [prompt], max_len=12)[0] for prompt in prompts]
    for prompt, row in zip(prompts, together):
        assert row[:len(prompt)] == prompt and (row[-1] == 0 or len(row) == 13) and 0 not in row[len(prompt):-1]


def test_a_chooser_decides_what_each_row_appends(mm):
    model = act_model(mm, max_steps=2, vocab=6, block_size=12).eval()
    rows = mm.greedy_decode(model, [[0, 1], [0, 2, 2]], max_len=12,
                            choose=lambda rows, logits: [[5, 4] if len(row) < 5 else [0] for row in rows])
    assert rows == [[0, 1, 5, 4, 5, 4, 0], [0, 2, 2, 5, 4, 0]]


def train(variant, input_file, work_dir, *flags):
    return subprocess.run([sys.executable, str(variant), "-i", input_file, "-o", str(work_dir), *TINY_MODEL_FLAGS,
                           "--eval-interval", "10", "--max-steps", "20", *flags],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_every_evaluation_logs_pondering_and_answers_per_domain(variant, tasks, tmp_path):
    result = train(variant, tasks, tmp_path, "--act-max-steps", "4", "--answer-sep", "=", "--n-expert", "2")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    domains = ["ordered-04", "parity-05", "parity-06"]
    for domain in domains:
        assert 0 <= record[f"answer_acc/{domain}"] <= 1
        assert 1 <= record[f"act/steps/{domain}"] <= 4 and 1 <= record[f"act/answer_steps/{domain}"] <= 4
    assert sum(record[f"act/hist/s{n}"] for n in range(1, 5)) == pytest.approx(1.0)
    assert 2 <= record["act/ponder"] <= 5 and record["act/mean_steps"] <= record["act/max_steps"] <= 4
    for n in range(1, 5):  # each step's expert shares (0 when no token reached the step)
        shares = [record[f"act/expert/s{n}/e{e}"] for e in range(2)]
        assert sum(shares) == pytest.approx(1.0) or sum(shares) == 0
    assert not any(key.startswith("moe/") for key in record)  # routing is counted per step instead


@pytest.mark.parametrize("flags, message", [
    (["--act-max-steps", "3", "--act-fixed-steps", "2"], "exclude each other"),
    (["--act-max-steps", "3", "--type", "mlp"], "need --type transformer"),
    (["--act-max-steps", "-1"], "--act-max-steps must not be negative"),
    (["--answer-loss-only"], "--answer-loss-only needs --answer-sep"),
    (["--held-out", "nosuch"], "--held-out 'nosuch' is not a domain"),
    (["--answer-sep", "#"], "has no separator"),
    (["--held-out", "ordered-04,parity-05,parity-06"], "--held-out names every domain"),
    (["--ponder-cost", "0.1"], "--ponder-cost needs --act-max-steps"),
    (["--act-fixed-steps", "2", "--halt-bias-init", "0"], "--halt-bias-init needs --act-max-steps"),
    (["--act-max-steps", "3", "--ponder-cost", "nan"], "--ponder-cost must be a finite number, not nan"),
    (["--act-max-steps", "3", "--halt-bias-init", "inf"], "--halt-bias-init must be a finite number, not inf"),
    (["--learning-rate", "nan"], "--learning-rate must be a finite number, not nan"),
])
def test_bad_act_flags_are_one_line_errors(mm, tasks, tmp_path, capsys, flags, message):
    try:
        code = mm.main(["-i", tasks, "-o", str(tmp_path / "out"), *TINY_MODEL_FLAGS, "--max-steps", "5", *flags])
    except SystemExit as exit:  # refused by the parser
        code = exit.code
    err = capsys.readouterr().err
    assert code in (1, 2) and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_the_ponder_probe_averages_steps_by_character_and_draws_bars(mm, tasks):
    from runs import probes

    args = mm.parse_args(["-i", tasks, "--act-max-steps", "4", "--n-embd", "16", "--n-head", "2",
                          "--halt-bias-init", "0"])
    data = mm.load_data(args.input_file, args.seed)
    torch.manual_seed(0)
    model = mm.create_model(args.type, mm.model_config(args, data))
    result = probes.ponder(model, data)
    assert result["tokens"][1:] == data.vocab.chars
    for key in ("by_input", "by_target", "by_position"):
        means = [m for m in result[key] if m is not None]
        assert means and all(1 <= m <= 4 for m in means)
    assert result["by_input"][0] is not None  # every item starts by reading <start>
    in_test = [min(probes.PONDER_ITEMS, int((data.test.domain == d).sum())) for d in range(len(data.domains))]
    assert [bar["domain"] for bar in result["items"]] == [d for d, n in zip(data.domains, in_test) for _ in range(n)]
    for bar in result["items"]:
        assert len(bar["steps"]) == len(bar["ponder"]) == len(bar["text"]) + 1 == len(bar["tokens"])
        assert all(1 <= n <= 4 and n <= cost <= n + 1 for n, cost in zip(bar["steps"], bar["ponder"]))


# --- the task suite (runs/datasets.py algorithmic) -------------------------------------------------

SUITE = {"parity": [4, 7, 16], "addition": [0, 2, 4], "parens": [2, 3, 7], "ordered": [2, 9, 16]}


def column_carries(a, b):
    """Carries counted the schoolbook way, on the digit strings (an independent check)."""
    count, carry = 0, 0
    for x, y in zip(reversed(a.zfill(8)), reversed(b.zfill(8))):
        carry = (int(x) + int(y) + carry) // 10
        count += carry
    return count


def strip_pairs(text):
    """Balanced iff removing '()' pairs again and again leaves nothing (an independent check)."""
    while "()" in text:
        text = text.replace("()", "")
    return text == ""


def depth(text):
    return max(text[:i].count("(") - text[:i].count(")") for i in range(len(text) + 1))


def test_the_task_suite_is_deterministic():
    assert build("algorithmic", 3, count=50, **SUITE) == build("algorithmic", 3, count=50, **SUITE)
    assert build("algorithmic", 3, count=50, **SUITE) != build("algorithmic", 4, count=50, **SUITE)


def test_every_task_answer_is_right_and_every_item_has_its_difficulty():
    domains = build("algorithmic", 0, count=200, **SUITE)
    assert sorted(domains) == sorted(f"{task}-{d:02d}" for task, ds in SUITE.items() for d in ds)
    for name, items in domains.items():
        task, difficulty = name.rsplit("-", 1)
        difficulty = int(difficulty)
        widths = {item.index("=") for item in items}
        assert len(widths) == 1  # one question width per task: no difficulty reaches new positions
        for item in items:
            question, answer = item.split("=")
            if task == "parity":
                bits = question.lstrip(".")
                assert len(question) == 16 and len(bits) == difficulty and set(bits) <= set("01")
                assert answer == str(sum(map(int, bits)) % 2)
            elif task == "addition":
                a, b = question.split("+")
                assert len(a) == len(b) == 4 and column_carries(a, b) == difficulty
                assert answer == str(int(a) + int(b))[::-1]
            elif task == "parens":
                assert len(question) == 16 and answer == str(int(strip_pairs(question)))
                if answer == "1":
                    assert depth(question) == difficulty
            else:
                digits = question.lstrip(".")
                assert len(question) == 16 and len(digits) == difficulty and digits.isdigit()
                assert answer == str(int(list(digits) == sorted(digits)))
        answers = [item.split("=")[1] for item in items]
        if task != "addition":  # the yes/no tasks are about half yes, so guessing one answer scores ~50%
            share = answers.count("1") / len(answers)
            assert share == 0.5  # as many distinct items of each answer


def test_items_are_distinct_so_no_test_item_is_a_training_item():
    """Parity of 4 bits has 16 items: asked for 200, the domain holds each of them once."""
    domains = build("algorithmic", 0, count=200, **SUITE)
    assert all(len(set(items)) == len(items) for items in domains.values())
    assert sorted(domains["parity-04"]) == sorted(f"{n:04b}".rjust(16, ".") + f"={n.bit_count() % 2}" for n in range(16))
    assert len(domains["parity-16"]) == 200
    with pytest.raises(DatasetError, match="'parity-02' has 4 items"):
        build("algorithmic", 0, parity=[2])


def test_bad_difficulties_are_one_line_errors():
    with pytest.raises(DatasetError, match="parity difficulty 17 is not in 1..16"):
        build("algorithmic", 0, parity=[17])
    with pytest.raises(DatasetError, match="at least one task"):
        build("algorithmic", 0)


def test_experts_by_steps_counts_each_tokens_choice_at_each_step_it_took(mm, tasks):
    from runs import probes

    args = mm.parse_args(["-i", tasks, "--act-max-steps", "3", "--n-embd", "16", "--n-head", "2",
                          "--halt-bias-init", "0", "--n-expert", "3", "--expert-top-k", "2"])
    data = mm.load_data(args.input_file, args.seed)
    torch.manual_seed(0)
    model = mm.create_model(args.type, mm.model_config(args, data))
    counts = torch.tensor(probes.experts_by_steps(model.eval(), data))
    real = int((data.test.y != -1).sum())
    took = counts.sum(dim=(1, 2)) // torch.arange(1, 4) // 2  # tokens that took N steps in all
    assert took.sum() == real and (took > 0).sum() > 1  # every token once; halting varied
    for n in range(3):  # a token took step n + 1 only if it took at least that many steps
        assert counts[:n, n].sum() == 0
