"""Part 7's synthesiser (variants/neuro-symbolic/programs.py, from 04-neuro-symbolic.patch): the
step-limited evaluator, reading and writing programs, enumeration by description length, the
search with observational-equivalence pruning, abstraction sleep and inlining, task files, the
command line, dreams and one wake. Expected values come from the language's semantics (or from
running a reference program), never from a run of the synthesiser itself."""

import json
import math
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

import apply
from runs import load_module
from runs.datasets import build

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def programs_file():
    return apply.Project(ROOT).ensure_variant("neuro-symbolic") / "programs.py"


@pytest.fixture(scope="module")
def P(programs_file):
    return load_module(programs_file)


def make_task(P, name, reference, inputs, input_type, output_type, types=None):
    """A task whose outputs are the reference program's, by run()."""
    program = P.parse(reference)
    examples = [(i, P.run(program, i)) for i in inputs]
    assert all(o is not None for _, o in examples), reference
    return P.Task(name, input_type, output_type, examples, types=types or (input_type, output_type))


LISTS = [(1,), (3, 1), (2, 5, 4), (0, 7, 7, 1), (6,), (4, 4)]  # non-empty: car and cdr answer on each


# --- the evaluator ---------------------------------------------------------------------------------

# every primitive on a normal input: (program, input, the value the language's semantics gives)
NORMAL = {
    "0": ("0", 5, 0), "1": ("1", 5, 1), "2": ("2", 5, 2),
    "+": ("(+ $0 2)", 5, 5 + 2), "-": ("(- 2 $0)", 5, 2 - 5), "*": ("(* $0 $0)", -4, 16),
    "mod": ("(mod $0 2)", 7, 7 % 2), "eq?": ("(eq? $0 2)", 2, True), "gt?": ("(gt? $0 2)", 2, False),
    "not": ("(not (eq? $0 1))", 1, False), "if": ("(if (gt? $0 0) 1 2)", 3, 1),
    "empty": ("empty", 5, ()), "cons": ("(cons 1 $0)", (2, 3), (1, 2, 3)),
    "car": ("(car $0)", (4, 5), 4), "cdr": ("(cdr $0)", (4, 5), (5,)),
    "empty?": ("(empty? $0)", (), True), "length": ("(length $0)", (4, 5, 6), 3),
    "index": ("(index 1 $0)", (4, 5, 6), 5), "range": ("(range $0)", 3, (0, 1, 2)),
    "map": ("(map (lam (* $0 $0)) $0)", (1, 2, 3), (1, 4, 9)),
    "filter": ("(filter (lam (gt? $0 1)) $0)", (1, 2, 0, 3), (2, 3)),
    # from the right: (f 1 (f 2 (f 3 0))) with (f x acc) = x - acc
    "fold": ("(fold (lam (lam (- $1 $0))) 0 $0)", (1, 2, 3), 1 - (2 - (3 - 0))),
    "fold-list": ("(fold-list (lam (lam (cons $1 $0))) empty $0)", (1, 2, 3), (1, 2, 3)),
    "map-bool": ("(map-bool (lam (gt? $0 1)) $0)", (1, 2), (False, True)),
    "bits": ("(bits $0)", (True, False, True), (1, 0, 1)),
}


def test_every_primitive_has_a_normal_case(P):
    assert set(NORMAL) == {p.name for p in P.PRIMITIVES}


@pytest.mark.parametrize("name", sorted(NORMAL))
def test_each_primitive_computes_its_value(P, name):
    text, value, expected = NORMAL[name]
    assert P.run(P.parse(text), value) == expected


EDGES = [  # (program, the input from the module's bounds): each has no answer (the constants are 0, 1, 2)
    ("(car $0)", lambda P: ()),
    ("(cdr $0)", lambda P: ()),
    ("(mod $0 0)", lambda P: 5),
    ("(index (+ 1 1) $0)", lambda P: (1, 2)),
    ("(index (- 0 1) $0)", lambda P: (1, 2)),
    ("(+ $0 1)", lambda P: P.MAX_INT),
    ("(- 0 (+ $0 1))", lambda P: P.MAX_INT),
    ("(* $0 $0)", lambda P: P.MAX_INT // 2),
    ("(range $0)", lambda P: P.MAX_LEN + 1),
    ("(cons 1 $0)", lambda P: tuple(range(P.MAX_LEN))),
    ("(map (lam $0) $0)", lambda P: tuple(range(P.MAX_LEN + 1))),
    ("(fold-list (lam (lam (cons $1 (cons $1 $0)))) empty $0)", lambda P: tuple(range(P.MAX_LEN // 2 + 1))),
]


@pytest.mark.parametrize("text, make_input", EDGES, ids=[text for text, _ in EDGES])
def test_a_runtime_error_or_a_value_out_of_bounds_is_no_answer(P, text, make_input):
    assert P.run(P.parse(text), make_input(P)) is None


SIXTY_FOUR = "(* 2 (* 2 (* 2 (* 2 (* 2 2)))))"
NESTED = f"(fold (lam (lam (fold (lam (lam (+ $0 $1))) $0 (range {SIXTY_FOUR})))) 0 (range {SIXTY_FOUR}))"


def test_a_program_that_runs_long_hits_the_step_limit(P):
    nested = P.parse(NESTED)
    assert P.run(nested, 0) is None
    assert P.run(nested, 0, limit=10**6) == 64 * sum(range(64))  # it was the limit, nothing else
    assert P.run(P.parse("(+ 1 2)"), 0, limit=2) is None


@pytest.mark.parametrize("text", ["(foo $0)", "foo", "(+ 1 2 1)", "(car $0 $0)", "(if (empty? $0) 1)",
                                  "$3", "#0", "(1 2)", "($0 1)", "(index $0 1)"])
def test_a_malformed_program_is_no_answer(P, text):
    assert P.run(P.parse(text), (1, 2)) is None


def test_if_evaluates_only_the_branch_taken(P):
    assert P.run(P.parse("(if (empty? $0) 0 (car $0))"), ()) == 0
    assert P.run(P.parse("(if (empty? $0) (car $0) 0)"), ()) is None
    # the step limit counts only the branch taken too
    assert P.run(P.parse(f"(if (empty? $0) 1 {NESTED})"), ()) == 1


# --- reading and writing programs ------------------------------------------------------------------

@pytest.mark.parametrize("text", ["$0", "0", "(map (lam (+ $0 1)) $0)", "(fold (lam (lam (+ $0 $1))) 0 $0)",
                                  "(f0 (lam (lam (if (gt? $1 #0) $0 $1))) (cdr $0))", "((lam $0) 1)"])
def test_show_gives_back_the_text_that_parse_read(P, text):
    program = P.parse(text)
    assert P.show(program) == text
    assert P.parse(P.show(program)) == program


def test_parse_ignores_spacing(P):
    assert P.parse("  ( map\n(lam (+ $0 1))   $0 ) ") == P.parse("(map (lam (+ $0 1)) $0)")


@pytest.mark.parametrize("text", ["", "   ", "(", ")", "(map $0", "()", "(lam a b)", "a b", "(+ 1 2))"])
def test_a_parse_error_is_a_value_error_that_says_why(P, text):
    with pytest.raises(ValueError) as error:
        P.parse(text)
    assert str(error.value).strip()


# --- enumeration by description length -----------------------------------------------------------

@pytest.mark.parametrize("request_, context, max_cost", [
    ("int", ("list(int)",), 9.0),
    ("list(int)", ("list(int)",), 9.0),
    ("bool", ("int",), 9.0),
    (("->", "int", "int"), ("list(int)",), 9.0),
])
def test_enumeration_is_cheapest_first_well_typed_and_costed_by_description_length(P, request_, context, max_cost):
    grammar = P.Grammar(P.Library())
    found = P.enumerate_programs(grammar, request_, context, max_cost)
    assert len(found) > 10
    costs = [cost for cost, _ in found]
    assert costs == sorted(costs) and costs[-1] <= max_cost
    assert len({P.show(program) for _, program in found}) == len(found)  # each program once
    for cost, program in found:
        assert P.type_checks(program, request_, context, grammar.library), P.show(program)
        assert grammar.description_length(program, request_, context) == pytest.approx(cost)


# --- the search and its pruning ----------------------------------------------------------------------

SEARCH_TASKS = [  # (reference, inputs, input type, output type)
    ("(length $0)", LISTS, "list(int)", "int"),
    ("(+ $0 $0)", [0, 1, 5, 9], "int", "int"),
    ("(+ 1 (car $0))", LISTS, "list(int)", "int"),
    ("(map (lam (+ $0 1)) $0)", LISTS, "list(int)", "list(int)"),
    ("(filter (lam (gt? $0 2)) $0)", LISTS, "list(int)", "list(int)"),
    ("(map-bool (lam (gt? $0 2)) $0)", LISTS, "list(int)", "list(bool)"),
    ("(empty? (cdr $0))", LISTS, "list(int)", "bool"),
    ("(length (filter (lam (eq? $0 1)) (bits $0)))", [(), (True,), (True, False, True), (False, False)],
     "list(bool)", "int"),
]


@pytest.fixture(scope="module")
def searched(P):
    """Each search task solved with and without pruning, within the same budget."""
    grammar, results = P.Grammar(P.Library()), []
    for reference, inputs, input_type, output_type in SEARCH_TASKS:
        task = make_task(P, reference, reference, inputs, input_type, output_type)
        runs = {}
        for prune in (True, False):
            search = P.Search(grammar, input_type, output_type, task.examples, 30000, prune=prune)
            runs[prune] = (search.solve(), search.nodes)
        results.append((task, runs))
    return results


def test_pruning_finds_a_solution_as_cheap_as_without_it(P, searched):
    grammar = P.Grammar(P.Library())
    for task, runs in searched:
        (found, _), (unpruned, _) = runs[True], runs[False]
        assert unpruned is not None, task.name  # each task is within the budget
        assert found is not None, task.name
        program, cost = found
        assert cost == pytest.approx(unpruned[1]), (task.name, P.show(program), P.show(unpruned[0]))
        assert cost <= grammar.description_length(P.parse(task.name), task.output_type, (task.input_type,)) + 1e-9
        assert cost == pytest.approx(grammar.description_length(program, task.output_type, (task.input_type,)))
        assert [P.run(program, i) for i, _ in task.examples] == [o for _, o in task.examples]


def test_a_task_beyond_the_budget_is_not_solved(P):
    examples = [((1,), 17), ((2,), 3), ((3,), 11), ((1, 2), 5), ((2, 1), 8)]
    search = P.Search(P.Grammar(P.Library()), P.LIST, P.INT, examples, 500)
    assert search.solve() is None
    assert search.nodes <= 501


# --- abstraction sleep and inlining -----------------------------------------------------------------

def corpus(P, specs):
    tasks = {name: make_task(P, name, reference, LISTS, P.LIST, output_type)
             for name, reference, output_type in specs}
    return {name: P.parse(reference) for name, reference, _ in specs}, tasks


def outputs(P, program, task, library):
    return [P.run(program, i, library) for i, _ in task.examples]


def test_an_invention_rewrites_the_corpus_into_programs_with_the_same_behaviour(P):
    pytest.importorskip("stitch_core")
    solutions, tasks = corpus(P, [
        ("inc-cons", "(cons 0 (map (lam (+ $0 1)) $0))", P.LIST),
        ("inc-cdr", "(cdr (map (lam (+ $0 2)) $0))", P.LIST),
        ("inc-filter", "(filter (lam (gt? $0 2)) (map (lam (+ $0 (+ 1 2))) $0))", P.LIST),
        ("inc-length", "(length (map (lam (+ $0 2)) (cdr $0)))", P.INT),
    ])
    library, rewritten, accepted = P.abstraction_sleep(P.Library(), solutions, tasks)
    assert accepted, "no invention accepted"
    assert set(rewritten) == set(solutions)
    for name, program in rewritten.items():
        task = tasks[name]
        expected = [o for _, o in task.examples]
        assert outputs(P, program, task, library) == expected, P.show(program)
        inlined = library.inline(program)
        assert not set(P.heads_in(inlined)) & set(library.inventions), P.show(inlined)
        assert outputs(P, inlined, task, P.Library()) == expected, P.show(inlined)
    for invention in accepted:
        assert invention["name"] in library.inventions
        assert invention["uses"] >= 2
        assert sum(invention["name"] in set(P.heads_in(p)) for p in rewritten.values()) >= 2
        assert invention["gain"] > 0


def test_abstraction_sleep_learns_from_solutions_that_share_their_whole_shape(P):
    pytest.importorskip("stitch_core")
    solutions, tasks = corpus(P, [
        ("add-1", "(map (lam (+ $0 1)) $0)", P.LIST),
        ("add-2", "(map (lam (+ $0 2)) $0)", P.LIST),
        ("add-3", "(map (lam (+ $0 (+ 1 2))) $0)", P.LIST),
        ("sum", "(fold (lam (lam (+ $0 $1))) 0 $0)", P.INT),
        ("sum+1", "(fold (lam (lam (+ $0 $1))) 1 $0)", P.INT),
        ("sum+2", "(fold (lam (lam (+ $0 $1))) 2 $0)", P.INT),
    ])
    library, rewritten, accepted = P.abstraction_sleep(P.Library(), solutions, tasks)
    assert accepted
    for name, program in rewritten.items():
        assert outputs(P, program, tasks[name], library) == [o for _, o in tasks[name].examples]
        assert outputs(P, library.inline(program), tasks[name], P.Library()) == [o for _, o in tasks[name].examples]
    assert all(a["uses"] >= 2 and a["gain"] > 0 for a in accepted)


def test_an_invention_whose_body_is_a_lambda_inlines_when_partly_applied(P):
    library = P.Library()
    invention = library.add("f0", P.parse("(lam (+ $0 #0))"), 1)
    assert invention is not None and invention.type == P.arrow(P.INT, P.INT, P.INT)
    program, reference = P.parse("(map (f0 2) $0)"), P.parse("(map (lam (+ $0 2)) $0)")
    inlined = library.inline(program)
    assert "f0" not in set(P.heads_in(inlined))
    for xs in LISTS:
        assert P.run(program, xs, library) == P.run(inlined, xs) == P.run(reference, xs)


def test_an_invention_with_a_hole_under_a_lambda_inlines_with_its_variables_shifted(P):
    library = P.Library()
    library.add("f0", P.parse("(map (lam (+ $0 #1)) #0)"), 2)
    program = P.parse("(f0 $0 (car $0))")  # add the head to every element
    inlined = library.inline(program)
    assert "f0" not in set(P.heads_in(inlined))
    for xs in LISTS:
        expected = tuple(x + xs[0] for x in xs)
        assert P.run(program, xs, library) == P.run(inlined, xs) == expected


def test_a_library_round_trips_through_json(P):
    library = P.Library()
    library.add("f0", P.parse("(lam (+ $0 #0))"), 1)
    library.add("f1", P.parse("(map (f0 #0) #1)"), 2)
    again = P.Library.from_json(json.loads(json.dumps(library.to_json())))
    assert again == library


def test_an_invention_that_does_not_type_is_refused(P):
    library = P.Library()
    assert library.add("f0", P.parse("(+ #0 (car #0))"), 1) is None
    assert library.inventions == {}


# --- task files --------------------------------------------------------------------------------------

def task_entry(name, input_type, output_type, examples, test=()):
    entry = {"name": name, "type": {"input": input_type, "output": output_type},
             "examples": [{"i": i, "o": o} for i, o in examples]}
    if test:
        entry["test"] = [{"i": i, "o": o} for i, o in test]
    return entry


ENTRIES = [
    task_entry("double", "int", "int", [(1, 2), (3, 6), (0, 0)], test=[(10, 20)]),
    task_entry("evens", "list-of-int", "list-of-bool", [([1, 2], [False, True]), ([4], [True])]),
    task_entry("nested", "list-of-list-of-int", "int", [([[1], [2, 3]], 2)]),
    task_entry("shout", "str", "str", [("a", "A")]),
]


def test_read_tasks_reads_a_json_list_and_one_task_a_line_alike(P, tmp_path):
    listed, lines = tmp_path / "tasks.json", tmp_path / "tasks.jsonl"
    listed.write_text(json.dumps(ENTRIES, indent=1))
    lines.write_text("".join(json.dumps(entry) + "\n\n" for entry in ENTRIES))
    tasks = P.read_tasks(listed)
    assert tasks == P.read_tasks(lines)
    assert [t.name for t in tasks] == [e["name"] for e in ENTRIES]
    double, evens = tasks[0], tasks[1]
    assert (double.input_type, double.output_type) == (P.INT, P.INT)
    assert double.examples == [(1, 2), (3, 6), (0, 0)] and double.test == [(10, 20)]
    assert evens.examples == [((1, 2), (False, True)), ((4,), (True,))]  # lists as the evaluator holds them


def test_a_task_of_a_type_the_language_lacks_is_read_as_inexpressible(P, tmp_path):
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(ENTRIES))
    expressible = {t.name: t.expressible for t in P.read_tasks(path)}
    assert expressible == {"double": True, "evens": True, "nested": False, "shout": False}


@pytest.mark.parametrize("text", [
    "this is not json",
    '[{"name": "a", "type": {"input": "int", "output": "int"}}]',  # no examples
    json.dumps([task_entry("a", "int", "int", [(1, 2)]), task_entry("b", "int", "int", [(1, "2")])]),
    json.dumps([task_entry("a", "int", "int", [(True, 2)])]),  # a bool is not an int
    json.dumps([task_entry("a", "list-of-int", "int", [([1, 2.5], 2)])]),
    json.dumps([task_entry("a", "int", "int", [])]),
    json.dumps({"name": "a"}),
    "[]",
], ids=["not-json", "no-examples", "wrong-output", "bool-for-int", "float-in-list", "no-example", "no-type",
        "empty"])
def test_a_malformed_task_file_is_a_task_error_naming_the_file_in_one_line(P, tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(P.TaskError) as error:
        P.read_tasks(path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message


def test_a_missing_task_file_is_a_task_error(P, tmp_path):
    with pytest.raises(P.TaskError, match=re.escape(str(tmp_path / "nowhere.json"))):
        P.read_tasks(tmp_path / "nowhere.json")


# --- the command line --------------------------------------------------------------------------------

SOLVABLE = [  # (name, input type, output type, examples): each within 2000 nodes of the base language
    ("inc", "int", "int", [(0, 1), (4, 5), (9, 10)]),
    ("double", "int", "int", [(0, 0), (3, 6), (5, 10)]),
    ("length", "list-of-int", "int", [([], 0), ([5], 1), ([3, 3, 3], 3)]),
    ("head", "list-of-int", "int", [([4], 4), ([7, 1], 7), ([2, 9, 9], 2)]),
    ("tail", "list-of-int", "list-of-int", [([4], []), ([7, 1], [1]), ([2, 9, 9], [9, 9])]),
    ("push-0", "list-of-int", "list-of-int", [([], [0]), ([1], [0, 1]), ([3, 5], [0, 3, 5])]),
    ("is-empty", "list-of-int", "bool", [([], True), ([1], False), ([0, 2], False)]),
    ("positives", "list-of-int", "list-of-bool", [([0, 1], [False, True]), ([3], [True]), ([], [])]),
    ("first-bit", "list-of-bool", "int", [([True], 1), ([False, True], 0), ([True, False, True], 1)]),
]


@pytest.fixture
def solve_file(tmp_path):
    entries = [task_entry(*spec) for spec in SOLVABLE]
    entries.append(task_entry("nested", "list-of-list-of-int", "int", [([[1], [2, 3]], 2)]))
    entries.append(task_entry("scramble", "list-of-int", "int",
                              [([1], 17), ([2], 3), ([3], 11), ([1, 2], 5), ([2, 1], 8)]))
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(entries))
    return path


def check_solve_output(P, text, path):
    lines = text.splitlines()
    tasks = {t.name: t for t in P.read_tasks(path)}
    reported = {}
    for line in lines:
        match = re.match(r"^(\S+): (\d+) nodes, \d+\.\d\d s: (.+)$", line)
        if match:
            reported[match[1]] = match[3]
    for name, _, _, _ in SOLVABLE:
        program = P.parse(reported[name])
        assert [P.run(program, i) for i, _ in tasks[name].examples] == [o for _, o in tasks[name].examples]
    assert reported["scramble"] == "not solved"
    assert any(line.startswith("nested: cannot be expressed") for line in lines)
    assert lines[-1] == f"solved {len(SOLVABLE)} of {len(tasks)} tasks"


def test_solve_prints_each_tasks_program_or_why_not(P, solve_file, capsys):
    assert P.main(["solve", str(solve_file), "--nodes", "2000"]) == 0
    check_solve_output(P, capsys.readouterr().out, solve_file)


def test_solve_runs_as_a_script(P, programs_file, solve_file):
    done = subprocess.run([sys.executable, str(programs_file), "solve", str(solve_file), "--nodes", "2000"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    check_solve_output(P, done.stdout, solve_file)


def test_a_malformed_file_exits_1_with_one_line_on_stderr(P, programs_file, tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text("[{")
    assert P.main(["solve", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("programs: error:") and err.count("\n") == 1 and str(path) in err
    done = subprocess.run([sys.executable, str(programs_file), "solve", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("programs: error:") and done.stderr.count("\n") == 1


def test_the_tasks_command_writes_a_dataset_file_as_a_json_list_read_back_equal(P, tmp_path, capsys):
    dataset, written = tmp_path / "lists.test.txt", tmp_path / "tasks.json"
    dataset.write_text("".join(line + "\n" for line in build("list_tasks", seed=0)["lists.test"]))
    assert P.main(["tasks", str(dataset), "-o", str(written)]) == 0
    entries = json.loads(written.read_text())
    assert isinstance(entries, list)
    assert P.read_tasks(written) == P.read_tasks(dataset)
    assert any(t.test for t in P.read_tasks(written))  # the held-out inputs travel too
    capsys.readouterr()
    assert P.main(["tasks", str(dataset)]) == 0  # to standard output: the same list
    assert json.loads(capsys.readouterr().out) == entries


# --- dreams and one wake ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def easy_tasks(P):
    return [make_task(P, "length", "(length $0)", LISTS, P.LIST, P.INT),
            make_task(P, "head", "(car $0)", LISTS, P.LIST, P.INT),
            make_task(P, "tail", "(cdr $0)", LISTS, P.LIST, P.LIST),
            make_task(P, "double", "(+ $0 $0)", [0, 1, 5, 9], P.INT, P.INT)]


def test_dreams_are_distinct_well_typed_and_reproduce_their_examples(P, easy_tasks):
    dreamt = P.dreams(P.Library(), easy_tasks, random.Random(0), 15)
    assert 5 <= len(dreamt) <= 15
    behaviours = set()
    for examples, program in dreamt:
        task = next(t for t in easy_tasks if [i for i, _ in t.examples] == [i for i, _ in examples]
                    and P.type_checks(program, t.output_type, (t.input_type,), P.Library()))
        assert [P.run(program, i) for i, _ in examples] == [o for _, o in examples]
        assert len({repr(o) for _, o in examples}) > 1  # not a constant
        behaviours.add((task.input_type, task.output_type, tuple(examples)))
    assert len(behaviours) == len(dreamt)


def test_one_wake_updates_the_frontier_and_its_state_round_trips(P, easy_tasks):
    held_out = [make_task(P, "last", "(car (fold-list (lam (lam (cons $1 $0))) empty $0))", LISTS, P.LIST, P.INT)]
    loop = P.WakeSleep(easy_tasks, held_out, P.Settings(nodes=300, seconds=5.0, dreams=5))
    record = loop.wake()
    results = record["tasks"]
    solved_train = {t.name for t in easy_tasks if results[t.name]["program"] is not None}
    assert solved_train == {t.name for t in easy_tasks}
    assert set(loop.frontier) == solved_train  # training solutions only
    for name, program in loop.frontier.items():
        assert P.fits_examples(program, loop.tasks[name], loop.library)
    assert record["solved"]["train"] == len(solved_train) and record["solved"]["n_train"] == len(easy_tasks)
    assert record["solved"]["n_test"] == 1 and record["cycle"] == 0
    assert all(results[t]["nodes"] <= 300 for t in results)
    state = json.loads(json.dumps(loop.state()))
    again = P.WakeSleep(easy_tasks, held_out, P.Settings(nodes=300))
    again.restore(state)
    assert again.state() == loop.state()
    assert again.frontier == loop.frontier and again.library == loop.library


@pytest.mark.parametrize("fitted", [False, True])
def test_solve_with_a_runs_library_searches_with_the_prior_the_run_used(P, easy_tasks, tmp_path, fitted):
    loop = P.WakeSleep(easy_tasks, [], P.Settings(nodes=300, seconds=5.0, fitted_prior=fitted))
    loop.wake()
    (tmp_path / "synth.json").write_text(json.dumps({"state": loop.state()}))
    library, prior = P.trained_library(tmp_path)
    assert library == loop.library and prior == loop.prior() and (prior is None) == (not fitted)
