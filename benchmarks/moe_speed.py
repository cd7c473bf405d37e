"""How much slower is a training step of the moe variant than the dense spine, and why?

Every configuration is the moe variant (variants/moe/makemore.py, generated from 01-moe.patch) at
the default model size (4 layers, n_embd 64, 4 heads, batch 32), trained exactly as its train loop
does it: forward, zero_grad, (loss + router_loss).backward(), fused AdamW step, router bias nudge.
They differ only in what stands in each block's MLP:

  dense                      the spine's MLP (--n-expert 0), hidden 4*n_embd, run on every position
                             of the batch, padding after an item's end included. The baseline.
  dense, real tokens only    --n-expert 1 --expert-hidden 4*n_embd --balance none: the same MLP,
                             but through the MoE path (router, sort, gather, index_add; the gate of
                             a single expert is 1.0), which skips the padding positions. Against
                             dense it shows the padding saved; against the MoEs, the routing cost.
  moe E=4 top-1              4 experts of hidden 4*n_embd, top-1: dense's active compute per token
  moe E=8 top-2              8 experts of hidden 2*n_embd, top-2: two half-width experts per token,
                             again dense's active compute
  ... masked reference       the same two MoEs (same weights, same routing) with the variant's
                             sparse dispatch swapped, in this file only, for the textbook reference:
                             run every expert on every routed token, then multiply by a dense
                             (tokens, experts) gate matrix that is zero for the unchosen experts

Every configuration is built from the same seed and trained on the same batches (a fresh batch
sampler with the same seed each time) of the same data. All of them are measured in this run, in
alternating rounds, and the ratios are printed against dense (and against dense on real tokens
only) as measured here. The share of padding positions per batch is printed too: it is what the
real-tokens-only configurations skip, and it depends a lot on the data (names are all short, the
mixture's block is set by 32-character code lines). Before timing, a cheap check prints that the
masked reference computes the same layer outputs as the sparse dispatch. Nothing is asserted: the
numbers are the result.

    python benchmarks/moe_speed.py                  # names.txt from ../shared (else census names), 1 thread
    python benchmarks/moe_speed.py --mixture        # the moe-domains recipe's names + arithmetic + code
    python benchmarks/moe_speed.py --steps 500 --rounds 5 --input a.txt,b.txt
    python benchmarks/moe_speed.py --record benchmarks/results/moe_speed.json   # also keep the numbers

--record PATH writes the measured numbers as JSON: what was run (the command, the data, the
settings, the moe variant's code digest, torch), and per configuration its median step time, each
round's median and the ratios against dense. `python -m analysis` draws part4/moe-speed from
benchmarks/results/moe_speed.json, marked stale when the moe variant's code has changed since.
"""

import argparse
import platform
import shlex
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # apply.py and runs/, when run as `python benchmarks/moe_speed.py`

import apply  # noqa: E402
from runs import datasets  # noqa: E402
from runs import load_module  # noqa: E402
from runs.runner import variant_code  # noqa: E402
from runs.store import write_json  # noqa: E402

SHARED_NAMES = ROOT.parent / "shared" / "data" / "names.txt"
# The moe-domains recipe's dataset: about 5,000 items per domain, code lines of 8 to 32 characters.
MIXTURE_PARTS = {"names": {}, "arithmetic": {}, "code": {"max_len": 32}}
MATCH_TOLERANCE = 1e-5


def configurations(n_embd):
    """(label, ModelConfig settings, dispatch) in the order they are timed and printed."""
    hidden = 4 * n_embd  # the dense MLP's hidden width
    return [
        ("dense", {"n_expert": 0}, "dense"),
        ("dense, real tokens only", {"n_expert": 1, "expert_hidden": hidden, "balance": "none"}, "sparse"),
        ("moe E=4 top-1", {"n_expert": 4, "expert_hidden": hidden}, "sparse"),
        ("moe E=8 top-2", {"n_expert": 8, "expert_top_k": 2, "expert_hidden": hidden // 2}, "sparse"),
        ("moe E=4 top-1, masked reference", {"n_expert": 4, "expert_hidden": hidden}, "masked"),
        ("moe E=8 top-2, masked reference", {"n_expert": 8, "expert_top_k": 2, "expert_hidden": hidden // 2}, "masked"),
    ]


def masked_dispatch(self, x, token, expert, gate):
    """THE REFERENCE, not the variant's code: compute every expert for every routed token, then mask.

    A drop-in for MoE.dispatch with the same arguments: the (token, expert, gate) assignments
    become a dense (tokens, experts) gate matrix, zero where an expert was not chosen; each expert
    runs on all routed tokens and its output is weighed by its column. Tokens with no assignment
    (padding, or every assignment dropped for capacity) get zeros, as in the sparse dispatch."""
    rows, row_of = torch.unique(token, return_inverse=True)
    gates = torch.zeros(len(rows), self.n_expert, dtype=x.dtype, device=x.device)
    gates.index_put_((row_of, expert), gate, accumulate=True)
    h = x[rows]
    out = sum(gates[:, e:e + 1] * ffn(h) for e, ffn in enumerate(self.experts))
    return torch.zeros_like(x).index_copy_(0, rows, out)


def use_masked_dispatch(mm, model):
    for layer in mm.moe_layers(model):
        layer.dispatch = types.MethodType(masked_dispatch, layer)


def build(mm, data, settings, dispatch, seed):
    torch.manual_seed(seed)  # model initialisation draws from the global generator, as in the variant
    config = mm.ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size, **settings)
    model = mm.create_model("transformer", config)
    if dispatch == "masked":
        use_masked_dispatch(mm, model)
    return model


def step_times(mm, data, settings, dispatch, args):
    """Milliseconds of each timed training step, after args.warmup untimed ones."""
    model = build(mm, data, settings, dispatch, args.seed)
    # the variant's train(): makemore's AdamW settings, fused
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8,
                                  fused=True)
    batches = mm.BatchSampler(data.train, args.batch_size, args.seed, "cpu")
    layers = mm.moe_layers(model)
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()  # where the variant's loop starts its step clock
        x, y, _ = batches.next()
        _, loss = model(x, y)
        model.zero_grad(set_to_none=True)
        (loss + mm.router_loss(layers)).backward()
        optimizer.step()
        mm.nudge_router_biases(layers)
        if i >= args.warmup:
            times.append(1000 * (time.perf_counter() - t0))
    return times


def padding_shares(mm, data, args):
    """The share of padding positions (after an item's end: not routed) in each batch timed."""
    batches = mm.BatchSampler(data.train, args.batch_size, args.seed, "cpu")
    shares = []
    for i in range(args.warmup + args.steps):
        x, _, _ = batches.next()
        real = x != 0  # as the variant's Transformer.forward marks real tokens
        real[:, 0] = True
        if i >= args.warmup:
            shares.append(1 - real.float().mean().item())
    return shares


@torch.no_grad()
def dispatch_mismatch(mm, data, settings, args):
    """The largest difference between the sparse dispatch and the masked reference over every MoE
    layer's output, on one training batch, for the same model (same weights, same routing)."""
    model = build(mm, data, settings, "sparse", args.seed)
    outputs = {"sparse": [], "masked": []}
    for dispatch in outputs:
        if dispatch == "masked":
            use_masked_dispatch(mm, model)
        hooks = [layer.register_forward_hook(lambda module, inputs, output, into=outputs[dispatch]: into.append(output))
                 for layer in mm.moe_layers(model)]
        x, y, _ = mm.BatchSampler(data.train, args.batch_size, args.seed, "cpu").next()
        model(x, y)
        for hook in hooks:
            hook.remove()
    return max((a - b).abs().max().item() for a, b in zip(outputs["sparse"], outputs["masked"]))


def input_files(args, workdir):
    """The comma-separated files to train on, and a line saying what they are."""
    if args.mixture:
        domains = datasets.build("mixture", seed=0, parts=MIXTURE_PARTS)
        paths = [datasets.write_items(items, Path(workdir) / f"{domain}.txt") for domain, items in domains.items()]
        return ",".join(map(str, paths)), f"the mixture {MIXTURE_PARTS} (seed 0)"
    if args.input:
        missing = [path for path in args.input.split(",") if not Path(path).is_file()]
        if missing:
            sys.exit(f"moe_speed: no input file {missing[0]!r}")
        return args.input, args.input
    if SHARED_NAMES.is_file():
        return str(SHARED_NAMES), "../shared/data/names.txt"
    path = datasets.write_items(datasets.build("names")["names"], Path(workdir) / "names.txt")
    return str(path), "the census first names (runs.datasets names; ../shared/data/names.txt is absent)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", "--input-file", "-i", metavar="FILE[,FILE...]",
                        help="one item per line; several comma-separated files are several domains "
                             "(default: ../shared/data/names.txt, else the census first names)")
    source.add_argument("--mixture", action="store_true",
                        help="the moe-domains recipe's data: names + arithmetic + code lines of at most 32 characters")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per configuration and round")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps before them")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=3407, help="model initialisation and batch sampler seed")
    parser.add_argument("--record", type=Path, metavar="PATH",
                        help="also write the measured numbers as JSON to PATH "
                             "(e.g. benchmarks/results/moe_speed.json)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # in order with the progress lines on stderr when both are piped
    if args.steps < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--steps and --rounds must be positive, --warmup not negative")
    if args.record and args.record.is_dir():
        parser.error(f"--record {args.record}: a folder; name the file to write")
    torch.set_num_threads(args.threads)
    mm = load_module(apply.Project(ROOT).ensure_variant("moe") / "makemore.py")
    with tempfile.TemporaryDirectory(prefix="moe_speed.") as workdir:
        files, described = input_files(args, workdir)
        data = mm.load_data(files, args.seed)
    n_embd = mm.ModelConfig.n_embd
    configs = configurations(n_embd)

    shares = padding_shares(mm, data, args)
    print(f"data: {described}: {len(data.train)} training items in {len(data.domains)} domain(s), block size "
          f"{data.block_size}")
    print(f"padding (positions after an item's end, which the MoE path skips): "
          f"{100 * statistics.mean(shares):.1f}% of each batch's {args.batch_size}x{data.block_size} positions "
          f"on average over the timed batches ({100 * min(shares):.1f}..{100 * max(shares):.1f}%)")

    for label, settings, dispatch in configs:
        if dispatch == "masked":
            gap = dispatch_mismatch(mm, data, settings, args)
            verdict = "the same function" if gap <= MATCH_TOLERANCE else f"MISMATCH: more than {MATCH_TOLERANCE:g} apart"
            print(f"check {label.split(',')[0]}: masked reference against sparse dispatch, largest difference "
                  f"of a MoE layer's output on one batch {gap:.1e}: {verdict}")

    times = {label: [] for label, _, _ in configs}
    round_medians = {label: [] for label, _, _ in configs}
    for round_ in range(args.rounds):
        for label, settings, dispatch in configs:
            measured = step_times(mm, data, settings, dispatch, args)
            times[label].extend(measured)
            round_medians[label].append(statistics.median(measured))
            print(f"round {round_ + 1}/{args.rounds} {label:>31}: {round_medians[label][-1]:7.2f} ms/step",
                  file=sys.stderr, flush=True)

    median = {label: statistics.median(measured) for label, measured in times.items()}
    dense, dense_real = median["dense"], median["dense, real tokens only"]
    print(f"\ntransformer n_layer {mm.ModelConfig.n_layer}, n_embd {n_embd}, n_head {mm.ModelConfig.n_head}, "
          f"batch {args.batch_size}, {args.threads} torch thread(s); median step time over {args.rounds} "
          f"round(s) of {args.steps} steps (after {args.warmup} warm-up steps each)")
    print(f"{'config':>31}  {'ms/step':>8}  {'round medians':>15}  {'x dense':>7}  {'x dense real':>12}")
    for label, _, _ in configs:
        spread = f"{min(round_medians[label]):.2f}..{max(round_medians[label]):.2f}"
        print(f"{label:>31}  {median[label]:8.2f}  {spread:>15}  {median[label] / dense:6.2f}x  "
              f"{median[label] / dense_real:11.2f}x")
    print(f"\nE=4 top-1 sparse step time is {median['moe E=4 top-1'] / dense:.2f}x dense (target <= 1.5x)")
    if args.record:
        write_json(args.record, record(mm, args, argv, described, shares, configs, median, round_medians))
        print(f"recorded: {args.record}")


def record(mm, args, argv, described, shares, configs, median, round_medians):
    """The measured numbers and what they were measured on, for figures to be drawn from."""
    dense, dense_real = median["dense"], median["dense, real tokens only"]
    return {
        "benchmark": "moe_speed", "command": shlex.join(["python", "benchmarks/moe_speed.py", *argv]),
        "data": described, "padding": statistics.mean(shares),
        "model": {key: getattr(mm.ModelConfig, key) for key in ("n_layer", "n_embd", "n_head")},
        "batch_size": args.batch_size, "threads": args.threads, "seed": args.seed,
        "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
        "configs": [{"label": label, "dispatch": dispatch, "settings": settings, "ms_per_step": median[label],
                     "round_medians": round_medians[label], "x_dense": median[label] / dense,
                     "x_dense_real": median[label] / dense_real} for label, settings, dispatch in configs],
        "variant": "moe", "code": variant_code("moe")["code"],  # stale as a run is: when the moe code changes
        "torch": torch.__version__, "python": platform.python_version(),
    }


if __name__ == "__main__":
    main()
