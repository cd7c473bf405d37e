"""The mixture-of-experts patch (01-moe.patch): its balancing losses, its sparse dispatch against a
plain loop over experts, deterministic routing at evaluation, and the metrics it logs.
(That --n-expert 0 trains exactly like the spine is test_series.py's job, for every patch.)"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import apply
from conftest import TINY_MODEL_FLAGS
from runs.datasets import write_items
from runs import load_module

ROOT = Path(__file__).resolve().parent.parent
N_EMBD = 16


@pytest.fixture(scope="module")
def variant():
    return apply.Project(ROOT).ensure_variant("moe") / "makemore.py"


@pytest.fixture(scope="module")
def mm(variant):
    return load_module(variant)


def moe_layer(mm, **settings):
    config = mm.ModelConfig(block_size=8, vocab_size=10, n_embd=N_EMBD, n_expert=4, expert_hidden=32, **settings)
    torch.manual_seed(0)
    return mm.MoE(config)


def batch(seed=1, B=3, T=8):
    """Hidden states and a real-token mask whose rows end early, as padded items do."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, N_EMBD, generator=generator)
    real = torch.arange(T).expand(B, T) < torch.tensor([[T], [5], [2]])[:B]
    return x, real


# --- the balancing losses -----------------------------------------------------------------------


def test_switch_loss_is_one_under_uniform_routing_and_larger_under_collapse(mm):
    uniform = mm.switch_loss(torch.tensor([5, 5, 5, 5]), torch.full((4,), 0.25))
    collapsed = mm.switch_loss(torch.tensor([20, 0, 0, 0]), torch.tensor([0.97, 0.01, 0.01, 0.01]))
    assert uniform.item() == pytest.approx(1.0)
    assert collapsed.item() == pytest.approx(4 * 0.97)


def test_the_aux_loss_is_its_coefficient_times_the_switch_loss_of_the_batch(mm):
    layer = moe_layer(mm, balance="aux", aux_coef=0.05).train()
    x, real = batch()
    layer(x, real)
    probs = torch.softmax(layer.router(x[real]), dim=-1)
    expected = 0.05 * mm.switch_loss(layer.step_load, probs.mean(dim=0))
    assert layer.router_loss.item() == pytest.approx(expected.item())
    assert layer.step_load.sum().item() == real.sum().item()  # one assignment per real token, top-1


def test_no_balancing_and_no_z_loss_add_nothing_to_the_training_loss(mm):
    layer = moe_layer(mm, balance="none").train()
    layer(*batch())
    assert layer.router_loss == 0.0


def test_the_router_learns_through_the_mean_probability_of_the_aux_loss(mm):
    layer = moe_layer(mm, balance="aux", aux_coef=1.0).train()
    x, real = batch()
    layer(x, real)
    layer.zero_grad()
    layer.router_loss.backward()  # the aux loss alone: its f_i are counts, so only P_i carries gradient
    assert layer.router.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in layer.experts.parameters())


def test_a_top1_gate_is_the_router_probability_so_the_router_learns_from_the_lm_loss_too(mm):
    layer = moe_layer(mm, balance="none").train()
    x, real = batch()
    layer(x, real).square().sum().backward()
    assert layer.router.weight.grad.abs().sum() > 0


def test_the_z_loss_is_the_mean_squared_logsumexp_of_the_router_logits(mm):
    layer = moe_layer(mm, balance="none", z_loss=1e-3).train()
    x, real = batch()
    layer(x, real)
    expected = 1e-3 * torch.logsumexp(layer.router(x[real]), dim=-1).square().mean()
    assert layer.router_loss.item() == pytest.approx(expected.item())


@pytest.mark.parametrize("top_k", [1, 2])
def test_the_bias_chooses_experts_but_never_enters_the_gates(mm, top_k):
    layer = moe_layer(mm, expert_top_k=top_k, balance="bias").eval()
    x, real = batch()
    layer.bias.copy_(torch.tensor([10.0, 0.0, 0.0, 0.0]))
    logits, probs, chosen, gates = layer.route(x[real])
    assert (chosen == 0).any(dim=1).all()  # the bias forces expert 0 into every token's choice
    unbiased = probs.gather(1, chosen)
    expected = unbiased if top_k == 1 else unbiased / unbiased.sum(dim=1, keepdim=True)
    assert torch.equal(gates, expected)


def test_loss_free_balancing_raises_the_bias_of_underused_experts_and_lowers_the_overused(mm):
    model = torch.nn.Sequential(moe_layer(mm, balance="bias", bias_rate=0.01))
    layer = model[0]
    layer.step_load = torch.tensor([10, 2, 4, 0])  # mean 4
    mm.nudge_router_biases(mm.moe_layers(model))
    assert layer.bias.tolist() == pytest.approx([-0.01, 0.01, 0.0, 0.01])


def test_the_bias_does_not_move_under_the_other_balancing_methods(mm):
    model = torch.nn.Sequential(moe_layer(mm, balance="aux"))
    model[0].step_load = torch.tensor([10, 2, 4, 0])
    mm.nudge_router_biases(mm.moe_layers(model))
    assert model[0].bias.tolist() == [0.0] * 4


# --- sparse dispatch ----------------------------------------------------------------------------


def loop_over_experts(layer, x, real):
    """What the layer should compute, written as plainly as possible: for every real token, the
    gated sum of the experts it chose and that had room for it, plus the shared expert."""
    B, T, C = x.shape
    flat = x.reshape(B * T, C)
    tokens = real.flatten().nonzero().squeeze(1)
    _, probs, chosen, gates = layer.route(flat[tokens])
    keep = torch.ones_like(chosen, dtype=torch.bool)
    if layer.capacity_factor > 0:
        keep = layer.within_capacity(chosen, probs.gather(1, chosen)).view_as(chosen)
    out = torch.zeros_like(flat)
    for i, token in enumerate(tokens.tolist()):
        for j in range(layer.top_k):
            if keep[i, j]:
                out[token] += gates[i, j] * layer.experts[chosen[i, j]](flat[token])
    if layer.shared is not None:
        out += layer.shared(flat)
    return out.view(B, T, C), keep


@pytest.mark.parametrize("top_k", [1, 2])
@pytest.mark.parametrize("shared_expert", [False, True])
@pytest.mark.parametrize("capacity_factor", [0.0, 0.5])
def test_sparse_dispatch_matches_a_plain_loop_over_experts(mm, top_k, shared_expert, capacity_factor):
    layer = moe_layer(mm, expert_top_k=top_k, shared_expert=shared_expert, capacity_factor=capacity_factor).train()
    x, real = batch(B=3, T=8)
    with torch.no_grad():
        expected, keep = loop_over_experts(layer, x, real)
        assert torch.allclose(layer(x, real), expected, atol=1e-6)
    if capacity_factor > 0:
        assert not keep.all()  # half an even share each: some assignments must have been dropped
        assert layer.dropped == 2 * int((~keep).sum())  # counted once by the loop, once by the layer


def test_capacity_keeps_the_assignments_with_the_highest_router_probability(mm):
    layer = moe_layer(mm, capacity_factor=1.0)
    chosen = torch.tensor([[0], [0], [0], [1]])  # expert 0 is wanted three times, capacity is 1
    keep = layer.within_capacity(chosen, torch.tensor([[0.5], [0.9], [0.7], [0.6]]))
    assert keep.tolist() == [False, True, False, True]
    assert (layer.dropped, layer.assigned) == (2, 4)


def test_padding_is_not_routed_and_gets_no_expert_output(mm):
    layer = moe_layer(mm).train()
    x, real = batch()
    out = layer(x, real)
    assert layer.step_load.sum().item() == real.sum().item()
    assert out[~real].abs().max() == 0


# --- evaluation ---------------------------------------------------------------------------------


def test_routing_at_evaluation_is_deterministic_and_never_drops(mm):
    layer = moe_layer(mm, capacity_factor=0.5).eval()
    x, real = batch()
    first = layer(x, real)
    first_route = [t.clone() for t in layer.last_route]
    second = layer(x, real)
    assert torch.equal(first, second)
    assert all(torch.equal(a, b) for a, b in zip(first_route, layer.last_route))
    assert layer.dropped == 0


@pytest.fixture(scope="module")
def two_domains(tmp_path_factory, names_file):
    folder = tmp_path_factory.mktemp("domains")
    sums = [f"{a}+{b}={a + b}" for a in range(20) for b in range(10)]
    return f"{names_file},{write_items(sums, folder / 'sums.txt')}"


def test_every_evaluation_logs_the_documented_routing_metrics(mm, two_domains):
    torch.manual_seed(0)
    args = mm.parse_args(["-i", two_domains, "--n-expert", "3", "--expert-top-k", "2", *TINY_MODEL_FLAGS])
    data = mm.load_data(args.input_file, seed=0)
    model = mm.create_model("transformer", mm.model_config(args, data))
    rows = mm.evaluation_rows(data, args.eval_batches, seed=0)
    record = mm.evaluate(model, data, rows, "cpu")
    per_layer = ["maxvio", "dead", "token_entropy", "mean_entropy", "drop_rate", *[f"load/e{e}" for e in range(3)]]
    assert {key for key in record if key.startswith("moe/")} == {f"moe/l{l}/{k}" for l in range(2) for k in per_layer}
    test_rows = torch.cat(list(rows[1].values()))
    scored = (data.test.y[test_rows] != -1).sum().item()
    choices = mm.expert_choices(model.eval(), data.test.x[test_rows])
    for l, (probs, chosen) in enumerate(choices):
        assert chosen.shape == (scored, 2)  # every scored test token, and no padding
        share = torch.bincount(chosen.flatten(), minlength=3) / (2 * scored)
        for e in range(3):
            assert record[f"moe/l{l}/load/e{e}"] == pytest.approx(share[e].item())
        assert record[f"moe/l{l}/maxvio"] == pytest.approx((share.max() / share.mean() - 1).item())
        assert 0 <= record[f"moe/l{l}/token_entropy"] <= record[f"moe/l{l}/mean_entropy"] + 1e-6 <= 1 + 1e-6
    assert mm.evaluate(model, data, rows, "cpu") == record


# --- the command line ---------------------------------------------------------------------------


def command(input_file, work_dir, *flags):
    return ["-i", str(input_file), "-o", str(work_dir), *TINY_MODEL_FLAGS, "--eval-interval", "10", *flags]


def train(mm, input_file, work_dir, *flags):
    """The variant's main in this process, as test_spine.py trains the spine: the real command line
    is tested once, below, rather than starting a Python with torch for every training."""
    return mm.main(command(input_file, work_dir, *flags))


def records(work_dir):
    return [json.loads(line) for line in (work_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_resumed_run_with_loss_free_balancing_continues_exactly(mm, names_file, tmp_path):
    flags = ["--n-expert", "4", "--balance", "bias", "--bias-rate", "0.01", "--capacity-factor", "1.25"]
    assert train(mm, names_file, tmp_path / "straight", "--max-steps", "40", *flags) == 0
    assert train(mm, names_file, tmp_path / "split", "--max-steps", "20", *flags) == 0
    assert train(mm, names_file, tmp_path / "split", "--max-steps", "40", "--resume", *flags) == 0
    straight, split = records(tmp_path / "straight"), records(tmp_path / "split")
    assert [r["step"] for r in split] == [0, 10, 20, 30, 40]
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("step_ms", "tokens_per_s")} for r in rs]
    assert strip(split) == strip(straight)
    assert any(r["moe/l0/drop_rate"] > 0 for r in straight)


BAD_FLAGS = [
    (["--n-expert", "4", "--type", "mlp"], "--n-expert needs --type transformer"),
    (["--n-expert", "1", "--expert-top-k", "2"], "--expert-top-k 2 needs at least that many experts"),
    (["--n-expert", "4", "--balance", "sometimes"], "invalid choice: 'sometimes'"),
    (["--n-expert", "4", "--capacity-factor", "-1"], "--capacity-factor must not be negative"),
    (["--n-expert", "4", "--expert-hidden", "0"], "--expert-hidden must be positive"),
]


@pytest.mark.parametrize("flags, message", BAD_FLAGS)
def test_bad_moe_flags_are_one_line_errors(mm, names_file, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit:  # the exit status the command would have
        train(mm, names_file, tmp_path, "--max-steps", "1", *flags)
    error = capsys.readouterr().err
    assert exit.value.code == 2 and error.count("\n") == 1 and message in error, error


def test_a_bad_moe_flag_is_one_line_and_exit_2_from_the_real_command_line(variant, names_file, tmp_path):
    flags, message = BAD_FLAGS[0]
    result = subprocess.run([sys.executable, str(variant), *command(names_file, tmp_path, "--max-steps", "1", *flags)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
