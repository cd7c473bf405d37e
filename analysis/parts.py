"""A post's figures, declared once (a Part and its figure functions), and the one driver that
draws them: loads the runs, calls each figure function, titles, marks, saves and indexes what it
drew, and says what it could not draw. How to write a part: the package docstring."""

from dataclasses import dataclass, field
from pathlib import Path

from analysis import plots, style
from analysis.index import Figure
from runs.recipe import RecipeError, load_recipe
from runs.store import RESULTS_DIR, ROOT, load_recipe_runs, read_json, staleness


@dataclass
class Drawn:
    """What a figure function drew. The driver adds the headline as its title (and the stale note
    when any of its groups is stale), saves it as <part>/<stem>.png and .svg, and indexes it."""

    fig: object  # the matplotlib figure: style.figure(...) or plots.table_figure(...)
    headline: str  # the title: what the figure shows, as a sentence with its numbers
    caption: str  # one line for the index: how to read the figure
    groups: list = field(default_factory=list)  # the plots.RunGroup's drawn: recipes, runs, staleness


@dataclass
class Skip:
    """A figure the results cannot give: the driver says why and lists it in the index."""

    reason: str


@dataclass
class Sources:
    """Where figures come from: run results (RESULTS/<recipe>/<run>/) and benchmark records
    (BENCHMARKS/<name>.json, written by `python benchmarks/<name>.py --record PATH`)."""

    results: Path
    benchmarks: Path


@dataclass
class Drawing:
    """What a part's draw did: the index entries of the figures saved (paths relative to the
    figures folder), the figures not drawn as (path, why), and the recipes without finished runs."""

    figures: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    numbers: list = field(default_factory=list)  # the part's headline numbers, one line each (Part.numbers)
    absent: list = field(default_factory=list)  # "<part>/<stem>" of the figures whose results or record are absent


@dataclass
class Declared:
    """A figure function and what it is drawn from."""

    function: object
    recipes: tuple
    record: str | None

    @property
    def stem(self):
        """The file name, from the function's: def expert_domain -> expert-domain.png."""
        return self.function.__name__.replace("_", "-")


class Part:
    """A post's figures, drawn into figures/<name>/ in the order they are declared."""

    def __init__(self, name, label=None):
        self.name = name
        self.label = label  # label(config) -> a group's name; None: by what sets the groups apart
        self.declared = []
        self.counted = None  # the Declared numbers function, if the part has one

    def figure(self, *recipes, record=None):
        """Declare a figure function: it is called with the groups of each recipe named (each a list
        of plots.RunGroup, the seeds of a configuration in one group) and then the benchmark record
        named (a dict), and returns a Drawn or a Skip. The function is returned as it is."""
        def declare(function):
            self.declared.append(Declared(function, recipes, record))
            return function
        return declare

    def numbers(self, *recipes):
        """Declare the part's numbers function: called like a figure function with the groups of
        each recipe named, it returns the headline numbers its notes cite, as lines of text. The
        redraw prints them after the figures; `python -m analysis numbers` prints only them. It is
        not called while a recipe named has no finished runs. The function is returned as it is."""
        def declare(function):
            self.counted = Declared(function, recipes, None)
            return function
        return declare

    def numbers_of(self, sources, loaded=None):
        """The lines of the part's numbers function ([] without one, or without finished runs)."""
        loaded = {} if loaded is None else loaded
        if self.counted is None or not all(self.groups_of(r, sources, loaded) for r in self.counted.recipes):
            return []
        return list(self.counted.function(*[loaded[recipe] for recipe in self.counted.recipes]))

    def draw(self, sources, figures_dir):
        """Every figure of the part into figures_dir/<name>/, and its numbers -> Drawing."""
        drawing, loaded = Drawing(), {}
        for declared in self.declared:
            missing = [recipe for recipe in declared.recipes if not self.groups_of(recipe, sources, loaded)]
            drawing.missing += [recipe for recipe in missing if recipe not in drawing.missing]
            if missing:
                drawing.absent.append(f"{self.name}/{declared.stem}")
            else:  # a recipe without runs is said once, by the caller, for all its figures
                self.draw_one(declared, [loaded[recipe] for recipe in declared.recipes], sources, figures_dir,
                              drawing)
        drawing.numbers = self.numbers_of(sources, loaded)
        return drawing

    def draw_one(self, declared, arguments, sources, figures_dir, drawing):
        """Call a figure function and save what it drew, or say why it drew nothing."""
        source = stale = None
        if declared.record:
            path = sources.benchmarks / f"{declared.record}.json"
            record, why = read_record(path, declared.record)
            if record is None:
                drawing.absent.append(f"{self.name}/{declared.stem}")
                return self.skip(drawing, declared, why)
            arguments, source = [*arguments, record], shown(path)
            stale = staleness(record) if "code" in record else "it records no code digest"  # as a run's
        drawn = declared.function(*arguments)
        if isinstance(drawn, Skip):
            return self.skip(drawing, declared, drawn.reason)
        stale = plots.stale_reason(drawn.groups) or stale
        recipes = sorted({g.config["recipe"] for g in drawn.groups})
        partial = "; ".join(filter(None, (unfinished(recipe, sources) for recipe in recipes))) or None
        png = save(drawn, figures_dir / self.name / declared.stem, stale, partial)
        drawing.figures.append(Figure(path=png.relative_to(figures_dir), caption=drawn.caption,
                                      recipe=", ".join(recipes) or None, stale=stale, partial=partial,
                                      source=source, runs=[run.name for g in drawn.groups for run in g.runs]))

    def groups_of(self, recipe, sources, loaded):
        """The recipe's finished runs grouped by configuration ([] if none), loaded once per draw."""
        if recipe not in loaded:
            folder = sources.results / recipe
            runs = load_recipe_runs(folder) if folder.is_dir() else []
            loaded[recipe] = plots.group_runs(runs, label=self.label)
        return loaded[recipe]

    def skip(self, drawing, declared, reason):
        print(f"{self.name}: {declared.stem} not drawn: {reason}")
        drawing.skipped.append((f"{self.name}/{declared.stem}", reason))


def unfinished(recipe, sources):
    """'6 of 60 runs of act-tasks are finished' while some of the lab's runs of the recipe are not (a
    recipe being trained, or retrained), else None. Only the lab's own results are held to its
    recipes: other folders hold what their owner chose to train."""
    if Path(sources.results).resolve() != RESULTS_DIR.resolve():
        return None
    try:
        planned = {spec.name for spec in load_recipe(recipe).runs()}
    except RecipeError:
        return None
    finished = {path.parent.name for path in (sources.results / recipe).glob("*/summary.json")} & planned
    return f"{len(finished)} of {len(planned)} runs of {recipe} are finished" if finished < planned else None


def save(drawn, stem, stale=None, partial=None):
    """Title the figure (with the stale note when stale, the partial one while its recipe trains)
    and write stem.png and stem.svg; returns the PNG's path. The same bytes on every redraw of the
    same results."""
    style.title(drawn.fig, drawn.headline, stale, partial)
    return style.save(drawn.fig, stem)


def read_record(path, name):
    """(a benchmark record, None), or (None, why there is none)."""
    try:
        record = read_json(path)
    except ValueError as error:  # a JSON syntax error
        return None, f"{shown(path)} is not a benchmark record: {error}"
    if record is None:
        return None, (f"no benchmark record {shown(path)}: "
                      f"run `python benchmarks/{name}.py --record {shown(path)}`")
    return record, None


def shown(path):
    """A path as messages show it: relative to the project root when inside it."""
    path = Path(path).resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
