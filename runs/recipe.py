"""Recipes: runs/recipes/<name>.toml read, checked and expanded into the runs they describe.

Nothing here trains or imports torch, so `python -m runs` can list recipes instantly."""

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from runs import ROOT

RECIPES_DIR = ROOT / "runs" / "recipes"

# the runner sets these itself for every run; a recipe that set them would fight it
RUNNER_FLAGS = {"input-file", "work-dir", "seed", "max-steps", "resume", "sample-only"}
PROBES = {"samples", "attention", "activations", "routing", "ponder"}
RECIPE_KEYS = {"purpose", "variant", "steps", "seeds", "probes", "dataset", "flags", "grid", "arm"}
ARM_KEYS = {"name", "variant", "flags", "seeds"}  # an arm's seeds replace the recipe's
COMMANDS = {"sample"}  # `python -m runs sample ...` is a command, so no recipe can be called that


class RecipeError(Exception):
    """A recipe that cannot be run; the message is one line, printed before anything trains."""


@dataclass(frozen=True)
class RunSpec:
    """One training run: a variant, its flags and a seed."""

    name: str  # the run's folder name: what tells it apart from the recipe's other runs
    variant: str
    seed: int
    steps: int
    flags: dict  # long flag name (no leading --) -> value
    arm: str | None = None


@dataclass
class Recipe:
    name: str
    purpose: str
    variant: str
    steps: int
    seeds: list
    dataset: dict  # {"builder": ..., "seed": ..., "args": {...}}
    flags: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    arms: list = field(default_factory=list)
    probes: list = field(default_factory=lambda: ["samples"])

    def runs(self):
        """Every run: arms x grid x seeds, in that nesting order."""
        arms = self.arms or [{"name": None, "variant": self.variant, "flags": {}}]
        grid_keys = list(self.grid)
        specs = []
        for arm in arms:
            for values in itertools.product(*(self.grid[key] for key in grid_keys)):
                chosen = dict(zip(grid_keys, values))
                for seed in arm.get("seeds", self.seeds):
                    specs.append(RunSpec(
                        name=run_name(arm["name"], chosen, seed),
                        variant=arm.get("variant", self.variant),
                        seed=seed, steps=self.steps, arm=arm["name"],
                        flags={**self.flags, **arm.get("flags", {}), **chosen},
                    ))
        return specs


def run_name(arm, grid_values, seed):
    parts = [arm] if arm else []
    parts += [f"{key}={format_value(value)}" for key, value in grid_values.items()]
    return ",".join(parts + [f"seed={seed}"])


def format_value(value):
    return str(value).lower() if isinstance(value, bool) else str(value)


def recipe_names(recipes_dir=RECIPES_DIR):
    return sorted(path.stem for path in Path(recipes_dir).glob("*.toml"))


def load_recipe(name, recipes_dir=RECIPES_DIR):
    path = Path(recipes_dir) / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(recipe_names(recipes_dir)) or "none"
        raise RecipeError(f"no recipe {name!r} in {recipes_dir} (known: {known})")
    if name in COMMANDS:
        raise RecipeError(f"{path.name}: {name!r} is the name of a command (python -m runs {name}): "
                          "rename the recipe")
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"{path.name}: not valid TOML: {error}") from None
    return parse_recipe(name, table)


def parse_recipe(name, table):
    where = f"recipe {name}"
    _no_unknown_keys(table, RECIPE_KEYS, where)
    for key in ("purpose", "steps", "seeds", "dataset"):
        if key not in table:
            raise RecipeError(f"{where}: {key!r} is missing")
    recipe = Recipe(
        name=name,
        purpose=_typed(table, "purpose", str, where),
        variant=_typed(table, "variant", str, where) if "variant" in table else "spine",
        steps=_typed(table, "steps", int, where),
        seeds=_typed(table, "seeds", list, where),
        dataset=_dataset(table["dataset"], where),
        flags=_flags(_table(table, "flags", where), f"{where}: [flags]"),
        grid=_grid(_table(table, "grid", where), where),
        arms=[_arm(arm, where) for arm in _arms(table, where)],
        probes=_probes(table, where),
    )
    _check(recipe, where)
    return recipe


def _check(recipe, where):
    if recipe.steps <= 0:
        raise RecipeError(f"{where}: 'steps' must be positive")
    _check_seeds(recipe.seeds, where)
    for arm in recipe.arms:
        _check_seeds(arm.get("seeds", recipe.seeds), f"{where}: arm {arm['name']}")
    unknown = set(recipe.probes) - PROBES
    if unknown:
        raise RecipeError(f"{where}: unknown probes {sorted(unknown)} (known: {', '.join(sorted(PROBES))})")
    names = [arm["name"] for arm in recipe.arms]
    if len(set(names)) < len(names):
        raise RecipeError(f"{where}: two arms are named the same")
    clash = set(recipe.grid) & {key for arm in recipe.arms for key in arm["flags"]}
    if clash:
        raise RecipeError(f"{where}: {sorted(clash)} set both by [grid] and by an arm")


def _check_seeds(seeds, where):
    if not isinstance(seeds, list) or not seeds or not all(type(seed) is int for seed in seeds):
        raise RecipeError(f"{where}: 'seeds' must be a non-empty list of integers")
    if len(set(seeds)) < len(seeds):
        raise RecipeError(f"{where}: 'seeds' repeats a seed")


def _no_unknown_keys(table, known, where):
    unknown = sorted(set(table) - known)
    if unknown:
        raise RecipeError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")


KIND_NAMES = {int: "an integer", str: "a string", list: "a list", dict: "a table"}


def _typed(table, key, kind, where):
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise RecipeError(f"{where}: {key!r} must be {KIND_NAMES[kind]}, not {value!r}")
    return value


def _table(table, key, where):
    """An optional [key] table ({} when absent), refused in one line when it is not a table."""
    return _typed(table, key, dict, where) if key in table else {}


def _arms(table, where):
    arms = table.get("arm", [])
    if not isinstance(arms, list) or not all(isinstance(arm, dict) for arm in arms):
        raise RecipeError(f"{where}: 'arm' must be a list of [[arm]] tables, not {arms!r}")
    return arms


def _probes(table, where):
    probes = table.get("probes", ["samples"])
    if not isinstance(probes, list) or not all(isinstance(probe, str) for probe in probes):
        raise RecipeError(f"{where}: 'probes' must be a list of probe names, e.g. [\"samples\"], not {probes!r}")
    return probes


def _dataset(table, where):
    if not isinstance(table, dict) or "builder" not in table:
        raise RecipeError(f"{where}: [dataset] needs a 'builder'")
    _typed(table, "builder", str, f"{where}: [dataset]")
    if "seed" in table:
        _typed(table, "seed", int, f"{where}: [dataset]")
    args = {key: value for key, value in table.items() if key not in ("builder", "seed")}
    return {"builder": table["builder"], "seed": table.get("seed", 0), "args": args}


def _flags(table, where):
    for key, value in table.items():
        if key.startswith("-"):
            raise RecipeError(f"{where}: write flag {key!r} without the leading dashes")
        if key in RUNNER_FLAGS:
            raise RecipeError(f"{where}: --{key} is set by the runner (use 'steps', 'seeds' or [dataset])")
        if isinstance(value, (list, dict)):
            raise RecipeError(f"{where}: --{key} must be a single value (lists go in [grid])")
    return table


def _grid(table, where):
    for key, values in table.items():
        if not isinstance(values, list) or not values:
            raise RecipeError(f"{where}: [grid] {key} must be a non-empty list of values")
        for value in values:
            _flags({key: value}, f"{where}: [grid]")
            _in_folder_name(f"{key}={format_value(value)}", f"{where}: [grid] {key}: the value {value!r}")
        shown = [format_value(value) for value in values]
        repeated = next((value for value in shown if shown.count(value) > 1), None)
        if repeated is not None:  # 1e-3 and 0.001 name one run folder
            raise RecipeError(f"{where}: [grid] {key} repeats the value {repeated} (each value names a run)")
    return table


def _in_folder_name(text, what):
    """Run folder names are made of arm names and grid values: none may leave the recipe's folder."""
    if "/" in text or "\\" in text or ".." in text:
        raise RecipeError(f"{what} has a '/' or '..': it names the run's folder")


def _arm(table, where):
    _no_unknown_keys(table, ARM_KEYS, f"{where}: [[arm]]")
    if "flags" in table:
        _typed(table, "flags", dict, f"{where}: [[arm]] {table.get('name')!r}")
    if not isinstance(table.get("name"), str) or not table["name"]:
        raise RecipeError(f"{where}: every [[arm]] needs a 'name'")
    _in_folder_name(table["name"], f"{where}: arm name {table['name']!r}")
    return {"name": table["name"], "flags": _flags(table.get("flags", {}), f"{where}: arm {table['name']}"),
            **{key: table[key] for key in ("variant", "seeds") if key in table}}
