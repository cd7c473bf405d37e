"""runs/datasets.py: the builders, the checks on what is asked and what is built, the cache, the command line."""

import hashlib
import inspect
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from runs import datasets
from runs.datasets import BUILDERS, DatasetError, build, census_first_names, main, materialise

ROOT = Path(__file__).resolve().parent.parent
EQUATION = re.compile(r"(\d+)([+*])(\d+)=(\d+)")
APPLY = {"+": lambda a, b: a + b, "*": lambda a, b: a * b}


@pytest.fixture(scope="module")
def code_items():
    """Small code samples of two seeds, built once: reading the standard library is the slow part."""
    return {seed: build("code", seed, count=300)["code"] for seed in (1, 2)}


@pytest.fixture(scope="module")
def stdlib_lines():
    """Every stripped line of every top-level standard library module, read independently of the builder."""
    lines = set()
    for path in Path(sysconfig.get_paths()["stdlib"]).glob("*.py"):
        lines.update(line.strip() for line in path.read_text(encoding="utf-8", errors="ignore").splitlines())
    return lines


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def file_items(path):
    return Path(path).read_text().splitlines()


def assert_one_line(message, *words):
    assert message and "\n" not in message
    for word in words:
        assert str(word) in message, f"{word!r} not in {message!r}"


def is_in_order_subset(chosen, items):
    """Every chosen item is one of the items, and they come in the items' order."""
    position = {item: index for index, item in enumerate(items)}
    indexes = [position[item] for item in chosen]
    return indexes == sorted(set(indexes))


# --- names ---

def test_names_are_the_census_names_whatever_the_seed():
    assert build("names", 0) == build("names", 7) == {"names": census_first_names()}


def test_a_names_count_is_a_seeded_sample_kept_in_the_census_order():
    census = census_first_names()
    first, again, other = (build("names", seed, count=50)["names"] for seed in (1, 1, 2))
    assert first == again
    assert first != other
    assert len(first) == len(set(first)) == 50
    assert is_in_order_subset(first, census)


def test_a_names_file_gives_its_stripped_lines_under_its_stem(tmp_path):
    pets = [f"pet{index}" for index in range(12)]
    path = write_lines(tmp_path / "pets.txt", [f"  {pet} " for pet in pets[:6]] + ["", "   "] + pets[6:])
    assert build("names", 0, file=str(path)) == {"pets": pets}
    # a relative path is taken from the repository root, wherever the caller stands
    assert build("names", 0, file=os.path.relpath(path, ROOT)) == {"pets": pets}


# --- arithmetic ---

def test_arithmetic_depends_on_its_seed_only():
    first, again, other = (build("arithmetic", seed, count=100)["arithmetic"] for seed in (1, 1, 2))
    assert first == again
    assert first != other


@pytest.mark.parametrize("digits, ops", [(1, "+"), (2, "*"), (3, "+*"), (2, "*+")])
def test_arithmetic_items_are_distinct_true_equations_within_the_digits(digits, ops):
    count = 80
    items = build("arithmetic", 5, digits=digits, ops=ops, count=count)["arithmetic"]
    assert len(items) == len(set(items)) == count
    used_ops = set()
    for item in items:
        match = EQUATION.fullmatch(item)
        assert match, item
        a, op, b, result = int(match[1]), match[2], int(match[3]), int(match[4])
        assert op in ops and 0 <= a < 10 ** digits and 0 <= b < 10 ** digits
        assert APPLY[op](a, b) == result, item
        used_ops.add(op)
    assert used_ops == set(ops)  # with 80 draws, missing an op has probability 2**-79


def test_arithmetic_can_ask_for_every_possible_equation():
    everything = {f"{a}{op}{b}={APPLY[op](a, b)}" for op in "+*" for a in range(10) for b in range(10)}
    items = build("arithmetic", 0, digits=1, ops="+*", count=len(everything))["arithmetic"]
    assert set(items) == everything


# --- code ---

def test_code_depends_on_its_seed_only(code_items):
    assert build("code", 1, count=300)["code"] == code_items[1]
    assert code_items[1] != code_items[2]


def test_code_items_are_distinct_printable_lines_of_the_standard_library(code_items, stdlib_lines):
    defaults = inspect.signature(datasets.code).parameters
    min_len, max_len = defaults["min_len"].default, defaults["max_len"].default
    items = code_items[1]
    assert len(items) == len(set(items)) == 300
    for item in items:
        assert min_len <= len(item) <= max_len, item
        assert all(" " <= char <= "~" for char in item), item
        assert item in stdlib_lines, item
        assert not item.startswith("#") and '"""' not in item and "'''" not in item, item


def test_code_keeps_distinct_plain_lines_of_top_level_modules_in_file_order(tmp_path, monkeypatch):
    (tmp_path / "b.py").write_text("import sys\nimport os\nfor item in items:\n")
    (tmp_path / "a.py").write_bytes("\n".join([
        "import os",
        '"""A docstring that spans lines,',
        "with prose = 'that looks like code'",
        '"""',
        "def spam(eggs):",
        "    # only a comment",
        "    return eggs + 1  # a trailing comment stays",
        "    '''a one-line string'''",
        '    name = "caf\u00e9"',
        "    total = 1\t+ 2",
        "    x = 1",
        "    return eggs + 1",
        '    value = "a line far longer than the longest code item allowed"',
    ]).encode() + b'\n    label = "\xff"\n')  # a byte that is not UTF-8: skipped, the line kept
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_hidden.py").write_text("assert hidden_line == 1\n")
    (tmp_path / "notes.txt").write_text("not_python = 1\n")
    monkeypatch.setattr(datasets.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    expected = ["import os", "def spam(eggs):", "return eggs + 1  # a trailing comment stays", "return eggs + 1",
                'label = ""', "import sys", "for item in items:"]
    assert datasets.code(0, count=len(expected)) == {"code": expected}
    with pytest.raises(DatasetError):
        datasets.code(0, count=len(expected) + 1)


def test_code_respects_other_length_bounds():
    items = build("code", 0, count=50, min_len=20, max_len=25)["code"]
    assert all(20 <= len(item) <= 25 for item in items)


# --- mixture ---

def test_a_mixture_gives_each_parts_domain_as_that_part_builds_it():
    parts = {"names": {"count": 30}, "arithmetic": {"digits": 1, "count": 40}, "code": {"count": 20}}
    mixed = build("mixture", 3, parts=parts)
    alone = {}
    for part, args in parts.items():
        alone.update(build(part, 3, **args))
    assert mixed == alone
    assert list(mixed) == sorted(alone)  # domains come in name order, whatever the order of the parts


def test_a_mixture_refuses_two_parts_with_the_same_domain(tmp_path):
    file = write_lines(tmp_path / "arithmetic.txt", [f"{n}+{n}={2 * n}" for n in range(20)])
    with pytest.raises(DatasetError) as error:
        build("mixture", 0, parts={"names": {"file": str(file)}, "arithmetic": {}})
    assert_one_line(str(error.value), "'arithmetic'", "names")


# --- what is asked, and what is built, is checked ---

def accepted_arguments(builder):
    return [name for name in inspect.signature(BUILDERS[builder]).parameters if name != "seed"]


BAD_REQUESTS = {
    "unknown builder": ("nope", 0, {}, ["nope", *BUILDERS]),
    "unknown argument": ("arithmetic", 0, {"digit": 2}, ["arithmetic", "digit", *accepted_arguments("arithmetic")]),
    "mistyped argument": ("arithmetic", 0, {"digits": "2"}, ["arithmetic", "digits", "'2'"]),
    "a bool for an int": ("code", 0, {"count": True}, ["code", "count"]),
    "missing argument": ("mixture", 0, {}, ["mixture", "parts"]),
    "unknown part": ("mixture", 0, {"parts": {"nope": {}}}, ["nope", *BUILDERS]),
    "mistyped part": ("mixture", 0, {"parts": {"names": {"count": "3"}}}, ["names", "count"]),
    "a part's arguments not a table": ("mixture", 0, {"parts": {"names": 3}}, ["names", "3"]),
    "empty mixture": ("mixture", 0, {"parts": {}}, ["parts"]),
    "seed not an integer": ("names", "1", {}, ["seed", "'1'"]),
    "missing names file": ("names", 0, {"file": "no/such/names.txt"}, ["no/such/names.txt"]),
    "too many names": ("names", 1, {"count": len(census_first_names()) + 1}, [len(census_first_names())]),
    "too many equations": ("arithmetic", 0, {"digits": 1, "ops": "+*", "count": 2 * 10 * 10 + 1}, [2 * 10 * 10]),
    "zero count": ("arithmetic", 0, {"count": 0}, ["count=0"]),
    "too many code lines": ("code", 0, {"count": 10 ** 7}, ["count=10000000"]),
    "unknown op": ("arithmetic", 0, {"ops": "+-"}, ["'+-'"]),
    "repeated op": ("arithmetic", 0, {"ops": "++"}, ["'++'"]),
    "no digits": ("arithmetic", 0, {"digits": 0}, ["digits=0"]),
    "crossed length bounds": ("code", 0, {"min_len": 30, "max_len": 20}, ["min_len=30", "max_len=20"]),
}


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(SystemExit) as exit:
        main(["names", "-o", str(tmp_path / "afile")])
    assert exit.value.code == 2 and (tmp_path / "afile").read_text() == "mine"
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"{tmp_path / 'afile'} is a file, not a folder")


@pytest.mark.parametrize("builder, seed, args, words", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_a_bad_request_is_one_line_and_writes_nothing(tmp_path, builder, seed, args, words):
    with pytest.raises(DatasetError) as error:
        build(builder, seed, **args)
    assert_one_line(str(error.value), *words)
    with pytest.raises(DatasetError) as error:
        materialise(builder, seed, args, tmp_path / "cache")
    assert_one_line(str(error.value), *words)
    assert not any((tmp_path / "cache").glob("*"))


BAD_ITEMS = {
    "an empty item": ("ok", [""] + ["a"] * 10),
    "a newline": ("ok", ["a\nb"] + ["a"] * 10),
    "a carriage return": ("ok", ["a\rb"] + ["a"] * 10),
    "surrounding whitespace": ("ok", [" a"] + ["a"] * 10),
    "too few items": ("ok", ["a"] * 9),
    "a comma in the domain": ("a,b", ["a"] * 10),
    "a slash in the domain": ("a/b", ["a"] * 10),
}


@pytest.mark.parametrize("domain, items", BAD_ITEMS.values(), ids=BAD_ITEMS.keys())
def test_a_builder_giving_bad_items_is_refused(monkeypatch, domain, items):
    monkeypatch.setitem(BUILDERS, "fake", lambda seed: {domain: items})
    with pytest.raises(DatasetError) as error:
        build("fake")
    assert_one_line(str(error.value), repr(domain))


def test_a_names_file_with_too_few_items_is_refused(tmp_path):
    file = write_lines(tmp_path / "few.txt", ["ann", "bob"])
    with pytest.raises(DatasetError) as error:
        build("names", 0, file=str(file))
    assert_one_line(str(error.value), "'few'", "2 items")


# --- the cache ---

MIXED = {"parts": {"names": {"count": 20}, "arithmetic": {"digits": 1, "count": 30}}}


def test_materialise_writes_each_domain_with_its_hash(tmp_path):
    files = materialise("mixture", 4, MIXED, tmp_path)
    built = build("mixture", 4, **MIXED)
    assert [file["domain"] for file in files] == list(built)
    folder = files[0]["path"].parent
    assert folder.parent == tmp_path and folder.name.startswith("mixture-")
    manifest = json.loads((folder / "manifest.json").read_text())
    for file, entry in zip(files, manifest["files"]):
        assert file_items(file["path"]) == built[file["domain"]]
        assert file["sha256"] == hashlib.sha256(file["path"].read_bytes()).hexdigest() == entry["sha256"]
        assert entry["file"] == file["path"].name and entry["domain"] == file["domain"]


def test_materialise_reuses_a_valid_cache(tmp_path, monkeypatch):
    files = materialise("arithmetic", 0, {"count": 50}, tmp_path)
    written_at = files[0]["path"].stat().st_mtime_ns

    def build_again(*args, **kwargs):
        raise AssertionError("a valid cached dataset was built again")

    monkeypatch.setattr(datasets, "build", build_again)
    assert materialise("arithmetic", 0, {"count": 50}, tmp_path) == files
    assert files[0]["path"].stat().st_mtime_ns == written_at


@pytest.mark.parametrize("damage", ["edit a file", "delete a file", "delete the manifest", "corrupt the manifest"])
def test_materialise_rebuilds_a_damaged_cache(tmp_path, damage):
    files = materialise("mixture", 0, MIXED, tmp_path)
    folder, path = files[0]["path"].parent, files[0]["path"]
    original = path.read_bytes()
    if damage == "edit a file":
        path.write_bytes(original + b"tampered\n")
    elif damage == "delete a file":
        path.unlink()
    elif damage == "delete the manifest":
        (folder / "manifest.json").unlink()
    else:
        (folder / "manifest.json").write_text("{")
    assert materialise("mixture", 0, MIXED, tmp_path) == files
    assert path.read_bytes() == original
    assert [entry.name for entry in tmp_path.iterdir()] == [folder.name]  # no staging folder left behind


def test_the_cache_key_follows_the_request_the_code_and_the_input_files(tmp_path, monkeypatch):
    names_file = write_lines(tmp_path / "pets.txt", [f"pet{index}" for index in range(12)])

    def folder(builder="names", seed=0, args=None):
        args = {"file": str(names_file)} if args is None else args
        return materialise(builder, seed, args, tmp_path / "cache")[0]["path"].parent

    first = folder()
    arithmetic_folder = folder(builder="arithmetic", args={})
    assert folder() == first
    assert folder(seed=1) != first
    assert folder(args={"file": str(names_file), "count": 11}) != first
    assert folder(builder="mixture", args={"parts": {"names": {"file": str(names_file)}}}) != first

    write_lines(names_file, [f"cat{index}" for index in range(12)])
    edited_input = folder()
    assert edited_input != first
    assert file_items(edited_input / "pets.txt")[0] == "cat0"

    monkeypatch.setitem(datasets.VERSION, "names", datasets.VERSION["names"] + 1)
    bumped = folder()
    assert bumped not in (first, edited_input)
    assert folder(builder="arithmetic", args={}) == arithmetic_folder  # other builders keep theirs


def test_a_crash_while_writing_leaves_nothing_that_looks_built(tmp_path, monkeypatch):
    real_write_items = datasets.write_items
    written = []

    def write_then_crash(items, path):
        written.append(path)
        if len(written) == 2:
            raise KeyboardInterrupt
        return real_write_items(items, path)

    monkeypatch.setattr(datasets, "write_items", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        materialise("mixture", 0, MIXED, tmp_path)
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(datasets, "write_items", real_write_items)
    files = materialise("mixture", 0, MIXED, tmp_path)
    assert [file["domain"] for file in files] == list(build("mixture", 0, **MIXED))


# --- the command line ---

def test_the_command_line_writes_each_domain_with_its_count(tmp_path, capsys):
    main(["arithmetic", "--seed", "3", "--set", "digits=1", "--set", "ops=+*", "--set", "count=50", "-o", str(tmp_path)])
    expected = build("arithmetic", 3, digits=1, ops="+*", count=50)["arithmetic"]
    assert file_items(tmp_path / "arithmetic.txt") == expected
    assert f"{tmp_path / 'arithmetic.txt'}: {len(expected)} items" in capsys.readouterr().out


def test_the_command_line_takes_json_values(tmp_path):
    parts = {"names": {"count": 15}, "arithmetic": {"count": 25}}
    main(["mixture", "--set", "parts=" + json.dumps(parts), "-o", str(tmp_path)])
    for domain, items in build("mixture", 0, parts=parts).items():
        assert file_items(tmp_path / f"{domain}.txt") == items


def test_the_command_line_writes_into_data_by_default(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "DATA_DIR", tmp_path)
    main(["names"])
    assert file_items(tmp_path / "names.txt") == census_first_names()


def test_the_command_line_names_itself_as_it_is_typed(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    assert usage.startswith("usage: python -m runs.datasets [-h]") and "BUILDER" in usage


def test_the_command_line_reports_a_bad_request_in_one_line(tmp_path):
    command = [sys.executable, "-m", "runs.datasets", "arithmetic", "--set", "digits=x", "-o", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1
    assert_one_line(result.stderr.strip(), "error:", "digits", "'x'")
    assert not any(tmp_path.iterdir())

    result = subprocess.run([*command[:4], "--set", "digits"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "KEY=VALUE" in result.stderr


@pytest.mark.parametrize("builder", BUILDERS)
def test_a_builders_help_shows_its_own_arguments(builder, capsys):
    main([builder, "--help"])
    out = capsys.readouterr().out
    signature = inspect.signature(BUILDERS[builder])
    doc = out.split("\n\n", 1)[1]
    heading = doc[:doc.index(")\n") + 1]  # the signature, over as many lines as it takes
    assert heading.startswith(f"{builder}(seed")
    assert all(name in heading for name in signature.parameters)  # the docs name every argument
