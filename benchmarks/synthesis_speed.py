"""How fast is Part 7's program synthesiser, and how many search nodes does a guide save?

The synthesiser is variants/neuro-symbolic/programs.py (generated from 04-neuro-symbolic.patch);
the tasks are the list_tasks dataset (runs.datasets, seed 0): its held-out tasks (lists.test).
Three things, in one run:

  1. speed     programs enumerated a second: enumerate_programs over the base grammar (uniform) for
               list(int) -> list(int) up to --max-cost nats, count / seconds; and search nodes a
               second (nodes / seconds) over the unguided searches of the held-out tasks below
  2. guide     nodes to solve each held-out task within --nodes, without a guide (the base
               grammar, uniform: the baseline, measured in this run) and with one. The real guide
               is the trained language model, which needs a trained run, so its effect is
               measured two ways, labelled as such:
                 (a) trained guide: the first finished run of the neuro-symbolic-cycles recipe
                     (or the run folder --run DIR names): its model.pt writes programs for each
                     task as the run's last wake did (same proposals, same seed), and the task
                     is searched with the grammar they imply over the run's library. Skipped,
                     with a note, when no run has finished.
                 (b) oracle unigram guide, an upper bound: the grammar weights that the task's own
                     reference program implies (runs.datasets.list_task_program, put through
                     programs.guide_weights), i.e. what a perfect unigram recognition model could
                     achieve. It writes no proposals: only the grammar is guided.
               Reported: nodes per task with and without, how many are solved within the budget,
               the ratio of total nodes over the tasks both solve, and the median per-task ratio,
               against the issue's target (the guide cuts nodes 10x or more).
  3. loop      the wake-sleep loop's CPU time per seed, read from the recipe's runs under
               runs/results/neuro-symbolic-cycles/ (--runs DIR: elsewhere; each wake's cpu_s in
               synth.json, the run's wall_s in summary.json), against the target of at most 10
               CPU-minutes per seed: met when wall_s x threads is under it, not met when the
               synthesiser's own CPU time is over it, undetermined in between.

Nodes are deterministic (no time limit applies to the searches); the per-second rates are timings.
Nothing is asserted: the numbers are the result.

    python benchmarks/synthesis_speed.py                       # every held-out task, 20000 nodes
    python benchmarks/synthesis_speed.py --tasks 5 --nodes 2000
    python benchmarks/synthesis_speed.py --record              # also benchmarks/results/synthesis_speed.json
"""

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # apply.py and runs/, when run as `python benchmarks/synthesis_speed.py`

import apply  # noqa: E402
from runs import datasets, load_module  # noqa: E402
from runs.probes import check_checkpoint  # noqa: E402
from runs.runner import variant_code  # noqa: E402
from runs.store import write_json  # noqa: E402

VARIANT = "neuro-symbolic"
RUNS = ROOT / "runs" / "results" / "neuro-symbolic-cycles"
RECORD = ROOT / "benchmarks" / "results" / "synthesis_speed.json"
TARGET_RATIO = 10.0  # the issue's: the guide cuts nodes 10x or more
TARGET_CPU_S = 600.0  # and the whole loop takes at most 10 CPU-minutes per seed


def load_programs():
    """programs.py of the neuro-symbolic variant, imported by path (its folder on sys.path)."""
    import importlib
    folder = apply.Project(ROOT).ensure_variant(VARIANT)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module("programs"), folder


def held_out_tasks(programs, count):
    lines = datasets.build("list_tasks", seed=0)["lists.test"]
    tasks = [programs.read_task(json.loads(line), f"lists.test, line {n}") for n, line in enumerate(lines, 1)]
    return tasks[:count] if count else tasks


# -----------------------------------------------------------------------------
# 1. speed


def enumeration_rate(programs, max_cost):
    grammar = programs.Grammar(programs.Library())
    start = time.perf_counter()
    found = programs.enumerate_programs(grammar, programs.LIST, [programs.LIST], max_cost)
    seconds = time.perf_counter() - start
    return {"max_cost": max_cost, "programs": len(found), "seconds": seconds,
            "per_second": len(found) / seconds if seconds > 0 else math.inf}


# -----------------------------------------------------------------------------
# 2. guide


def search(programs, task, library, weights, proposals, nodes):
    result = programs.solve(task, library, weights, proposals, nodes)
    return {"solved": result["program"] is not None, "nodes": result["nodes"], "seconds": result["seconds"],
            "program": result["program"], "by": result["by"]}


def oracle_weights(programs, task):
    """The oracle's grammar for a task: the weights its reference program implies."""
    reference = programs.parse(datasets.list_task_program(task.name))
    fits = programs.fits_examples(reference, task, programs.Library())
    return programs.guide_weights(programs.Library(), [reference]), programs.show(reference), fits


def finished_runs(runs):
    """The recipe's finished runs with a model, in name order."""
    if not runs.is_dir():
        return []
    return sorted(d for d in runs.iterdir() if (d / "summary.json").is_file() and (d / "model.pt").is_file()
                  and (d / "synth.json").is_file())


def trained_guide(programs, folder, run_dir):
    """The run's library and its language model as a guide: task -> (weights, proposals), as the
    run's last wake computed them (SynthTraining.guide, with the run's flags and seed)."""
    mm = load_module(folder / "makemore.py")
    config = json.loads((run_dir / "config.json").read_text())
    args = mm.parse_args(config["argv"][1:])
    args.device = "cpu"
    state = json.loads((run_dir / "synth.json").read_text())["state"]
    library = programs.Library.from_json(state["library"])
    data = types.SimpleNamespace(vocab=mm.Vocabulary(programs.ALPHABET), block_size=programs.ROW_CHARS + 1)
    model = mm.create_model(args.type, mm.model_config(args, data))
    path = run_dir / "model.pt"
    check_checkpoint(path)  # before the variant unpickles it: a file from someone else could run code
    mm.restore_weights(model, mm.load_checkpoint(path, data.vocab), path)
    model.eval()
    cycle = max(len(state["wakes"]) - 1, 0)
    synth = types.SimpleNamespace(args=args, data=data, loop=types.SimpleNamespace(library=library))
    return library, mm.SynthTraining.guide(synth, model, cycle), args.synth_proposals


def compare(label, baseline, guided, nodes):
    """Totals and ratios of one guide against the unguided baseline."""
    both = [name for name in baseline if baseline[name]["solved"] and guided[name]["solved"]]
    ratios = [baseline[n]["nodes"] / guided[n]["nodes"] for n in both]
    total_base, total_guided = sum(baseline[n]["nodes"] for n in both), sum(guided[n]["nodes"] for n in both)
    summary = {"guide": label, "tasks": len(baseline), "nodes_budget": nodes,
               "solved_unguided": sum(r["solved"] for r in baseline.values()),
               "solved_guided": sum(r["solved"] for r in guided.values()), "solved_by_both": len(both),
               "nodes_unguided_both": total_base, "nodes_guided_both": total_guided,
               "ratio_total": total_base / total_guided if both else None,
               "ratio_median": statistics.median(ratios) if ratios else None}
    print(f"{label}: solved within {nodes} nodes: {summary['solved_unguided']}/{len(baseline)} unguided, "
          f"{summary['solved_guided']}/{len(baseline)} guided, {len(both)} by both")
    if both:
        total, median = summary["ratio_total"], summary["ratio_median"]
        verdict = "meets" if total >= TARGET_RATIO else "does NOT meet"
        print(f"{label}: unguided/guided nodes over the {len(both)} tasks solved by both: total "
              f"{total_base}/{total_guided} = {total:.2f}x, median per task {median:.2f}x")
        print(f"{label}: target: the guide cuts nodes {TARGET_RATIO:g}x or more: {verdict} it "
              f"(total ratio {total:.2f}x)")
    else:
        print(f"{label}: no task solved by both: no ratio")
    return summary


def print_table(tasks, columns, nodes):
    """One row a task: nodes for each column ('-' where unsolved within the budget)."""
    names = list(columns)
    width = max(len(t.name) for t in tasks)
    print(f"{'task':<{width}}  " + "  ".join(f"{n:>14}" for n in names))
    for t in tasks:
        cells = [f"{r[t.name]['nodes']:>14}" if r[t.name]["solved"] else f"{'- (>' + str(nodes) + ')':>14}"
                 for r in columns.values()]
        print(f"{t.name:<{width}}  " + "  ".join(cells))


# -----------------------------------------------------------------------------
# 3. the loop's CPU time


def loop_times(runs):
    """What every run of the recipe (finished or not) says about its time."""
    rows = []
    if not runs.is_dir():
        return rows
    for run_dir in sorted(runs.iterdir()):
        synth_path = run_dir / "synth.json"
        if not synth_path.is_file():
            continue
        try:
            wakes = json.loads(synth_path.read_text())["wakes"]
            config = json.loads((run_dir / "config.json").read_text())
            finished = (run_dir / "summary.json").is_file()
            summary = json.loads((run_dir / "summary.json").read_text()) if finished else None
        except (OSError, ValueError, KeyError):
            continue  # being written by a run in progress
        cpu = {key: sum(w.get("cpu_s", {}).get(key, 0.0) for w in wakes) for key in ("wake", "answers", "sleep")}
        rows.append({"run": run_dir.name, "arm": config.get("arm"), "seed": config.get("seed"),
                     "threads": config.get("threads"), "finished": summary is not None, "wakes": len(wakes),
                     "cpu_s": cpu, "synth_cpu_s": sum(cpu.values()),
                     "wall_s": summary.get("wall_s") if summary else None})
    return rows


def print_loop_times(rows):
    if not rows:
        print("no finished runs yet (no run of the neuro-symbolic-cycles recipe)")
        return
    for row in rows:
        cpu = row["cpu_s"]
        line = (f"{row['run']}: {row['wakes']} wake(s): synthesiser CPU {row['synth_cpu_s'] / 60:.2f} min "
                f"(wake {cpu['wake']:.1f} s, answers {cpu['answers']:.1f} s, sleep {cpu['sleep']:.1f} s)")
        if not row["finished"]:
            print(line + ", unfinished")
            continue
        threads = row["threads"] or 1
        whole = row["wall_s"] * threads  # an upper bound on the whole run's CPU time, training included
        line += f"; the whole run {row['wall_s'] / 60:.2f} min wall on {threads} thread(s)"
        if whole <= TARGET_CPU_S:
            verdict = f"meets the target (<= {whole / 60:.2f} CPU-min)"
        elif row["synth_cpu_s"] > TARGET_CPU_S:
            verdict = "does NOT meet the target (the synthesiser alone is over it)"
        else:
            verdict = (f"undetermined: between {row['synth_cpu_s'] / 60:.2f} (synthesiser) and "
                       f"{whole / 60:.2f} CPU-min (wall x threads)")
        print(f"{line}: target <= {TARGET_CPU_S / 60:g} CPU-min per seed: {verdict}")
    if not any(row["finished"] for row in rows):
        print("no finished runs yet")


# -----------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20000, help="search nodes per task at most")
    parser.add_argument("--tasks", type=int, default=0, help="the first N held-out tasks (default: all)")
    parser.add_argument("--max-cost", type=float, default=16.0,
                        help="enumerate every list(int) -> list(int) program up to this many nats")
    parser.add_argument("--run", type=Path, metavar="DIR",
                        help="the trained guide's run folder (default: the first finished run of the recipe)")
    parser.add_argument("--runs", type=Path, default=RUNS, metavar="DIR",
                        help=f"where the recipe's runs are (default: {RUNS.relative_to(ROOT)})")
    parser.add_argument("--record", nargs="?", type=Path, const=RECORD, metavar="PATH",
                        help=f"also write the numbers as JSON (default path: {RECORD.relative_to(ROOT)})")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.tasks < 0 or args.max_cost <= 0:
        parser.error("--nodes and --max-cost must be positive, --tasks not negative")
    if args.record and args.record.is_dir():
        parser.error(f"--record {args.record}: a folder; name the file to write")
    if args.run and not (args.run / "model.pt").is_file():
        parser.error(f"--run {args.run}: no model.pt there")
    sys.stdout.reconfigure(line_buffering=True)
    torch.set_num_threads(1)
    where = args.runs.relative_to(ROOT) if args.runs.is_relative_to(ROOT) else args.runs
    programs, folder = load_programs()
    tasks = held_out_tasks(programs, args.tasks)
    base = programs.Library()

    print("== 1. speed")
    enum = enumeration_rate(programs, args.max_cost)
    print(f"enumeration: {enum['programs']} programs list(int) -> list(int) up to {args.max_cost:g} nats in "
          f"{enum['seconds']:.3f} s: {enum['per_second']:.0f} programs/s")

    unguided, oracle, oracle_info = {}, {}, {}
    for t in tasks:
        unguided[t.name] = search(programs, t, base, None, (), args.nodes)
        weights, reference, fits = oracle_weights(programs, t)
        oracle_info[t.name] = {"reference": reference, "reference_fits": fits}
        oracle[t.name] = search(programs, t, base, weights, (), args.nodes)
        print(f"searched {t.name}: unguided {unguided[t.name]['nodes']}, oracle {oracle[t.name]['nodes']}",
              file=sys.stderr, flush=True)
    nodes_total = sum(r["nodes"] for r in unguided.values())
    seconds_total = sum(r["seconds"] for r in unguided.values())
    rate = nodes_total / seconds_total if seconds_total > 0 else math.inf
    print(f"search: {nodes_total} nodes in {seconds_total:.2f} s over {len(tasks)} held-out task(s), unguided: "
          f"{rate:.0f} nodes/s")

    print(f"\n== 2. nodes to solve {len(tasks)} held-out task(s), budget {args.nodes} nodes; unguided = the base "
          f"grammar, uniform")
    columns = {"unguided": unguided, "oracle (b)": oracle}
    trained, trained_note, trained_run = None, None, None
    run_dir = args.run or next(iter(finished_runs(args.runs)), None)
    if run_dir is None:
        trained_note = (f"(a) trained guide: skipped: no finished run with model.pt under "
                        f"{where}/ yet (train one: python -m runs neuro-symbolic-cycles)")
    else:
        trained_run = str(run_dir)
        library, guide, proposals = trained_guide(programs, folder, run_dir)
        trained = {}
        for t in tasks:
            weights, proposed = guide(t)
            trained[t.name] = search(programs, t, library, weights, proposed, args.nodes)
            print(f"searched {t.name}: trained guide {trained[t.name]['nodes']}", file=sys.stderr, flush=True)
        columns["trained (a)"] = trained
        unfinished = "" if (run_dir / "summary.json").is_file() else " (UNFINISHED run)"
        trained_note = (f"(a) trained guide: {run_dir}{unfinished}: "
                        f"its model.pt, {proposals} proposals a task, the run's library of "
                        f"{len(library.inventions)} invention(s)")
    print_table(tasks, columns, args.nodes)
    wrong = [name for name, info in oracle_info.items() if not info["reference_fits"]]
    if wrong:
        print(f"note: the reference program does not fit the examples of {', '.join(wrong)}")
    print(trained_note)
    summaries = []
    if trained is not None:
        summaries.append(compare("(a) trained guide", unguided, trained, args.nodes))
    summaries.append(compare("(b) oracle unigram guide (upper bound)", unguided, oracle, args.nodes))

    print(f"\n== 3. the whole loop's CPU time per seed ({where})")
    loops = loop_times(args.runs)
    print_loop_times(loops)

    if args.record:
        write_json(args.record, {
            "benchmark": "synthesis_speed",
            "command": shlex.join(["python", "benchmarks/synthesis_speed.py", *argv]),
            "dataset": {"builder": "list_tasks", "seed": 0, "split": "lists.test"}, "tasks": len(tasks),
            "nodes": args.nodes, "enumeration": enum,
            "search": {"nodes": nodes_total, "seconds": seconds_total, "nodes_per_second": rate},
            "trained_run": trained_run, "guides": summaries,
            "per_task": [{"task": t.name, "unguided": unguided[t.name], "oracle": oracle[t.name], **oracle_info[t.name],
                          **({"trained": trained[t.name]} if trained is not None else {})} for t in tasks],
            "loop": loops,
            "variant": VARIANT, "code": variant_code(VARIANT)["code"],
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count()},
            "torch": torch.__version__, "python": platform.python_version()})
        print(f"recorded: {args.record}")


if __name__ == "__main__":
    main()
