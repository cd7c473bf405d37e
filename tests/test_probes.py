"""The probes measure the model the run trained: attention recomputed faithfully, histograms that
count every valid position, and the initial model rebuilt exactly as the trainer built it."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import apply
from runs import probes
from runs import load_module
from conftest import TINY_MODEL_FLAGS

ROOT = Path(__file__).resolve().parent.parent
makemore = load_module(ROOT / "upstream" / "makemore.py")


def tiny_transformer(names_file, seed=7):
    args = makemore.parse_args(["-i", str(names_file), "--seed", str(seed), "--n-layer", "2", "--n-head", "2",
                                "--n-embd", "16"])
    torch.manual_seed(args.seed)
    data = makemore.load_data(args.input_file, args.seed)
    return makemore.create_model(args.type, makemore.model_config(args, data)), data


def test_recomputed_attention_weights_give_the_layers_own_output(names_file):
    model, data = tiny_transformer(names_file)
    attn = model.blocks[0].attn
    x = torch.randn(3, 9, 16)
    weights = probes.softmax_weights(attn, x)
    _, _, v = attn.c_attn(x).split(16, dim=2)
    v = v.view(3, 9, 2, 8).transpose(1, 2)
    mixed = (weights @ v).transpose(1, 2).reshape(3, 9, 16)
    assert torch.allclose(attn.c_proj(mixed), attn(x), atol=1e-5)
    assert torch.all(weights.triu(diagonal=1) == 0)  # nothing attends to the future
    assert torch.allclose(weights.sum(-1), torch.ones(3, 2, 9))


def test_attention_maps_cover_every_layer_head_and_position(names_file):
    model, data = tiny_transformer(names_file)
    maps = probes.attention_maps(model, data)
    assert len(maps["texts"]) == probes.ATTENTION_TEXTS
    for text, tokens, per_layer in zip(maps["texts"], maps["tokens"], maps["maps"]):
        assert tokens == ["."] + list(text) and text in data.test.items
        assert len(per_layer) == 2 and all(len(heads) == 2 for heads in per_layer)
        assert all(len(head) == len(tokens) and all(len(row) == len(tokens) for row in head)
                   for heads in per_layer for head in heads)


def test_histograms_count_every_valid_position_of_every_unit(names_file):
    model, data = tiny_transformer(names_file)
    x, y = probes.probe_rows(data, seed=7)
    statistics = probes.layer_statistics(model, "transformer", x, y)
    valid = int((y != -1).sum())
    for layer in statistics["layers"]:
        assert sum(layer["counts"]) == valid * 4 * 16  # the feed-forward layer is 4 x n_embd wide
        assert len(layer["edges"]) == len(layer["counts"]) + 1
    names = [grad["name"] for grad in statistics["grads"]]
    assert names == [name for name, p in model.named_parameters() if p.ndim == 2]
    _, loss = model(x, y)
    assert abs(statistics["loss"] - loss.item()) < 1e-6


def test_gelu_saturation_counts_inputs_in_its_flat_tail():
    values = torch.tensor([-5.0, -3.5, -1.0, 0.0, 2.0])
    layer = probes.histogram("h", "gelu", values)
    assert layer["saturated"] == 0.4
    assert abs(layer["mean"] - F.gelu(values, approximate="tanh").mean().item()) < 1e-5


def test_the_initial_model_is_the_one_training_started_from(names_file, tmp_path):
    """Built in the trainer's order (seed, data, model), so its loss is the run's step-0 loss. (The
    trainer runs in this process: a process of its own spends seconds starting torch.)"""
    work = tmp_path / "run"
    assert makemore.main(["-i", str(names_file), "-o", str(work), "--max-steps", "1", *TINY_MODEL_FLAGS]) == 0
    step0 = json.loads((work / "metrics.jsonl").read_text().splitlines()[0])
    args = makemore.parse_args(["-i", str(names_file), *TINY_MODEL_FLAGS])
    data, initial = probes.initial_model(makemore, args)
    rows = makemore.evaluation_rows(data, args.eval_batches, args.seed)
    assert makemore.evaluate(initial, data, rows, "cpu")["test_loss"] == step0["test_loss"]


moe = load_module(apply.Project(ROOT).ensure_variant("moe") / "makemore.py")


def tiny_moe(names_file, *flags):
    args = moe.parse_args(["-i", str(names_file), "--n-layer", "2", "--n-head", "2", "--n-embd", "16", *flags])
    torch.manual_seed(0)
    data = moe.load_data(args.input_file, 0)
    return moe.create_model(args.type, moe.model_config(args, data)), data


def test_active_parameters_leave_out_the_experts_a_token_skips(names_file):
    dense, _ = tiny_transformer(names_file)
    assert makemore.parameter_counts(dense)["active"] == makemore.parameter_counts(dense)["total"]
    model, _ = tiny_moe(names_file, "--n-expert", "4", "--expert-top-k", "2")
    expert = sum(p.numel() for p in model.blocks[0].mlp.experts[0].parameters())
    counts = moe.parameter_counts(model)
    assert counts["total"] - counts["active"] == 2 * (4 - 2) * expert  # two layers, two idle experts each


def test_routing_counts_every_test_token_once_per_chosen_expert(names_file):
    model, data = tiny_moe(names_file, "--n-expert", "3", "--expert-top-k", "2")
    routing = probes.routing_counts(moe, model, data)
    tokens = int((data.test.y != -1).sum())
    assert routing["tokens"][1:] == data.vocab.chars and routing["domains"] == data.domains
    for layer in routing["layers"]:
        for key in ("by_input", "by_target", "by_position", "by_domain"):
            assert len(layer[key]) == 3 and sum(map(sum, layer[key])) == 2 * tokens
        starts = sum(row[0] for row in layer["by_input"])  # every item is read from its start token once
        assert starts == 2 * len(data.test) == sum(row[0] for row in layer["by_position"])
        assert sum(row[0] for row in layer["by_target"]) == 2 * len(data.test)  # and ends once


# -----------------------------------------------------------------------------
# a checkpoint from someone else is refused before it is unpickled (issue 18)


class Opens:
    """A pickle that runs code when loaded: it creates a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def a_run_with(tmp_path, weights):
    run = tmp_path / "run"
    run.mkdir()
    config = {"recipe": "r", "run": "run", "variant": "spine", "file": "upstream/makemore.py", "quick": False,
              "argv": ["upstream/makemore.py", "-i", "x.txt", "-o", str(run)]}
    (run / "config.json").write_text(json.dumps(config))
    torch.save(weights, run / "model.pt")
    return run


def test_our_own_checkpoints_pass_the_check(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), fused=False)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    generator = torch.Generator().manual_seed(1)
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": 3,
                  "best_test_loss": 2.5, "torch_rng": torch.get_rng_state(), "batch_rng": generator.get_state(),
                  "chars": ["a", "b"], "type": "transformer", "config": {"n_layer": 1, "block_size": 5},
                  "tool": {"round": 1, "costs": [0.5, None]},
                  "synth": {"random": __import__("random").Random(1).getstate(), "rows": [[1, 2]]}}
    for name, state in (("checkpoint.pt", checkpoint), ("model.pt", {"model": model.state_dict(), "chars": ["a"]})):
        torch.save(state, tmp_path / name)
        probes.check_checkpoint(tmp_path / name)  # no error


def test_a_checkpoint_that_would_run_code_is_refused_in_one_line(tmp_path, capsys):
    from runs import sample

    marker = tmp_path / "it ran"
    run = a_run_with(tmp_path, {"model": {}, "chars": ["a"], "payload": Opens(marker)})
    with pytest.raises(probes.CheckpointError) as error:
        probes.check_checkpoint(run / "model.pt")
    assert "\n" not in str(error.value) and "model.pt" in str(error.value)
    assert sample.main([str(run)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("runs sample: error: ") and err.count("\n") == 1 and "not a checkpoint" in err
    assert probes.main([str(run), "attention"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("probes: error: ") and err.count("\n") == 1 and "not a checkpoint" in err
    assert not marker.exists()
