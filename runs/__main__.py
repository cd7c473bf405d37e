"""python -m runs [RECIPE] [--jobs N] [--quick]: train a recipe's unfinished runs, or list the recipes.
python -m runs sample RUN_DIR [--prompt P] [-n N]: sample from a trained run (runs/sample.py)."""

import argparse
import os
import sys
from pathlib import Path

from runs import folder_problem, sample
from runs.recipe import RECIPES_DIR, RecipeError, load_recipe, recipe_names
from runs.runner import CACHE_DIR, QUICK_DIR, Runner, prepare, recipe_lock, shown
from runs.store import RESULTS_DIR, read_json, staleness


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m runs", description=(
        "Train a recipe's runs (runs/recipes/RECIPE.toml) into runs/results/RECIPE/. Finished runs are "
        "never retrained; interrupted ones resume. Without RECIPE: list the recipes."),
        epilog="To sample from a trained run: python -m runs sample RUN_DIR (see its --help).")
    parser.add_argument("recipe", nargs="?", help="the recipe to train")
    parser.add_argument("--jobs", "-j", type=int, default=1,
                        help="trainings at once; with more than one, each gets one torch thread")
    parser.add_argument("--list", action="store_true",
                        help="print the recipe's unfinished runs, one name a line (for a scheduler: see --run)")
    parser.add_argument("--run", metavar="NAME",
                        help="train, probe and finish this one run of the recipe, as the pool would; a run that "
                             "another process is training is left to it")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: at most 200 steps a run, written to out/quick/ instead of results")
    parser.add_argument("--recipes", type=Path, default=RECIPES_DIR, help=argparse.SUPPRESS)  # for tests
    parser.add_argument("--results", type=Path, default=None, help="where results go (default: runs/results)")
    parser.add_argument("--cache", type=Path, default=CACHE_DIR, help="dataset cache (default: data/cache)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.list and args.run:
        parser.error("--list and --run exclude each other")
    if (args.list or args.run) and args.recipe is None:
        parser.error("--list and --run need a RECIPE")
    args.results = args.results or (QUICK_DIR if args.quick else RESULTS_DIR)
    for flag, folder in (("--results", args.results), ("--cache", args.cache)):
        problem = folder_problem(folder, flag)
        if problem:
            parser.error(problem)
    return args


def list_recipes(recipes_dir, results_dir):
    names = recipe_names(recipes_dir)
    if not names:
        print(f"no recipes in {recipes_dir}")
    for name in names:
        try:
            recipe = load_recipe(name, recipes_dir)
        except RecipeError as error:
            print(f"{name:<20} (broken: {error})")
            continue
        specs = recipe.runs()
        finished = sum((results_dir / name / spec.name / "summary.json").is_file() for spec in specs)
        print(f"{name:<20} {finished:>3}/{len(specs)} finished  {recipe.purpose}")


def stale_note(jobs):
    reasons = [staleness(read_json(job.directory / "config.json"))
               for job in jobs if job.state == "finished"]
    stale = [reason for reason in reasons if reason]
    if stale:
        return (f"note: {len(stale)} finished run(s) are stale ({stale[0]}); the figures mark them. "
                "Delete their folders to retrain them.")
    return None


def train_recipe(args):
    recipe = load_recipe(args.recipe, args.recipes)
    threads = 1 if args.jobs > 1 else os.cpu_count() or 1
    jobs = prepare(recipe, args.results, args.cache, quick=args.quick, threads=threads)
    todo = [job for job in jobs if job.state != "finished"]
    if args.list:
        print("".join(f"{job.name}\n" for job in todo), end="")
        return 0
    if args.run is not None:
        return train_one(jobs, args.run, recipe.name)
    where = shown(args.results / recipe.name)
    print(f"{recipe.name}: {len(jobs)} runs, {len(jobs) - len(todo)} finished, {len(todo)} to train "
          f"({args.jobs} at once, {threads} torch thread(s) each) -> {where}")
    note = stale_note(jobs)
    if note:
        print(note)
    if not todo:
        return 0
    with recipe_lock(args.results / recipe.name):
        outcome = Runner(jobs, parallel=args.jobs).run()
    print(f"{recipe.name}: {outcome['done']} trained, {len(jobs) - len(todo)} already finished"
          + "".join(f", {outcome[s]} {s}" for s in ("failed", "interrupted", "busy") if outcome[s]))
    if outcome["interrupted"]:
        return 130
    return 1 if outcome["failed"] or outcome["busy"] else 0


def train_one(jobs, name, recipe_name):
    """--run NAME: the one run, through the same runner as the pool (its own lock keeps a second
    process off it); exit 0 when it is finished, also when it already was."""
    job = next((job for job in jobs if job.name == name), None)
    if job is None:
        raise RecipeError(f"recipe {recipe_name} has no run {name!r} (python -m runs {recipe_name} --list "
                          "names the unfinished ones)")
    if job.state == "finished":
        print(f"{name}: already finished")
        return 0
    outcome = Runner([job]).run()
    return 130 if outcome["interrupted"] else 0 if outcome["done"] else 1


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sample"]:  # a command, not a recipe: the recipe name is reserved for it
        return sample.main(argv[1:])
    args = parse_args(argv)
    if args.recipe is None:
        list_recipes(args.recipes, args.results)
        return 0
    try:
        return train_recipe(args)
    except RecipeError as error:
        print(f"runs: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the runner took it over: while variants and data were made
        print("runs: interrupted before any run started: nothing was trained", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
