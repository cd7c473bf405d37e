"""Probes: what a trained run's model does, measured once after training and kept as text.

    python -m runs.probes RUN_DIR [attention] [activations] [routing] [ponder]

The runner calls this after a run trains. It rebuilds the run's model through the variant's own
functions (parse_args, load_data, create_model), exactly as the trainer did, loads the best
weights (model.pt) and writes samples.txt and probes.json (formats: runs/README.md). Checkpoints
are not committed, so anything a figure needs from a model has to be measured here.
"""

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from runs import ROOT, load_module
from runs.store import load_run, write_json, write_samples

SAMPLES = 500  # enough that the in train / in test / new shares are within a few points
ATTENTION_TEXTS = 3
PROBE_ROWS = 256  # training rows for the activation and gradient statistics
HISTOGRAM_EDGES = {"tanh": (-1.0, 1.0, 40), "gelu": (-0.25, 3.75, 40)}  # values beyond are put in the end bins


def main(argv=None):
    """Probe a run; Ctrl-C leaves the files it had not finished unwritten, and says so."""
    try:
        return probe(*(sys.argv[1:] if argv is None else argv))
    except CheckpointError as error:
        print(f"probes: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("probes: interrupted; they run again next time", file=sys.stderr)
        return 130


class CheckpointError(Exception):
    """A file that is not a checkpoint of ours; the message is one line."""


def check_checkpoint(path):
    """Refuse a file that holds anything but what our checkpoints hold (tensors, the optimiser's
    state, RNG states, numbers, strings, lists and dicts), before the variant's load_checkpoint
    unpickles it with weights_only=False: a pickle from someone else can run code when loaded.
    torch's weights_only loader allows exactly those types (the spine's own fix: docs/spine.md)."""
    if not Path(path).is_file():
        return  # the variant's load_checkpoint says so
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # whatever the safe loader cannot read is not ours
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        why = next((line for line in lines if "Unsupported" in line), lines[0] if lines else type(error).__name__)
        why = why[why.find("Unsupported"):].split(" was not an allowed")[0] if "Unsupported" in why else why
        raise CheckpointError(f"{path} is not a checkpoint of ours, so it is not loaded (it could run code): "
                              f"{why[:200]}") from None


def probe(directory, *probes):
    directory = Path(directory)
    check_checkpoint(directory / "model.pt")
    config = load_run(directory).config
    module = load_module(ROOT / config["file"])
    args = module.parse_args(config["argv"][1:])
    data, initial = initial_model(module, args)
    trained = module.create_model(args.type, module.model_config(args, data))
    weights = directory / "model.pt"
    module.restore_weights(trained, module.load_checkpoint(weights, data.vocab), weights)

    result = {"samples": samples(module, trained, data, args, directory / "samples.txt"),
              "parameters": module.parameter_counts(trained)}
    if "attention" in probes and args.type == "transformer":
        result["attention"] = attention_maps(trained, data)
    if "activations" in probes and args.type in HIDDEN_LAYERS:
        rows = probe_rows(data, args.seed)
        result["activations"] = {"init": layer_statistics(initial, args.type, *rows),
                                 "trained": layer_statistics(trained, args.type, *rows)}
    if "routing" in probes and hasattr(module, "moe_layers") and module.moe_layers(trained):
        result["routing"] = routing_counts(module, trained, data)
    if "ponder" in probes and getattr(trained, "act", None) is not None and not trained.act.fixed:
        result["ponder"] = ponder(trained, data)
    write_json(directory / "probes.json", result, indent=None)  # mostly matrices: one line is smaller
    return 0


def initial_model(module, args):
    """The data and the model the run started from: built in the trainer's order (seed, then data,
    then model), so the random initialisation is the same."""
    torch.manual_seed(args.seed)
    data = trainers_data(module, args)
    return data, module.create_model(args.type, module.model_config(args, data))


def trainers_data(module, args):
    """The data as the trainer reads it: from 02-act.patch on, the variant's own read_data (which
    applies the flags about data: held-out domains, validation, a synthesiser's alphabet)."""
    if hasattr(module, "read_data"):
        return module.read_data(args)
    return module.load_data(args.input_file, args.seed)


# -----------------------------------------------------------------------------
# samples


def samples(module, model, data, args, path):
    """The trainer's own sampler, with the run's seed, into samples.txt; returns how many fell
    in each group."""
    groups = module.sample_groups(model, data, args, num=SAMPLES, seed=args.seed)
    write_samples(path, groups)
    counts = {group.replace(" ", "_"): len(items) for group, items in groups.items()}
    return {"n": sum(counts.values()), **counts}


# -----------------------------------------------------------------------------
# attention


def attention_maps(model, data):
    """Every layer's and head's attention weights for a few test items of the first domain."""
    texts = [item for item, domain in zip(data.test.items, data.test.domain.tolist())
             if domain == 0 and 4 <= len(item) <= 8][:ATTENTION_TEXTS]
    maps = []
    for text in texts:
        idx = torch.tensor([[0] + data.vocab.encode(text)])
        maps.append([[rounded(head, 4) for head in layer[0]] for layer in attention_weights(model, idx)])
    return {"texts": texts, "tokens": [["."] + list(text) for text in texts], "maps": maps}


@torch.no_grad()
def attention_weights(model, idx):
    """(1, n_head, T, T) per block, recomputed from the input each attention layer receives: the
    spine calls a fused kernel that never materialises the weights."""
    weights = []
    hooks = [block.attn.register_forward_pre_hook(lambda attn, inputs: weights.append(softmax_weights(attn, inputs[0])))
             for block in model.blocks]
    try:
        model.eval()
        model(idx)
    finally:
        for hook in hooks:
            hook.remove()
    return weights


def softmax_weights(attn, x):
    B, T, C = x.size()
    q, k, _ = attn.c_attn(x).split(C, dim=2)
    q, k = (t.view(B, T, attn.n_head, C // attn.n_head).transpose(1, 2) for t in (q, k))
    scores = q @ k.transpose(-2, -1) / math.sqrt(C // attn.n_head)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    return F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


# -----------------------------------------------------------------------------
# activations and gradients


def mlp_hidden(model):
    """The MLP's one hidden layer: the output of its tanh."""
    return [("mlp.1 (tanh)", "tanh", model.mlp[1])]


def transformer_hidden(model):
    """Each block's feed-forward hidden layer: c_fc's output, through the spine's tanh GELU (a
    block whose MLP a patch replaced by experts has no single hidden layer to show)."""
    return [(f"blocks.{i}.mlp (GELU)", "gelu", block.mlp.c_fc) for i, block in enumerate(model.blocks)
            if hasattr(block.mlp, "c_fc")]


HIDDEN_LAYERS = {"mlp": mlp_hidden, "transformer": transformer_hidden}


def probe_rows(data, seed):
    rows = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:PROBE_ROWS]
    return data.train.x[rows], data.train.y[rows]


def layer_statistics(model, model_type, x, y):
    """Histograms of the hidden activations and the gradient scale of every weight matrix, from
    one forward and backward pass on fixed training rows."""
    captured = {}
    layers = HIDDEN_LAYERS[model_type](model)
    hooks = [module.register_forward_hook(lambda m, i, output, name=name: captured.__setitem__(name, output))
             for name, _, module in layers]
    try:
        model.eval()  # deterministic: a patch's training-only noise stays out of the measurement
        model.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
    finally:
        for hook in hooks:
            hook.remove()
    valid = y != -1  # positions past an item's end are padding: not part of any prediction
    return {"layers": [histogram(name, kind, captured[name].detach()[valid]) for name, kind, _ in layers],
            "grads": [gradient_scale(name, p) for name, p in model.named_parameters() if p.ndim == 2],
            "loss": loss.item()}


def histogram(name, kind, values):
    if kind == "gelu":
        saturated = (values < -3).float().mean().item()  # GELU is flat (output and gradient ~0) there
        values = F.gelu(values, approximate="tanh")
    else:
        saturated = (values.abs() > 0.97).float().mean().item()  # tanh's flat tails
    low, high, bins = HISTOGRAM_EDGES[kind]
    counts = torch.histc(values.clamp(low, high), bins=bins, min=low, max=high)
    edges = torch.linspace(low, high, bins + 1)
    return {"name": name, "kind": kind, "edges": rounded(edges, 4), "counts": [int(c) for c in counts.tolist()],
            "mean": significant(values.mean().item()), "std": significant(values.std().item()),
            "saturated": significant(saturated)}


def gradient_scale(name, parameter):
    grad_std, data_std = parameter.grad.std().item(), parameter.data.std().item()
    return {"name": name, "grad_std": significant(grad_std), "data_std": significant(data_std),
            "ratio": significant(grad_std / data_std)}


# -----------------------------------------------------------------------------
# routing (a mixture of experts, 01-moe.patch)


@torch.no_grad()
def routing_counts(module, model, data):
    """Per MoE layer, how many routing assignments of the test tokens went to each expert, by the
    character each token reads (its input), the one it predicts (its target), its position in
    the item and its domain. Only tokens with a target are counted: the layers skip padding."""
    layers, size = module.moe_layers(model), {"input": len(data.vocab), "target": len(data.vocab),
                                              "position": data.block_size, "domain": len(data.domains)}
    counts = {key: torch.zeros(len(layers), layers[0].n_expert, n, dtype=torch.long) for key, n in size.items()}
    model.eval()
    for start in range(0, len(data.test), 100):
        x, y = data.test.x[start:start + 100], data.test.y[start:start + 100]
        real = y != -1
        labels = {"input": x[real], "target": y[real], "position": real.nonzero()[:, 1],
                  "domain": data.test.domain[start:start + 100].unsqueeze(1).expand_as(y)[real]}
        for l, (_, chosen) in enumerate(module.expert_choices(model, x)):
            assert len(chosen) == len(labels["input"]), "the layer routed other tokens than those with a target"
            for key, label in labels.items():
                for choice in chosen.T:  # top-k: each of a token's experts counts once
                    counts[key][l].index_put_((choice, label), torch.ones_like(label), accumulate=True)
    return {"tokens": ["<start/stop>"] + list(data.vocab.chars), "domains": data.domains,
            "layers": [{f"by_{key}": counts[key][l].tolist() for key in size} for l in range(len(layers))]}


# -----------------------------------------------------------------------------
# pondering (adaptive computation time, 02-act.patch)

PONDER_ITEMS = 16  # test items per domain (at most) whose steps are kept: bars, and Part 5's page


@torch.no_grad()
def ponder(model, data):
    """Where the model pondered. Over every test token: the mean steps by the character a position
    reads (its input), the one it predicts (its target) and its position. And for a few test items
    of each domain, the steps each position took (N) and its ponder cost (N + R): Graves' bars."""
    model.eval()
    act, size = model.act, {"input": len(data.vocab), "target": len(data.vocab), "position": data.block_size}
    sums = {key: torch.zeros(n) for key, n in size.items()}
    counts = {key: torch.zeros(n) for key, n in size.items()}
    for start in range(0, len(data.test), 100):
        x, y = data.test.x[start:start + 100], data.test.y[start:start + 100]
        model(x)
        real = y != -1
        labels = {"input": x[real], "target": y[real], "position": real.nonzero()[:, 1]}
        for key, label in labels.items():
            sums[key].index_add_(0, label, act.last_steps[real])
            counts[key].index_add_(0, label, torch.ones(len(label)))
    means = {f"by_{key}": [round(s / c, 4) if c else None for s, c in zip(sums[key].tolist(), counts[key].tolist())]
             for key in size}
    result = {"tokens": ["<start/stop>"] + list(data.vocab.chars), **means, "items": ponder_bars(model, data)}
    if hasattr(act.block.mlp, "last_route"):  # experts in the shared block (01-moe.patch)
        result["experts_by_steps"] = experts_by_steps(model, data)
    return result


@torch.no_grad()
def experts_by_steps(model, data):
    """[N-1][n-1][e]: how many test tokens that took N steps in all chose expert e at step n. At
    step n the block runs on exactly the tokens with N >= n, in flat order, so each step's routing
    lines up with them. Under top-k, each of a token's k choices counts once."""
    act, routes = model.act, []
    hook = act.block.mlp.register_forward_hook(lambda layer, inputs, output: routes.append(layer.last_route[1]))
    K, E = act.max_steps, act.block.mlp.n_expert
    counts = torch.zeros(K, K, E, dtype=torch.long)
    try:
        for start in range(0, len(data.test), 100):
            routes.clear()
            model(data.test.x[start:start + 100])
            total = act.last_steps.flatten().long()
            for n, chosen in enumerate(routes):
                steps = total[total >= n + 1]
                for choice in chosen.T:
                    counts.index_put_((steps - 1, torch.full_like(steps, n), choice), torch.ones_like(choice),
                                      accumulate=True)
    finally:
        hook.remove()
    return counts.tolist()


def ponder_bars(model, data):
    bars = []
    for d, domain in enumerate(data.domains):
        rows = (data.test.domain == d).nonzero().squeeze(1)[:PONDER_ITEMS]
        model(data.test.x[rows])
        for row, steps, cost in zip(rows.tolist(), model.act.last_steps, model.act.last_ponder):
            text = data.test.items[row]
            bars.append({"domain": domain, "text": text, "tokens": ["."] + list(text),
                         "steps": steps[:len(text) + 1].tolist(), "ponder": rounded(cost[:len(text) + 1], 4)})
    return bars


def significant(value, digits=5):
    return float(f"{value:.{digits}g}")


def rounded(tensor, digits):
    return [round(value, digits) for value in tensor.flatten().tolist()] if tensor.dim() == 1 else \
        [rounded(row, digits) for row in tensor]


if __name__ == "__main__":
    sys.exit(main())
