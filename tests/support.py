"""Run folders for tests, in the committed results format (runs/README.md), written through the
writers of runs/store.py: the one place the tests write that format, so that a change to it is one
change here. Synthetic results are for tests only; committed figures come from real runs."""

import functools
import json

import apply
from runs import file_sha256, load_module
from runs.runner import flag_arguments, parse_flags, resolved_flags
from runs.store import ROOT, write_json, write_samples

SPINE_FILE = "upstream/makemore.py"
# samples.txt when a test does not care: one new sample is empty (the model stopped at once)
SAMPLES = {"in train": ["emma", "ava"], "in test": ["zoe"], "new": ["kaylen", "", "mariah"]}


def run_config(recipe, name, *, arm, seed, steps, flags, variant="spine", domains=("names",),
               quick=False, changed=None):
    """config.json of a run as the runner writes it. changed="spine" or "patches": the run ran other
    code than today's (another digest, and another hash of the spine or of its patches): it is stale."""
    file = SPINE_FILE if variant == "spine" else f"variants/{variant}/makemore.py"
    paths = [f"data/cache/{recipe}/{domain}.txt" for domain in domains]
    argv = [file, "-i", ",".join(paths), "-o", f"runs/results/{recipe}/{name}", "--seed", str(seed),
            "--max-steps", str(steps), *flag_arguments(flags)]
    files = [{"domain": domain, "path": path, "sha256": "ab" * 32} for domain, path in zip(domains, paths)]
    return {"recipe": recipe, "run": name, "arm": arm, "variant": variant, "file": file, "seed": seed,
            "steps": steps, "quick": quick, "flags": flags, "argv": argv,
            "command": "python " + " ".join(argv),
            "dataset": {"builder": "mixture" if len(domains) > 1 else domains[0], "seed": 0, "args": {},
                        "files": files},
            "code": code(variant, changed), "torch": "2.13.0+cpu", "python": "3.11.7", "threads": 1,
            "resolved": resolved_flags(parse_flags(variant_module(variant), argv[1:], f"{name}: "))}


@functools.cache
def variant_module(variant):
    """The variant's own module, whose parser resolves a run's flags as the runner has it do."""
    if variant == "spine":
        return load_module(ROOT / SPINE_FILE)
    return load_module(apply.Project(ROOT).ensure_variant(variant) / "makemore.py")


def code(variant, changed=None):
    """config.json's code: the digest apply computes today, the spine's hash and the patches'."""
    def sha256(path, part):
        return "0" * 64 if changed == part else file_sha256(ROOT / path)

    spine = {"path": SPINE_FILE, "sha256": sha256(SPINE_FILE, "spine")}
    patches = [{"name": entry, "sha256": sha256(f"patches/{entry}", "patches")}
               for entry in patch_entries(variant)]
    return {"digest": "0" * 64 if changed else digest(variant), "spine": spine, "patches": patches}


@functools.cache
def digest(variant):
    return apply.Project(ROOT).code_digest(variant)


def patch_entries(variant):
    """The patches that make a variant, in series order."""
    if variant == "spine":
        return []
    project = apply.Project(ROOT)
    entries = project.entries()
    return entries[:project.position(entries, variant) + 1]


def write_run(results_dir, config, metrics, probes, samples=SAMPLES, wall_s=10.0):
    """A finished run folder, results_dir/<recipe>/<run>/: config.json, metrics.jsonl (records, one
    per evaluation, as the spine logs them), probes.json (`probes` plus the sample counts, as the
    probes write them; it should hold "parameters"), samples.txt and summary.json (as the runner
    summarizes). Returns the folder."""
    directory = results_dir / config["recipe"] / config["run"]
    directory.mkdir(parents=True)
    write_json(directory / "config.json", config)
    (directory / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in metrics))
    probes = {"samples": sample_counts(samples), **probes}
    write_json(directory / "probes.json", probes, indent=None)
    write_samples(directory / "samples.txt", samples)
    write_json(directory / "summary.json", summary(metrics, probes, wall_s))
    return directory


def sample_counts(samples):
    counts = {key.replace(" ", "_"): len(samples[key]) for key in ("in train", "in test", "new")}
    return {"n": sum(counts.values()), **counts}


def summary(metrics, probes, wall_s):
    """summary.json from the evaluations and the probes, as runs/runner.py's summarize makes it."""
    chosen_by = "valid_loss" if "valid_loss" in metrics[-1] else "test_loss"
    final, best = metrics[-1], min(metrics, key=lambda record: record[chosen_by])
    domains = [key.split("/", 1)[1] for key in final if key.startswith("test_loss/")]
    timed = [record for record in metrics if record.get("step_ms") is not None]
    return {
        "steps": final["step"], "params": probes["parameters"]["total"],
        "final_train_loss": final["train_loss"], "final_test_loss": final["test_loss"],
        "best_test_loss": best["test_loss"], "best_step": best["step"], "chosen_by": chosen_by,
        "final_test_loss_by_domain": {d: final[f"test_loss/{d}"] for d in domains},
        "best_test_loss_by_domain": {d: best[f"test_loss/{d}"] for d in domains},
        "tokens_per_s": sum(r["tokens_per_s"] for r in timed) / len(timed),
        "step_ms": sum(r["step_ms"] for r in timed) / len(timed),
        "wall_s": wall_s, "samples": probes["samples"],
    }
