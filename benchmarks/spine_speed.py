"""How fast is the spine's training loop against makemore's DataLoader-based loop?

Both loops train the same model (the spine's own classes, same config, same seed) on the same data;
they differ only in what the spine changed around the model:

  dataloader   makemore's loop: a Dataset that encodes each item in Python, a DataLoader with a
               replacement sampler and worker processes collating batches, AdamW as a Python loop
  in-memory    batches gathered from pre-encoded tensors in the training process, same AdamW
  cut          in-memory batches cut after their longest item (exact: only padding is cut)
  spine        cut in-memory batches and the fused AdamW kernel: exactly what makemore.py runs

Every loop is measured in this same run, alternating rounds, and the ratios are printed against the
DataLoader loop. Nothing here is asserted: the numbers are the result.

    python benchmarks/spine_speed.py                      # names.txt from ../shared, 1 thread
    python benchmarks/spine_speed.py --steps 500 --threads 2
"""

import argparse
import importlib.util
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

ROOT = Path(__file__).resolve().parent.parent


def load_spine():
    spec = importlib.util.spec_from_file_location("makemore", ROOT / "upstream" / "makemore.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ItemDataset(Dataset):
    """makemore's CharDataset: one item encoded into (x, y) per __getitem__ call."""

    def __init__(self, items, vocab, block_size):
        self.items, self.vocab, self.block_size = items, vocab, block_size

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        tokens = torch.tensor(self.vocab.encode(self.items[i]), dtype=torch.long)
        x = torch.zeros(self.block_size, dtype=torch.long)
        y = torch.full((self.block_size,), -1, dtype=torch.long)
        x[1:1 + len(tokens)] = tokens
        y[:len(tokens)] = tokens
        y[len(tokens)] = 0
        return x, y


def dataloader_batches(data, batch_size, num_workers):
    dataset = ItemDataset(data.train.items, data.vocab, data.block_size)
    sampler = RandomSampler(dataset, replacement=True, num_samples=10**10)
    loader = DataLoader(dataset, sampler=sampler, batch_size=batch_size, num_workers=num_workers,
                        persistent_workers=num_workers > 0)
    batches = iter(loader)
    return lambda: next(batches)


def in_memory_batches(mm, data, batch_size, cut):
    sampler = mm.BatchSampler(data.train, batch_size, seed=0, device="cpu")
    if cut:
        return lambda: sampler.next()[:2]

    def full_width():  # the same rows, every position of the block kept
        rows = torch.randint(len(sampler.x), (batch_size,), generator=sampler.generator)
        return sampler.x[rows], sampler.y[rows]
    return full_width


def steps_per_second(mm, data, loop, args):
    torch.manual_seed(args.seed)
    config = mm.ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size)
    model = mm.create_model(args.type, config)
    fused = loop == "spine"
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8,
                                  fused=fused)
    if loop == "dataloader":
        next_batch = dataloader_batches(data, args.batch_size, args.num_workers)
    else:
        next_batch = in_memory_batches(mm, data, args.batch_size, cut=loop in ("cut", "spine"))

    def step():
        x, y = next_batch()
        _, loss = model(x, y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):  # workers start, caches warm
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    return args.steps / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-file", default=str(ROOT.parent / "shared" / "data" / "names.txt"))
    parser.add_argument("--type", default="transformer")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per loop and round")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader workers (makemore's default)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=3407)
    args = parser.parse_args(argv)
    if not Path(args.input_file).is_file():
        sys.exit(f"spine_speed: no input file {args.input_file!r} (build one with `python -m runs.datasets names`)")
    torch.set_num_threads(args.threads)
    # torch warns that makemore's 4 workers exceed 2 cores; that oversubscription is what we measure
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    mm = load_spine()
    data = mm.load_data(args.input_file, args.seed)
    loops = ["dataloader", "in-memory", "cut", "spine"]
    rates = {loop: [] for loop in loops}
    for round_ in range(args.rounds):
        for loop in loops:
            rates[loop].append(steps_per_second(mm, data, loop, args))
            print(f"round {round_ + 1}/{args.rounds} {loop:>10}: {rates[loop][-1]:6.1f} steps/s", flush=True)
    baseline = statistics.median(rates["dataloader"])
    print(f"\n{args.type}, batch {args.batch_size}, {args.threads} torch thread(s), "
          f"{args.num_workers} DataLoader workers, median of {args.rounds} rounds of {args.steps} steps")
    for loop in loops:
        rate = statistics.median(rates[loop])
        spread = f"(rounds {min(rates[loop]):.1f}..{max(rates[loop]):.1f})"
        print(f"{loop:>10}: {rate:6.1f} steps/s {spread}  {1000 / rate:6.2f} ms/step  "
              f"{rate / baseline:5.2f}x the dataloader loop")


if __name__ == "__main__":
    main()
