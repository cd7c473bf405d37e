"""Part 7's list tasks (runs/datasets.py, list_tasks): deterministic, in DreamCoder's task format,
within the bounds of Part 7's language, held-out tasks new but made of seen parts, and every output
checked by running the task's reference program with Part 7's own evaluator (programs.py), not
with the builder's Python."""

import importlib.util
import json
import random
from pathlib import Path

import pytest

from runs import datasets
from runs.datasets import build, list_task_names, list_task_output, list_task_program, list_task_steps

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "variants" / "neuro-symbolic" / "programs.py"
TYPES = ("int", "bool", "list-of-int", "list-of-bool")


@pytest.fixture(scope="module")
def built():
    return build("list_tasks", 0)


@pytest.fixture(scope="module")
def tasks(built):
    return {domain: [json.loads(line) for line in lines] for domain, lines in built.items()}


@pytest.fixture(scope="module")
def programs():
    if not PROGRAMS.is_file():
        pytest.skip(f"{PROGRAMS.relative_to(ROOT)} is not there: the neuro-symbolic variant is not generated")
    spec = importlib.util.spec_from_file_location("list_task_programs", PROGRAMS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "run"):
        pytest.skip(f"{PROGRAMS.relative_to(ROOT)} has no run(program, value, library) yet")
    return module


def has_type(value, type_):
    if type_ == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "bool":
        return isinstance(value, bool)
    element = type_.removeprefix("list-of-")
    return isinstance(value, list) and all(has_type(item, element) for item in value)


def in_bounds(value):
    if isinstance(value, list):
        return len(value) <= 64 and all(map(in_bounds, value))
    return abs(value) <= 10**6


def as_language_value(value):
    """JSON's lists as the evaluator's lists, which are tuples."""
    return tuple(map(as_language_value, value)) if isinstance(value, list) else value


def as_json_value(value):
    return list(map(as_json_value, value)) if isinstance(value, tuple) else value


def every_task(tasks):
    return tasks["lists"] + tasks["lists.test"]


def test_the_tasks_depend_on_the_seed_only(built):
    assert build("list_tasks", 0) == built
    other = build("list_tasks", 1)
    assert other != built
    # the seed draws the examples; the tasks are the same
    assert [json.loads(line)["name"] for line in other["lists"]] == [json.loads(line)["name"] for line in built["lists"]]


def test_the_domains_are_the_training_tasks_and_their_held_out_set(built, tasks):
    assert list(built) == ["lists", "lists.test"]  # build() has also run check_items on each
    train = [task["name"] for task in tasks["lists"]]
    held_out = [task["name"] for task in tasks["lists.test"]]
    assert (train, held_out) == list_task_names()
    assert len(set(train)) == len(train) == 98
    assert len(set(held_out)) == len(held_out) == 50
    assert not set(train) & set(held_out)


def test_each_line_is_one_compact_task_in_dreamcoders_format(built):
    for line in built["lists"] + built["lists.test"]:
        task = json.loads(line)
        assert list(task) == ["name", "type", "examples", "test"]
        assert json.dumps(task, separators=(",", ":")) == line
        assert list(task["type"]) == ["input", "output"] and set(task["type"].values()) <= set(TYPES)
        assert len(task["examples"]) == 10 and len(task["test"]) == 5
        for pair in task["examples"] + task["test"]:
            assert list(pair) == ["i", "o"]
            assert has_type(pair["i"], task["type"]["input"]), (task["name"], pair)
            assert has_type(pair["o"], task["type"]["output"]), (task["name"], pair)
            assert in_bounds(pair["o"]), (task["name"], pair)


def test_examples_are_short_and_tests_longer_with_larger_numbers(tasks):
    for task in every_task(tasks):
        for pairs, lengths, top in ((task["examples"], range(0, 6), 9), (task["test"], range(7, 11), 20)):
            inputs = [pair["i"] for pair in pairs]
            assert len({json.dumps(x) for x in inputs}) == len(inputs), task["name"]
            for x in inputs:
                if isinstance(x, list):
                    assert len(x) in lengths and all(0 <= item <= top for item in x), (task["name"], x)
                else:
                    assert 0 <= x <= top and (pairs is task["examples"] or x >= 10), (task["name"], x)
        assert len({json.dumps(pair["o"]) for pair in task["examples"]}) > 1, task["name"]


def test_every_output_is_what_the_reference_program_gives(tasks, programs):
    for task in every_task(tasks):
        program = programs.parse(list_task_program(task["name"]))
        for pair in task["examples"] + task["test"]:
            output = programs.run(program, as_language_value(pair["i"]), library=None)
            assert output is not None, (task["name"], pair["i"])
            # compared as JSON, where true and 1 differ
            assert json.dumps(as_json_value(output)) == json.dumps(pair["o"]), (task["name"], pair, output)


def test_reference_programs_use_only_the_constants_0_1_and_2():
    for name in sum(list_task_names(), []):
        tokens = list_task_program(name).replace("(", " ").replace(")", " ").split()
        assert all(not token.isdigit() or token in "012" for token in tokens), name


def test_held_out_tasks_are_new_tasks_made_of_seen_parts():
    train, held_out = list_task_names()
    trained_families = {family for name in train for family, _ in list_task_steps(name)}
    composition_steps = {step for name in train if "/" in name for step in name.split("/")}
    for name in held_out:
        assert {family for family, _ in list_task_steps(name)} <= trained_families, name
        if "/" in name:
            assert all(step in train and step in composition_steps for step in name.split("/")), name
    assert any("/" in name for name in held_out) and any("/" not in name for name in held_out)


def test_no_two_tasks_compute_the_same_function():
    """Two names for one function would put a training task in the held-out set under another name.
    Tasks agreeing on every probe where both have an output count as the same (keep-greater-than-4/max
    is max wherever it is defined)."""
    rng = random.Random(0)
    probes = {"int": list(range(21)),
              **{type_: [datasets.draw_list_input(rng, type_, rng.random() < 0.5) for _ in range(200)]
                 for type_ in ("list-of-int", "list-of-bool")}}
    signatures = {}
    for name in sum(list_task_names(), []):
        type_ = datasets.list_task_type(name)
        outputs = [list_task_output(name, x) for x in probes[type_["input"]]]
        for other, (other_type, other_outputs) in signatures.items():
            if other_type == type_:
                both = [(a, b) for a, b in zip(outputs, other_outputs) if a is not None and b is not None]
                assert any(a != b for a, b in both), (name, other)
        signatures[name] = (type_, outputs)


def test_a_task_without_an_output_for_an_input_says_none():
    assert list_task_output("keep-evens/sum", [1, 2, 4]) == 6
    assert list_task_output("drop-3", [1, 2]) is None
    assert list_task_output("keep-odds/head", [2, 4]) is None
    assert list_task_output("product", [0] + [20] * 5) is None  # the right fold passes 20**5 first
