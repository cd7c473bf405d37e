"""python -m runs sample RUN_DIR [--prompt P] [-n N] [--seed S]: samples from a trained run.

The run's model is rebuilt from the command line it was trained with (config.json's argv), through
its variant's own functions, as the probes rebuild it, and its best weights (model.pt) are loaded:
no flag to retype. The samples are grouped as samples.txt groups them: in train, in test, new.
"""

import argparse
import sys
from pathlib import Path

from runs import ROOT, file_sha256
from runs.probes import CheckpointError, check_checkpoint, trainers_data
from runs.recipe import RecipeError
from runs.runner import CACHE_DIR, dataset_files, load_variant, parse_flags, shown, variant_code
from runs.store import SAMPLE_GROUPS, read_json, staleness


MAX_SAMPLES = 10_000


class SampleError(Exception):
    """A run that cannot be sampled; the message is one line."""


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m runs sample", description=(
        "Sample from a trained run (a folder of runs/results/ or out/quick/) with the flags it was trained "
        "with, from its best weights (model.pt)."))
    parser.add_argument("run", type=Path, metavar="RUN_DIR", help="the run's folder")
    parser.add_argument("--prompt", "-p", help="start every sample with this text")
    parser.add_argument("-n", "--num", type=int, default=20, help="how many samples (default: 20)")
    parser.add_argument("--seed", type=int, help="the sampling seed (default: the run's own seed)")
    args = parser.parse_args(argv)
    if not 1 <= args.num <= MAX_SAMPLES:
        parser.error(f"-n must be 1 to {MAX_SAMPLES:,} (the trainer's sampler holds every sample in memory at once)")
    return args


def main(argv):
    args = parse_args(argv)
    try:
        groups = sample(args.run, args.num, args.prompt, args.seed)
    except (SampleError, RecipeError, CheckpointError) as error:
        print(f"runs sample: error: {error}", file=sys.stderr)
        return 1
    for group in SAMPLE_GROUPS:  # as samples.txt has them
        print(f"{len(groups[group])} samples that are {group}:")
        print("".join(f"{item}\n" for item in groups[group]), end="")
    return 0


def sample(directory, num, prompt=None, seed=None):
    """num samples of the run in directory: {"in train": [...], "in test": [...], "new": [...]}."""
    config = read_json(directory / "config.json")
    if config is None:
        raise SampleError(f"{shown(directory)} is not a run folder: it has no config.json")
    weights = directory / "model.pt"
    if not weights.is_file():
        raise SampleError(f"{shown(directory)} has no model.pt: {how_to_train(directory, config)}")
    check_checkpoint(weights)  # before anything unpickles it
    file = variant_code(config["variant"])["file"]  # regenerated if need be
    stale = staleness(config)
    if stale:
        print(f"note: this run is stale ({stale}); it is sampled with today's code", file=sys.stderr)
    config = {**config, "file": file}
    module = load_variant(config)
    argv = with_input_files(config["argv"][1:], input_files(config))
    prompt_flag = [] if prompt is None else ["--prompt", prompt]
    args = parse_flags(module, argv + prompt_flag, f"{config['file']} says: ")
    try:
        data = trainers_data(module, args)
        if prompt is not None and len(prompt) >= data.block_size - 1:
            raise SampleError(f"--prompt is {len(prompt)} characters: the model writes items of at most "
                              f"{data.block_size - 1}, so nothing would be left to sample")
        model = module.create_model(args.type, module.model_config(args, data))
        module.restore_weights(model, module.load_checkpoint(weights, data.vocab), weights)
        return module.sample_groups(model, data, args, num=num, seed=args.seed if seed is None else seed)
    except module.UsageError as error:
        raise SampleError(str(error)) from None


def how_to_train(directory, config):
    quick = " --quick" if config["quick"] else ""
    if (directory / "summary.json").is_file():
        return (f"weights are not committed; train the recipe into a folder of your own "
                f"(python -m runs {config['recipe']}{quick} --results out/mine) and sample "
                f"out/mine/{config['recipe']}/{config['run']}")
    return f"train it first (python -m runs {config['recipe']}{quick})"


def input_files(config):
    """The run's dataset files: where it recorded them, or rebuilt (a fresh clone has no cache),
    as long as they are byte for byte what it trained on."""
    recorded = config["dataset"]["files"]
    if all((ROOT / f["path"]).is_file() and file_sha256(ROOT / f["path"]) == f["sha256"] for f in recorded):
        return [str(ROOT / f["path"]) for f in recorded]
    built = dataset_files(config["dataset"], CACHE_DIR)
    if [f["sha256"] for f in built] != [f["sha256"] for f in recorded]:
        raise SampleError("its dataset cannot be rebuilt as it was: the builder now gives other items "
                          f"({', '.join(f['domain'] for f in built)}), so its groups would be wrong")
    return [str(ROOT / f["path"]) for f in built]


def with_input_files(argv, paths):
    """argv with the value of -i replaced by these files."""
    at = argv.index("-i") + 1
    return [*argv[:at], ",".join(paths), *argv[at + 1:]]
