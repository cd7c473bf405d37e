"""Part 6's dataset builder (runs/datasets.py, tool_use): deterministic, answers right (checked here
with plain integer arithmetic and string reversal, not with the builder's code), held-out memorised
facts all in training, held-out equations and names unseen, and the operands' lengths no clue to
the type."""

import re
from collections import Counter
from pathlib import Path

import pytest

import apply
from runs import load_module
from runs.datasets import DatasetError, build, census_first_names, with_call, write_items

ROOT = Path(__file__).resolve().parent.parent
C, E, R, RE = "\ue000", "\ue001", "\ue002", "\ue003"
ARITHMETIC = re.compile(f"(\\d+)([+*])(\\d+)={C}(\\d+[+*]\\d+){E}{R}(\\d+){RE}(\\d+)")
NAME = re.compile(f"([a-z]+)={C}([a-z]+){E}{R}{RE}([a-z]+)")
SMALL = {"memorised": 40, "repeats": 6, "computed": 800, "names": 500, "test": 40}


@pytest.fixture(scope="module")
def built():
    return build("tool_use", 0)


@pytest.fixture(scope="module")
def mm():
    return load_module(apply.Project(ROOT).ensure_variant("tool-token") / "makemore.py")


def facts(items):
    return [ARITHMETIC.fullmatch(item).groups()[:3] for item in items]


def test_it_is_deterministic_for_a_seed_and_varies_with_it():
    assert build("tool_use", 1, **SMALL) == build("tool_use", 1, **SMALL)
    assert build("tool_use", 1, **SMALL) != build("tool_use", 2, **SMALL)


def test_every_answer_is_right(built):
    assert list(built) == ["computed", "computed.test", "memorised", "memorised.test", "names", "names.test"]
    for name in ("computed", "computed.test", "memorised", "memorised.test"):
        for item in built[name]:
            a, op, b, call, result, answer = ARITHMETIC.fullmatch(item).groups()
            value = int(a) + int(b) if op == "+" else int(a) * int(b)
            assert call == f"{a}{op}{b}" and result == answer == str(value)
    census = set(census_first_names())
    for item in built["names"] + built["names.test"]:
        name, call, answer = NAME.fullmatch(item).groups()
        assert call == name and answer == name[::-1] and name in census and 3 <= len(name) <= 8


def test_the_variants_calculator_gives_the_results_written(built, mm):
    for name, items in built.items():
        for item in items[:300]:
            query = mm.read_query(item)
            result = item.split(R)[1].split(RE)[0]
            assert mm.calculate(query.call_text) == (result or None)


def test_tool_tokens_appear_only_as_the_calls_markers(built):
    for items in built.values():
        for item in items:
            assert [ch for ch in item if "\ue000" <= ch <= "\uf8ff"] == [C, E, R, RE]


def test_ordinary_text_with_a_private_use_character_is_refused():
    with pytest.raises(DatasetError, match="private-use"):
        with_call("em\ue000ma", "", "amme")


def test_memorised_facts_repeat_and_are_held_out_from_those_trained(built):
    memorised = Counter(facts(built["memorised"]))
    assert len(memorised) == 240 and set(memorised.values()) == {16}
    held_out = facts(built["memorised.test"])
    assert len(set(held_out)) == len(held_out) == 200 and set(held_out) <= set(memorised)


def test_computed_equations_and_names_are_distinct_and_held_out_ones_unseen(built):
    computed, unseen = facts(built["computed"]), facts(built["computed.test"])
    assert len(set(computed)) == len(computed) == 3000 and len(set(unseen)) == len(unseen) == 200
    assert not set(unseen) & (set(computed) | set(facts(built["memorised"])))
    assert not set(computed) & set(facts(built["memorised"]))
    assert len(set(built["names"])) == 4000 and not set(built["names"]) & set(built["names.test"])


def test_operand_lengths_do_not_tell_the_arithmetic_types_apart(built):
    def cells(items):
        counts = Counter((len(a), op, len(b)) for a, op, b in set(facts(items)))
        return {cell: count / sum(counts.values()) for cell, count in counts.items()}
    arithmetic = ("memorised", "memorised.test", "computed", "computed.test")
    shares = [cells(built[name]) for name in arithmetic]
    assert all(share == shares[0] for share in shares) and len(shares[0]) == 8  # 2 or 3 digits a side, + or *
    # nor, much, do the answers' lengths: within each cell they follow the same arithmetic
    lengths = {name: Counter(len(ARITHMETIC.fullmatch(i)[6]) for i in set(built[name])) for name in arithmetic}
    share = {name: {n: c / sum(counts.values()) for n, c in counts.items()} for name, counts in lengths.items()}
    for name in arithmetic[1:]:
        keys = set(share[name]) | set(share["memorised"])
        assert sum(abs(share[name].get(k, 0) - share["memorised"].get(k, 0)) for k in keys) / 2 < 0.1


def test_computed_equations_can_be_left_out_of_training():
    built = build("tool_use", 0, computed=0, **{k: v for k, v in SMALL.items() if k != "computed"})
    assert "computed" not in built and len(built["computed.test"]) == SMALL["test"]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_tool_run_scores_the_held_out_files_and_trains_on_the_rest(built, mm, tmp_path, seed):
    files = [str(write_items(items, tmp_path / f"{name}.txt")) for name, items in built.items()]
    types, (train, _), (test, test_domains) = mm.held_out_by_type(mm.load_data(",".join(files), seed))
    assert types == ["computed", "memorised", "names"]
    for index, name in enumerate(types):
        assert sorted(i for i, d in zip(test, test_domains) if d == index) == sorted(built[f"{name}.test"])
    assert sorted(train) == sorted(built["computed"] + built["memorised"] + built["names"])


@pytest.mark.parametrize("args, words", [
    ({"ops": "-"}, ["ops='-'"]),
    ({"min_digits": 3, "max_digits": 2}, ["min_digits=3"]),
    ({"repeats": 0}, ["repeats=0"]),
    ({"memorised": 100, "test": 200}, ["test=200"]),
    ({"computed": 100000, "max_digits": 2}, ["100000", "left"]),
    ({"names": 10 ** 6}, ["names=1000000"]),
])
def test_impossible_requests_are_one_line(args, words):
    with pytest.raises(DatasetError) as error:
        build("tool_use", 0, **args)
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words)


def test_no_other_builder_lets_a_tool_token_through(tmp_path):
    from runs.datasets import DatasetError, build, write_items
    names = write_items([f"name{i}" for i in range(20)] + ["ev\ue000il"], tmp_path / "people.txt")
    with pytest.raises(DatasetError, match="private-use character"):
        build("names", 0, file=str(names))
