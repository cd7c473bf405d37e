"""Does adaptive computation save wall time, or only arithmetic on paper?

Every configuration is the act variant (variants/act/makemore.py, generated from 02-act.patch)
trained on the act-tasks recipe's data with its flags, exactly as its train loop does it: forward,
zero_grad, (loss + ponder cost).backward(), fused AdamW step. They differ only in depth:

  fixed N        the shared block run exactly N steps at every position (--act-fixed-steps N),
                 N = 1..K: the baseline whose work is known
  act tau=T      ACT with up to K steps (--act-max-steps K --ponder-cost T): each position halts
                 on its own, halted positions skip the block, and the step loop ends when every
                 position has halted

Each configuration first trains --adapt steps untimed, so that ACT's halting settles where its
ponder cost puts it, then is timed for --steps steps in each of --rounds alternating rounds (each
round continues from the adapted weights and optimiser). For ACT, the mean executed steps per
token are counted on the timed batches. Its step time is compared with the fixed-depth time at
the same mean steps, interpolated linearly between the two nearest fixed depths measured in this
run, and with fixed depth K. Targets (the issue's): at most 1.25x the fixed depth doing the same
mean work, and at most 0.7x fixed depth K when ACT's mean steps are at most K/2. Nothing is
asserted: the numbers are the result.

    python benchmarks/act_speed.py                     # 1 thread, the recipe's K and ponder costs
    python benchmarks/act_speed.py --taus 0.01,0.1 --steps 100 --rounds 2
    python benchmarks/act_speed.py --record benchmarks/results/act_speed.json
"""

import argparse
import copy
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # apply.py and runs/, when run as `python benchmarks/act_speed.py`

import apply  # noqa: E402
from runs import datasets, load_module  # noqa: E402
from runs.recipe import load_recipe  # noqa: E402
from runs.runner import flag_arguments, variant_code  # noqa: E402
from runs.store import write_json  # noqa: E402

RECIPE = "act-tasks"


def recipe_setup(workdir):
    """The act-tasks recipe's data (written to workdir), its shared flags, K and its ponder costs."""
    recipe = load_recipe(RECIPE)
    dataset = recipe.dataset
    domains = datasets.build(dataset["builder"], dataset["seed"], **dataset["args"])
    files = [datasets.write_items(items, Path(workdir) / f"{name}.txt") for name, items in domains.items()]
    arms = [arm["flags"] for arm in recipe.arms]
    max_steps = max(flags.get("act-max-steps", 0) for flags in arms)
    taus = sorted({flags["ponder-cost"] for flags in arms if flags.get("act-max-steps") and "ponder-cost" in flags})
    return ",".join(map(str, files)), recipe.flags, max_steps, taus


class Trainer:
    """One configuration: its model and optimiser, adapted once, then timed round after round."""

    def __init__(self, mm, files, flags, batch_size, seed):
        argv = ["-i", files, "--seed", str(seed), "--batch-size", str(batch_size), *flag_arguments(flags)]
        self.args = mm.parse_args(argv)
        torch.manual_seed(seed)
        self.data = mm.for_tasks(mm.load_data(self.args.input_file, seed), self.args)
        self.model = mm.create_model("transformer", mm.model_config(self.args, self.data))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.args.learning_rate, fused=True,
                                           weight_decay=self.args.weight_decay, betas=(0.9, 0.99), eps=1e-8)
        self.batches = mm.BatchSampler(self.data.train, batch_size, seed, "cpu")
        self.mm = mm

    def train(self, steps):
        """Milliseconds of each step, and the mean executed steps per real token over them."""
        act, times, executed, tokens = self.model.act, [], 0.0, 0
        for _ in range(steps):
            t0 = time.perf_counter()  # where the variant's loop starts its step clock
            x, y, _ = self.batches.next()
            _, loss = self.model(x, y)
            self.model.zero_grad(set_to_none=True)
            (loss + self.mm.ponder_loss(act)).backward()
            self.optimizer.step()
            times.append(1000 * (time.perf_counter() - t0))
            if not act.fixed:
                executed += act.last_steps.sum().item()
                tokens += (act.last_steps > 0).sum().item()
        return times, executed / tokens if tokens else act.max_steps

    def snapshot(self):
        return copy.deepcopy((self.model.state_dict(), self.optimizer.state_dict(), self.batches.generator.get_state()))

    def restore(self, snapshot):
        model, optimizer, batches = copy.deepcopy(snapshot)
        self.model.load_state_dict(model)
        self.optimizer.load_state_dict(optimizer)
        self.batches.generator.set_state(batches)


def interpolated(fixed_ms, mean_steps):
    """The fixed-depth step time at a fractional depth, linear between the two nearest depths."""
    low = max(1, min(int(mean_steps), max(fixed_ms) - 1))
    return fixed_ms[low] + (mean_steps - low) * (fixed_ms[low + 1] - fixed_ms[low])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taus", help="comma-separated ponder costs (default: the recipe's, 0 excluded)")
    parser.add_argument("--adapt", type=int, default=300, help="untimed training steps before timing")
    parser.add_argument("--steps", type=int, default=150, help="timed steps per configuration and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--record", type=Path, metavar="PATH", help="also write the numbers as JSON to PATH")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or args.adapt < 0:
        parser.error("--steps and --rounds must be positive, --adapt not negative")
    if args.record and args.record.is_dir():
        parser.error(f"--record {args.record}: a folder; name the file to write")
    sys.stdout.reconfigure(line_buffering=True)
    torch.set_num_threads(args.threads)
    mm = load_module(apply.Project(ROOT).ensure_variant("act") / "makemore.py")
    with tempfile.TemporaryDirectory(prefix="act_speed.") as workdir:
        files, flags, max_steps, taus = recipe_setup(workdir)
        taus = [float(t) for t in args.taus.split(",")] if args.taus else [t for t in taus if t > 0]
        configs = {f"fixed {n}": {"act-fixed-steps": n} for n in range(1, max_steps + 1)}
        configs.update({f"act tau={t:g}": {"act-max-steps": max_steps, "ponder-cost": t} for t in taus})
        trainers, snapshots = {}, {}
        for label, depth in configs.items():
            trainers[label] = Trainer(mm, files, {**flags, **depth}, args.batch_size, args.seed)
            trainers[label].train(args.adapt)
            snapshots[label] = trainers[label].snapshot()
            print(f"adapted {label} ({args.adapt} steps)", file=sys.stderr, flush=True)
    round_medians = {label: [] for label in configs}
    mean_steps = {label: [] for label in configs}
    for round_ in range(args.rounds):
        for label, trainer in trainers.items():
            trainer.restore(snapshots[label])
            times, executed = trainer.train(args.steps)
            round_medians[label].append(statistics.median(times))
            mean_steps[label].append(executed)
            print(f"round {round_ + 1}/{args.rounds} {label:>14}: {round_medians[label][-1]:7.2f} ms/step, "
                  f"{executed:.2f} steps a token", file=sys.stderr, flush=True)
    report(args, argv, configs, max_steps, round_medians, mean_steps)


def report(args, argv, configs, max_steps, round_medians, mean_steps):
    ms = {label: statistics.median(medians) for label, medians in round_medians.items()}
    fixed_ms = {n: ms[f"fixed {n}"] for n in range(1, max_steps + 1)}
    rows = []
    print(f"\nact-tasks data and flags, batch {args.batch_size}, {args.threads} torch thread(s); median step time "
          f"over {args.rounds} round(s) of {args.steps} steps, after {args.adapt} adapting steps")
    print(f"{'config':>14}  {'steps/token':>11}  {'ms/step':>8}  {'x fixed, same work':>18}  {f'x fixed {max_steps}':>10}")
    for label in configs:
        steps = statistics.mean(mean_steps[label]) if label.startswith("act") else configs[label]["act-fixed-steps"]
        same_work = ms[label] / interpolated(fixed_ms, steps)
        rows.append({"label": label, "flags": configs[label], "mean_steps": steps, "ms_per_step": ms[label],
                     "round_medians": round_medians[label], "x_fixed_same_work": same_work,
                     "x_fixed_max": ms[label] / fixed_ms[max_steps]})
        print(f"{label:>14}  {steps:11.2f}  {ms[label]:8.2f}  {same_work:17.2f}x  {ms[label] / fixed_ms[max_steps]:9.2f}x")
    for row in rows:
        if row["label"].startswith("act"):
            target = ("; at mean steps <= K/2 the target against fixed K is <= 0.7x"
                      if row["mean_steps"] <= max_steps / 2 else "")
            print(f"{row['label']}: {row['x_fixed_same_work']:.2f}x the fixed depth doing the same mean work "
                  f"(target <= 1.25x), {row['x_fixed_max']:.2f}x fixed depth {max_steps}{target}")
    if args.record:
        write_json(args.record, {
            "benchmark": "act_speed", "command": shlex.join(["python", "benchmarks/act_speed.py", *argv]),
            "recipe": RECIPE, "max_steps": max_steps, "batch_size": args.batch_size, "threads": args.threads,
            "seed": args.seed, "adapt": args.adapt, "steps": args.steps, "rounds": args.rounds, "configs": rows,
            "variant": "act", "code": variant_code("act")["code"],
            "torch": torch.__version__, "python": platform.python_version()})
        print(f"recorded: {args.record}")


if __name__ == "__main__":
    main()
