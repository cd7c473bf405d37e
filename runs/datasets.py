"""Datasets for the lab, built by our own code: deterministic, one item per line, nothing downloaded.

    python -m runs.datasets BUILDER [--seed N] [--set KEY=VALUE ...] [-o DIR]

writes DIR/<domain>.txt for each domain the builder gives (DIR defaults to data/) and prints each
path with its item count. `--set` values are read as JSON when they parse, else as strings:

    python -m runs.datasets names                                   # data/names.txt
    python -m runs.datasets arithmetic --set digits=3 --set ops='+*'
    python -m runs.datasets mixture --set parts='{"names": {}, "arithmetic": {}}'

A builder maps a seed and its arguments to {domain: items}; the trainer reads each domain as one
file whose stem is the domain's name. Items are seeded with Python's `random.Random(seed)`, whose
sampling functions are not promised to be the same across Python versions.

names(seed, file=None, count=None)
    Domain "names": the 5,163 distinct first names of the US census lists carried by the `names`
    package (a registry dependency of this project), lowercased, a-z only, in the packaged order
    (most common first). With `file` (relative to the repository root, or absolute): that file's
    lines instead, stripped, blank ones dropped (as the trainer reads them), and the domain is the
    file's stem. With `count`: a seeded sample of that many, kept in their original order; without
    it the seed does not matter. When the 32,033-name list that makemore ships is beside the
    checkout (../shared/data/names.txt), `file="../shared/data/names.txt"` reads it in place.

arithmetic(seed, digits=2, ops="+", count=5000)
    Domain "arithmetic": `count` distinct equations such as `12+7=19` or `3*45=135`. Every
    (a, op, b) with a and b in [0, 10**digits) and op one of the characters of `ops` ('+' and/or
    '*') is equally likely to be chosen, so each operand is uniform on that range; `12+7` and `7+12`
    are different items. Items are distinct so that the trainer's test split never repeats a
    training item; a count above the number of possible equations is an error.

code(seed, count=5000, min_len=8, max_len=48)
    Domain "code": `count` distinct lines of real Python from the top-level *.py files of the
    standard library of the Python running this (so not its tests/ or site-packages), read in file
    name order as UTF-8 (undecodable bytes skipped). Each line is stripped and kept when it is
    printable ASCII (no tabs), has min_len to max_len characters, is not a comment, and neither
    touches nor sits inside a triple-quoted string (which drops docstrings). The seeded sample
    keeps the lines in that order. The lines depend on the Python version; the sha256 of each
    file in a run's config.json records exactly what was used.

mixture(seed, parts)
    Every domain of several builders: `parts` maps a builder name to its arguments, e.g.
    {"names": {}, "arithmetic": {"digits": 2}, "code": {"count": 3000}}. Each part is built with
    the same seed; two parts giving the same domain name is an error.

algorithmic(seed, parity=None, addition=None, parens=None, ordered=None, count=1000)
    The task suite of Part 5 (adaptive computation): each argument lists the difficulties of one
    task, and each (task, difficulty) becomes a domain named `<task>-<difficulty>` (two digits),
    `count` distinct items `question=answer` each, so that the trainer's test items are never
    training items. An easy difficulty with fewer distinct items than `count` (parity of d bits
    has 2^d) gives each of them once, and the build says so on stderr; fewer than 10 cannot be
    split and are refused. Every question of a task has the same width, so a harder
    item asks for more work in the same positions: a recipe that holds the hardest difficulties
    out of training tests extrapolation in computation, not in positions whose embeddings were
    never trained. The tasks, each answer checked by an independent computation in the tests:
      parity    `d` bits, left-padded with '.' to 16 characters; the answer is 1 if they hold an
                odd number of ones
      addition  two 4-digit numbers whose sum needs exactly `d` carries; the sum is written least
                significant digit first, so that each digit depends on its column and the carry
                coming from the digit just written (most significant first, a 4-layer model got
                no answer right in 4,000 steps: the first digit waits on the whole carry chain)
      parens    16 brackets whose nesting reaches depth `d`; the answer is 1 if they are balanced.
                Half are; the others are balanced strings with an opening and a closing bracket
                swapped (the counts still match: only the order is wrong) or one bracket flipped
      ordered   `d` digits, left-padded with '.' to 16 characters; the answer is 1 if they never
                decrease. Half are sorted; the others are sorted digits with one adjacent pair of
                different digits swapped

tool_use(seed, memorised=240, repeats=16, computed=3000, names=4000, test=200, min_digits=2,
         max_digits=3, ops="+*", max_name=8)
    Part 6's queries, each written with the call that answers it (03-tool-token.patch):
    `query=CALL query CALL_END RESULT result RESULT_END answer`, where the four tool tokens are the
    private-use characters U+E000 to U+E003, which this builder refuses in its ordinary text.
    Domain "memorised": `memorised` equations (a+b, a*b), each written `repeats` times; "computed":
    `computed` other equations, once each (0 leaves the domain out); "names": census first names of
    3 to `max_name` letters, whose answer is the name reversed and whose result is empty (the
    calculator cannot read a name: an error). Each type X also gets "X.test": `test` held-out items
    that a --tool on run scores and never trains on: memorised facts (all of them in training), new
    equations, new names. Both arithmetic types spread evenly over every (digits of a, op, digits of
    b) with operands of min_digits to max_digits digits, so the operands' lengths say nothing about
    the type. Results and answers are computed with Python's integers.

list_tasks(seed)
    Part 7's list-processing tasks for program synthesis, in DreamCoder's JSON task format, one task
    per line: {"name": "add-3", "type": {"input": "list-of-int", "output": "list-of-int"},
    "examples": [{"i": [1, 2], "o": [4, 5]}, ...], "test": [...]}. The 10 examples are what the
    synthesiser sees (lists of 0 to 5 items of 0..9, or an int 0..9; distinct inputs, not all with
    the same output); the 5 test pairs measure generalisation (7 to 10 items of 0..20, or an int
    10..20). Types are int, bool, list-of-int and list-of-bool; every value stays within what Part 7's
    language may hold (|int| <= 10**6, at most 64 items). Domain "lists": 98 training tasks, one per
    parameter of each family in LIST_FAMILIES (add-k, keep-evens, sum, reverse, ...) and some
    compositions ("keep-evens/sum"); "lists.test": 50 held-out tasks, the same families with unseen
    parameters and unseen compositions of seen tasks. The seed draws the examples only, the tasks
    are fixed. Each family carries a reference program in Part 7's language, with which the tests
    check every output.

Domains always come in name order, and every item is checked: non-empty, no line break, no
surrounding whitespace (the trainer strips it), at least 10 per domain (the trainer holds out 10%).

materialise() writes a build once into data/cache/<builder>-<key>/, where the key hashes the
builder, seed and arguments, the builder's VERSION (bumped whenever an edit changes what it
builds, so that editing another builder or a docstring moves no cache path) and the bytes of
every file the build reads (an edited names file, or another Python's standard library,
rebuilds too). A cached folder is reused only while every file matches the sha256 its
manifest.json recorded; it is written under a temporary name and renamed into place, so a crash
never leaves a half-written dataset that looks finished.
"""

import argparse
import hashlib
import inspect
import json
import operator
import random
import re
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

import apply
from runs import ROOT, file_sha256, folder_problem

DATA_DIR = ROOT / "data"
MIN_ITEMS = 10  # the trainer holds out 10% of each domain for testing, so it needs at least 10
# A domain becomes a file name, and the trainer's -i splits its file list on commas.
DOMAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
OPERATIONS = {"+": operator.add, "*": operator.mul}


class DatasetError(Exception):
    """A dataset that cannot be built as asked; its message is one line, meant for the user."""


# --- the builders ---

def census_list_files():
    import names as names_package  # the package ships its lists as text files beside its module

    package_dir = Path(names_package.__file__).parent
    return [package_dir / "dist.female.first", package_dir / "dist.male.first"]


def census_first_names():
    """The distinct first names of the census lists in the `names` package, lowercased."""
    seen = {}
    for list_file in census_list_files():
        for line in list_file.read_text().split("\n"):
            if line.strip():
                seen.setdefault(line.split()[0].lower(), None)  # a dict keeps first-seen order
    return [name for name in seen if name.isascii() and name.isalpha()]


def names_file_path(file):
    path = ROOT / file  # joining an absolute path keeps it as it is
    if not path.is_file():
        raise DatasetError(f"names: file {str(path)!r} not found")
    return path


def read_names_file(file):
    path = names_file_path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(f"names: file {str(path)!r} is not UTF-8 text "
                           f"({error.reason} at byte {error.start})") from None
    return [item for item in (line.strip() for line in text.split("\n")) if item]


def seeded_sample(items, count, seed, source):
    """`count` of the items, chosen by the seed, kept in their original order."""
    if not 1 <= count <= len(items):
        raise DatasetError(f"count={count} is impossible: there are {len(items)} items in {source}")
    chosen = sorted(random.Random(seed).sample(range(len(items)), count))
    return [items[index] for index in chosen]


def names(seed, file: str | None = None, count: int | None = None):
    if file is None:
        domain, items = "names", census_first_names()
    else:
        domain, items = names_file_path(file).stem, read_names_file(file)
    if count is not None:
        items = seeded_sample(items, count, seed, file or "the census lists")
    return {domain: items}


def arithmetic(seed, digits: int = 2, ops: str = "+", count: int = 5000):
    if digits < 1:
        raise DatasetError(f"arithmetic: digits={digits}, but operands need at least 1 digit")
    if not ops or not set(ops) <= OPERATIONS.keys() or len(set(ops)) < len(ops):
        raise DatasetError(f"arithmetic: ops={ops!r}: give each of {', '.join(OPERATIONS)} at most once")
    size = 10 ** digits
    possible = len(ops) * size * size
    if not 1 <= count <= possible:
        raise DatasetError(f"count={count} is impossible: arithmetic with digits={digits} and ops={ops!r} "
                           f"has {possible} distinct items")
    rng = random.Random(seed)
    items = {}  # a dict: distinct items in the order they were first drawn
    # Uniform draws, repeats dropped: a uniform sample without replacement (slow only when count
    # comes close to every possible equation).
    while len(items) < count:
        a, op, b = rng.randrange(size), rng.choice(ops), rng.randrange(size)
        items.setdefault(f"{a}{op}{b}={OPERATIONS[op](a, b)}")
    return {"arithmetic": list(items)}


def stdlib_sources():
    # Only the top level: the tests/ and site-packages folders are below it.
    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))


def code_lines(text):
    """The stripped lines of a Python source outside comments and triple-quoted strings."""
    in_string = False
    for line in text.splitlines():
        line = line.strip()
        quotes = line.count('"""') + line.count("'''")
        if quotes % 2:  # a triple-quoted string opens or closes on this line
            in_string = not in_string
        elif not (in_string or quotes or line.startswith("#")):
            yield line


def code(seed, count: int = 5000, min_len: int = 8, max_len: int = 48):
    if not 1 <= min_len <= max_len:
        raise DatasetError(f"code: min_len={min_len} and max_len={max_len}: need 1 <= min_len <= max_len")
    lines = {}  # a dict: distinct lines in the order first seen
    for path in stdlib_sources():
        for line in code_lines(path.read_text(encoding="utf-8", errors="ignore")):
            if min_len <= len(line) <= max_len and line.isascii() and line.isprintable():
                lines.setdefault(line)
    return {"code": seeded_sample(list(lines), count, seed,
                                   f"the standard library's lines of {min_len} to {max_len} characters")}


# --- the algorithmic task suite (Part 5) ---

WIDTH = 16  # parity and ordered questions are left-padded with '.' to this many characters
PARENS_LENGTH = 16
ADDITION_DIGITS = 4


def parity_item(rng, length):
    bits = "".join(rng.choice("01") for _ in range(length))
    return f"{bits:.>{WIDTH}}={bits.count('1') % 2}"


def carries(a, b):
    """How many digit positions of a + b produce a carry."""
    count, carry = 0, 0
    while a or b:
        carry = int(a % 10 + b % 10 + carry >= 10)
        count, a, b = count + carry, a // 10, b // 10
    return count


def addition_item(rng, wanted):
    low, high = 10 ** (ADDITION_DIGITS - 1), 10 ** ADDITION_DIGITS
    while True:  # rejection: every number of carries has many pairs, so this ends fast
        a, b = rng.randrange(low, high), rng.randrange(low, high)
        if carries(a, b) == wanted:
            return f"{a}+{b}={str(a + b)[::-1]}"


def balanced_brackets(rng, length, depth):
    """A random balanced string of `length` brackets whose nesting reaches exactly `depth`."""
    while True:
        text, level, top = [], 0, 0
        for position in range(length):
            room = length - position  # an opening bracket must still be closable in the room left
            opens = level < depth and level + 1 <= room - 1 and (level == 0 or rng.random() < 0.5)
            level += 1 if opens else -1
            text.append("(" if opens else ")")
            top = max(top, level)
        if top == depth:
            return "".join(text)


def parens_item(rng, depth):
    text = balanced_brackets(rng, PARENS_LENGTH, depth)
    if rng.random() < 0.5:
        return f"{text}=1"
    while True:
        if rng.random() < 0.5:  # swap two brackets: the counts still match, the order is wrong
            i, j = sorted(rng.sample(range(PARENS_LENGTH), 2))
            broken = text[:i] + text[j] + text[i + 1:j] + text[i] + text[j + 1:]
        else:  # flip one bracket
            i = rng.randrange(PARENS_LENGTH)
            broken = text[:i] + ("(" if text[i] == ")" else ")") + text[i + 1:]
        if not is_balanced(broken):
            return f"{broken}=0"


def is_balanced(text):
    level = 0
    for bracket in text:
        level += 1 if bracket == "(" else -1
        if level < 0:
            return False
    return level == 0


def ordered_item(rng, length):
    digits = sorted(rng.choice("0123456789") for _ in range(length))
    if rng.random() < 0.5 or len(set(digits)) == 1:
        return f"{''.join(digits):.>{WIDTH}}=1"
    i = rng.choice([k for k in range(length - 1) if digits[k] != digits[k + 1]])
    digits[i], digits[i + 1] = digits[i + 1], digits[i]
    return f"{''.join(digits):.>{WIDTH}}=0"


TASKS = {"parity": parity_item, "addition": addition_item, "parens": parens_item, "ordered": ordered_item}
DIFFICULTIES = {"parity": range(1, WIDTH + 1), "addition": range(0, ADDITION_DIGITS + 1),
                "parens": range(1, PARENS_LENGTH // 2 + 1), "ordered": range(2, WIDTH + 1)}


def algorithmic(seed, parity: list = None, addition: list = None, parens: list = None, ordered: list = None,
                count: int = 1000):
    wanted = {"parity": parity, "addition": addition, "parens": parens, "ordered": ordered}
    if not any(wanted.values()):
        raise DatasetError("algorithmic: give at least one task's difficulties, e.g. parity=[4, 8]")
    rng = random.Random(seed)
    domains = {}
    for task, difficulties in wanted.items():
        for difficulty in difficulties or []:
            if difficulty not in DIFFICULTIES[task]:
                allowed = DIFFICULTIES[task]
                raise DatasetError(f"algorithmic: {task} difficulty {difficulty!r} is not in "
                                   f"{allowed.start}..{allowed.stop - 1}")
            name = f"{task}-{difficulty:02d}"
            domains[name] = distinct_items(lambda: TASKS[task](rng, difficulty), count, yes_no=task != "addition")
            if len(domains[name]) < count:
                print(f"algorithmic: {name} has {len(domains[name])} distinct items, fewer than the {count} "
                      "asked: each is used once", file=sys.stderr)
    return domains


def distinct_items(draw, count, yes_no=False, patience=50):
    """Up to `count` distinct items `question=answer` of draw(), in the order drawn. With yes_no, as
    many answered 1 as 0 (count // 2 each): without duplicates a domain could lose its half and
    half, since there are far fewer balanced strings of a depth, or sorted digit strings, than
    broken ones. A small space runs out first: after patience * count draws, what was found is
    taken to be all there is."""
    wanted = count // 2 if yes_no else count
    drawn, by_answer = {}, {}  # dicts as ordered sets
    for _ in range(patience * count):
        item = draw()
        same = by_answer.setdefault(item.rsplit("=", 1)[1] if yes_no else "", {})
        if item not in drawn and len(same) < wanted:
            drawn[item] = same[item] = None
            if len(drawn) == wanted * (2 if yes_no else 1):
                break
    if yes_no:  # as many of each answer as the rarer one has
        fewest = min(map(len, by_answer.values())) if len(by_answer) == 2 else 0
        kept = {item for same in by_answer.values() for item in list(same)[:fewest]}
        return [item for item in drawn if item in kept]
    return list(drawn)


def mixture(seed, parts: dict):
    if not parts:
        raise DatasetError("mixture: parts is empty; give at least one builder")
    domains, source_of = {}, {}
    for part, part_args in parts.items():
        for domain, items in build(part, seed, **part_args).items():
            if domain in domains:
                raise DatasetError(f"mixture: parts {source_of[domain]!r} and {part!r} both give the domain {domain!r}")
            domains[domain], source_of[domain] = items, part
    return domains


# The tool tokens of 03-tool-token.patch: call, call end, result, result end. Characters of Unicode's
# private-use area, which ordinary text does not hold; tool_use refuses them in its ordinary text.
TOOL_TOKENS = ("\ue000", "\ue001", "\ue002", "\ue003")
PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


def with_call(query, result, answer):
    """An item written with the call that answers it: query=CALL query CALL_END RESULT result RESULT_END answer."""
    call, call_end, result_open, result_end = TOOL_TOKENS
    for text in (query, result, answer):
        if PRIVATE_USE.search(text):
            raise DatasetError(f"tool_use: {text!r} holds a private-use character, which only tool tokens may use")
    return f"{query}={call}{query}{call_end}{result_open}{result}{result_end}{answer}"


def equation_cells(min_digits, max_digits, ops):
    """Every (digits of a, op, digits of b): both arithmetic types spread evenly over these."""
    lengths = range(min_digits, max_digits + 1)
    return [(da, op, db) for da in lengths for op in ops for db in lengths]


def cell_of(equation):
    a, op, b = equation
    return len(str(a)), op, len(str(b))


def share(count, cells):
    """How many of `count` go to each cell: as even as possible, the first cells taking the rest."""
    return [count // len(cells) + (index < count % len(cells)) for index in range(len(cells))]


def draw_equations(rng, cells, count, taken):
    """`count` distinct (a, op, b) not in `taken`, spread evenly over the cells, in cell order."""
    seen, drawn = set(taken), []
    for (da, op, db), want in zip(cells, share(count, cells)):
        low_a, low_b = (10 ** (da - 1) if da > 1 else 0), (10 ** (db - 1) if db > 1 else 0)
        free = (10 ** da - low_a) * (10 ** db - low_b) - sum(cell_of(e) == (da, op, db) for e in seen)
        if want > free:
            raise DatasetError(f"tool_use: {count} more equations do not fit: a cell of {da} and {db} digits "
                               f"has {free} left")
        for _ in range(want):
            equation = (rng.randrange(low_a, 10 ** da), op, rng.randrange(low_b, 10 ** db))
            while equation in seen:
                equation = (rng.randrange(low_a, 10 ** da), op, rng.randrange(low_b, 10 ** db))
            seen.add(equation)
            drawn.append(equation)
    return drawn


def evenly(equations, count, cells):
    """The first `count` of the equations, spread evenly over the cells."""
    chosen = []
    for cell, want in zip(cells, share(count, cells)):
        chosen += [e for e in equations if cell_of(e) == cell][:want]
    return chosen


def tool_use(seed, memorised: int = 240, repeats: int = 16, computed: int = 3000, names: int = 4000,
             test: int = 200, min_digits: int = 2, max_digits: int = 3, ops: str = "+*", max_name: int = 8):
    if not 1 <= min_digits <= max_digits:
        raise DatasetError(f"tool_use: min_digits={min_digits} and max_digits={max_digits}: need 1 <= min <= max")
    if not ops or not set(ops) <= OPERATIONS.keys() or len(set(ops)) < len(ops):
        raise DatasetError(f"tool_use: ops={ops!r}: give each of {', '.join(OPERATIONS)} at most once")
    if repeats < 1:
        raise DatasetError(f"tool_use: repeats={repeats}: each memorised fact must occur at least once")
    if not 0 <= test <= memorised:
        raise DatasetError(f"tool_use: test={test}: the memorised facts held out are some of the {memorised}")
    rng = random.Random(seed)
    cells = equation_cells(min_digits, max_digits, ops)
    known = draw_equations(rng, cells, memorised, taken=())
    fresh = draw_equations(rng, cells, computed, taken=known)
    unseen = draw_equations(rng, cells, test, taken=known + fresh)
    pool = [name for name in census_first_names() if 3 <= len(name) <= max_name]
    if names + test > len(pool):
        raise DatasetError(f"tool_use: names={names} and test={test}: there are {len(pool)} census names "
                           f"of 3 to {max_name} letters")
    people = rng.sample(pool, names + test)

    def equation_item(a, op, b):
        query, value = f"{a}{op}{b}", str(OPERATIONS[op](a, b))
        return with_call(query, value, value)

    def name_item(name):
        return with_call(name, "", name[::-1])  # the calculator cannot read a name: an empty result

    domains = {"memorised": [equation_item(*e) for e in known] * repeats,
               "memorised.test": [equation_item(*e) for e in evenly(known, test, cells)],
               "computed": [equation_item(*e) for e in fresh],
               "computed.test": [equation_item(*e) for e in unseen],
               "names": [name_item(name) for name in people[:names]],
               "names.test": [name_item(name) for name in people[names:]]}
    return {domain: items for domain, items in domains.items() if items}

# --- list-processing tasks for program synthesis (Part 7) ---

# What a value of Part 7's program language may hold (its evaluator refuses anything larger), so
# that every output is one a program could give.
LIST_MAX_INT, LIST_MAX_LEN = 10**6, 64
LIST_EXAMPLES, LIST_TESTS = 10, 5


class ListFamily(NamedTuple):
    input: str  # "int", "bool", "list-of-int" or "list-of-bool", as DreamCoder writes types
    output: str
    compute: Callable  # compute(k, x): the output; IndexError or ValueError where there is none
    # The reference program (Stitch notation; its constants are only 0, 1 and 2): {k} stands for the
    # parameter, {x} for the input, never inside a lam, where the input would be another variable.
    # A function of k where the program's shape depends on k.
    program: str | Callable
    train: tuple = (None,)  # the parameters of its training tasks; (None,): one task, no parameter
    held_out: tuple = ()  # the parameters only held-out tasks use


def drop(k, xs):
    if len(xs) < k:  # as k cdrs, which fail on an empty list
        raise IndexError(f"drop {k} of {len(xs)}")
    return xs[k:]


def right_product(xs):
    """The product as the language's right fold computes it: a partial product out of bounds is
    an error there, even when a 0 further left would bring it back."""
    product = 1
    for x in reversed(xs):
        product *= x
        if abs(product) > LIST_MAX_INT:
            raise ValueError("a partial product out of bounds")
    return product


def is_even(x):
    return x % 2 == 0


INTS, BOOLS = "list-of-int", "list-of-bool"
EVEN = "(eq? (mod $0 2) 0)"
REVERSE = "(fold-list (lam (lam (fold-list (lam (lam (cons $1 $0))) (cons $1 empty) $0))) empty {x})"
# The families of DreamCoder's list domain that the language can type, with the parameters of
# their training and held-out tasks; a family named "...-k" gives one task per parameter ("add-3").
LIST_FAMILIES = {
    "add-k": ListFamily(INTS, INTS, lambda k, xs: [x + k for x in xs], "(map (lam (+ $0 {k})) {x})",
                        (1, 2, 3, 5), (4, 7)),
    "subtract-k": ListFamily(INTS, INTS, lambda k, xs: [x - k for x in xs], "(map (lam (- $0 {k})) {x})",
                             (1, 2, 4), (3,)),
    "multiply-k": ListFamily(INTS, INTS, lambda k, xs: [x * k for x in xs], "(map (lam (* $0 {k})) {x})",
                             (2, 3, 5), (4,)),
    "mod-k": ListFamily(INTS, INTS, lambda k, xs: [x % k for x in xs], "(map (lam (mod $0 {k})) {x})",
                        (2, 3), (4,)),
    "keep-evens": ListFamily(INTS, INTS, lambda k, xs: [x for x in xs if is_even(x)], f"(filter (lam {EVEN}) {{x}})"),
    "keep-odds": ListFamily(INTS, INTS, lambda k, xs: [x for x in xs if not is_even(x)],
                            f"(filter (lam (not {EVEN})) {{x}})"),
    "keep-greater-than-k": ListFamily(INTS, INTS, lambda k, xs: [x for x in xs if x > k],
                                      "(filter (lam (gt? $0 {k})) {x})", (2, 4, 6), (3, 5)),
    "keep-less-than-k": ListFamily(INTS, INTS, lambda k, xs: [x for x in xs if x < k],
                                   "(filter (lam (gt? {k} $0)) {x})", (3, 7), (5,)),
    "remove-k": ListFamily(INTS, INTS, lambda k, xs: [x for x in xs if x != k],
                           "(filter (lam (not (eq? $0 {k}))) {x})", (0, 2, 5), (3,)),
    "drop-k": ListFamily(INTS, INTS, drop, lambda k: "(cdr " * k + "{x}" + ")" * k, (1, 2), (3,)),
    "head": ListFamily(INTS, "int", lambda k, xs: xs[0], "(car {x})"),
    "last": ListFamily(INTS, "int", lambda k, xs: xs[-1], "(index (- (length {x}) 1) {x})"),
    "index-k": ListFamily(INTS, "int", lambda k, xs: xs[k], "(index {k} {x})", (1, 2), (3,)),
    "length": ListFamily(INTS, "int", lambda k, xs: len(xs), "(length {x})"),
    "sum": ListFamily(INTS, "int", lambda k, xs: sum(xs), "(fold (lam (lam (+ $1 $0))) 0 {x})"),
    "product": ListFamily(INTS, "int", lambda k, xs: right_product(xs), "(fold (lam (lam (* $1 $0))) 1 {x})"),
    "max": ListFamily(INTS, "int", lambda k, xs: max(xs), "(fold (lam (lam (if (gt? $1 $0) $1 $0))) (car {x}) {x})"),
    "min": ListFamily(INTS, "int", lambda k, xs: min(xs), "(fold (lam (lam (if (gt? $1 $0) $0 $1))) (car {x}) {x})"),
    "count-k": ListFamily(INTS, "int", lambda k, xs: xs.count(k), "(length (filter (lam (eq? $0 {k})) {x}))",
                          (1, 3, 8), (5,)),
    "count-evens": ListFamily(INTS, "int", lambda k, xs: sum(map(is_even, xs)),
                              f"(length (filter (lam {EVEN}) {{x}}))"),
    "reverse": ListFamily(INTS, INTS, lambda k, xs: xs[::-1], REVERSE),
    "append-k": ListFamily(INTS, INTS, lambda k, xs: xs + [k],
                           "(fold-list (lam (lam (cons $1 $0))) (cons {k} empty) {x})",
                           (0, 3, 6), (1,)),
    "prepend-k": ListFamily(INTS, INTS, lambda k, xs: [k] + xs, "(cons {k} {x})", (1, 4, 8), (2,)),
    "contains-k": ListFamily(INTS, "bool", lambda k, xs: k in xs, "(not (empty? (filter (lam (eq? $0 {k})) {x})))",
                             (0, 4, 7), (2,)),
    "is-empty": ListFamily(INTS, "bool", lambda k, xs: not xs, "(empty? {x})"),
    "all-even": ListFamily(INTS, "bool", lambda k, xs: all(map(is_even, xs)),
                           f"(empty? (filter (lam (not {EVEN})) {{x}}))"),
    "is-even-each": ListFamily(INTS, BOOLS, lambda k, xs: [is_even(x) for x in xs], f"(map-bool (lam {EVEN}) {{x}})"),
    "count-true": ListFamily(BOOLS, "int", lambda k, bs: sum(map(int, bs)),
                             "(fold (lam (lam (+ $1 $0))) 0 (bits {x}))"),
    "range": ListFamily("int", INTS, lambda k, n: list(range(n)), "(range {x})"),
    "int-add-k": ListFamily("int", "int", lambda k, n: n + k, "(+ {x} {k})", (1, 3), (2,)),
    "int-multiply-k": ListFamily("int", "int", lambda k, n: n * k, "(* {x} {k})", (2, 3), (4,)),
    "int-square": ListFamily("int", "int", lambda k, n: n * n, "(* {x} {x})"),
}
# Two tasks run one after the other ("keep-evens/sum": the sum of the evens). Each step of a
# held-out composition is a training task and also a step of some training composition, so
# abstractions learned in training can solve it; none computes the same function as another task
# (tests/test_list_tasks.py checks), e.g. no "reverse/sum" (that is sum).
LIST_COMPOSITIONS = """
    add-1/sum add-1/max add-1/head add-1/reverse add-1/keep-evens add-1/is-even-each subtract-1/keep-evens
    multiply-3/sum multiply-3/min multiply-3/last multiply-3/keep-evens multiply-2/add-1
    keep-evens/sum keep-evens/max keep-evens/head keep-evens/reverse keep-evens/is-empty keep-evens/add-2
    keep-odds/sum keep-odds/min keep-odds/last keep-odds/drop-1 keep-odds/length
    keep-greater-than-4/sum keep-greater-than-4/length keep-greater-than-4/head keep-greater-than-4/add-2
    keep-greater-than-4/count-evens
    drop-1/sum drop-1/length drop-1/max drop-1/keep-evens drop-1/reverse
    reverse/drop-1 reverse/add-2 range/sum range/reverse remove-0/length keep-less-than-7/sum
    subtract-1/reverse mod-3/sum
""".split()
LIST_HELD_OUT_COMPOSITIONS = """
    add-1/min add-1/last add-1/drop-1
    multiply-3/max multiply-3/head multiply-3/reverse multiply-3/add-2
    keep-evens/min keep-evens/last keep-evens/drop-1
    keep-odds/max keep-odds/head keep-odds/reverse keep-odds/add-2
    keep-greater-than-4/min keep-greater-than-4/last keep-greater-than-4/keep-evens keep-greater-than-4/is-empty
    drop-1/min drop-1/add-2 drop-1/count-evens drop-1/is-even-each
    range/keep-evens range/add-2 keep-less-than-7/max remove-0/min mod-3/reverse subtract-1/sum
    reverse/keep-greater-than-4 multiply-2/sum subtract-1/max mod-3/max
    keep-less-than-7/reverse
""".split()


def list_task_names():
    """(training names, held-out names): each family's tasks, then the compositions."""
    train, held_out = [], []
    for family, spec in LIST_FAMILIES.items():
        train += [task_name(family, k) for k in spec.train]
        held_out += [task_name(family, k) for k in spec.held_out]
    return train + LIST_COMPOSITIONS, held_out + LIST_HELD_OUT_COMPOSITIONS


def task_name(family, k):
    return family if k is None else f"{family[:-1]}{k}"


def list_task_steps(name):
    """The (family, parameter) of each step of a task: "keep-evens/add-2" -> keep-evens, then add-k with 2."""
    steps = []
    for step in name.split("/"):
        stem, _, number = step.rpartition("-")
        if step in LIST_FAMILIES:
            steps.append((LIST_FAMILIES[step], None))
        elif number.isdigit() and f"{stem}-k" in LIST_FAMILIES:
            steps.append((LIST_FAMILIES[f"{stem}-k"], int(number)))
        else:
            raise DatasetError(f"list_tasks: no family gives the task {step!r}")
    for (first, _), (then, _) in zip(steps, steps[1:]):
        if first.output != then.input:
            raise DatasetError(f"list_tasks: in {name!r}, a step giving {first.output} feeds one taking {then.input}")
    return steps


def list_task_type(name):
    steps = list_task_steps(name)
    return {"input": steps[0][0].input, "output": steps[-1][0].output}


def in_list_bounds(value):
    if isinstance(value, list):
        return len(value) <= LIST_MAX_LEN and all(map(in_list_bounds, value))
    return isinstance(value, bool) or abs(value) <= LIST_MAX_INT


def list_task_output(name, x):
    """The task's output for the input x, or None where it has none (the head of an empty list)."""
    for family, k in list_task_steps(name):
        try:
            x = family.compute(k, x)
        except (IndexError, ValueError):
            return None
        if not in_list_bounds(x):
            return None
    return x


def numeral(k):
    """k written with the language's constants 0, 1 and 2: 5 is (+ 2 (+ 2 1))."""
    return str(k) if k <= 2 else f"(+ 2 {numeral(k - 2)})"


def list_task_program(name):
    """The task's reference program: the first step's program, then each next one's around it (the
    input $0 sits outside every lam, so a program can stand in for it unchanged)."""
    text = "$0"
    for family, k in list_task_steps(name):
        template = family.program(k) if callable(family.program) else family.program
        text = template.format(k=None if k is None else numeral(k), x=text)
    return text


def draw_list_input(rng, type_, held_out):
    """Examples: short lists (0 to 5 items, mostly 1 to 5) of 0..9, or an int 0..9. Held-out tests
    ask the program to generalise: 7 to 10 items of 0..20, or an int 10..20."""
    if type_ == "int":
        return rng.randint(10, 20) if held_out else rng.randint(0, 9)
    length = rng.randint(7, 10) if held_out else (0 if rng.random() < 0.1 else rng.randint(1, 5))
    if type_ == BOOLS:
        return [rng.random() < 0.5 for _ in range(length)]
    return [rng.randint(0, 20 if held_out else 9) for _ in range(length)]


def draw_list_pairs(rng, name, count, held_out):
    """`count` (input, output) pairs with distinct inputs, each input one the task has an output for."""
    type_, pairs, seen = list_task_type(name)["input"], [], set()
    for _ in range(100 * count):  # plenty: the pickiest task (index-3) takes about 1 draw in 3
        x = draw_list_input(rng, type_, held_out)
        y = list_task_output(name, x)
        if y is not None and repr(x) not in seen:
            seen.add(repr(x))
            pairs.append({"i": x, "o": y})
            if len(pairs) == count:
                return pairs
    raise DatasetError(f"list_tasks: {name!r} has too few inputs with an output")


def list_task_item(seed, name):
    # A generator of its own per task, so that adding a task moves no other task's examples.
    rng = random.Random(f"{seed}/{name}")
    for _ in range(100):
        examples = draw_list_pairs(rng, name, LIST_EXAMPLES, held_out=False)
        # Examples whose outputs are all the same would be solved by a constant.
        if len({repr(pair["o"]) for pair in examples}) > 1:
            break
    else:
        raise DatasetError(f"list_tasks: {name!r} gives the same output for every example")
    task = {"name": name, "type": list_task_type(name), "examples": examples,
            "test": draw_list_pairs(rng, name, LIST_TESTS, held_out=True)}
    return json.dumps(task, separators=(",", ":"))


def list_tasks(seed):
    train, held_out = list_task_names()
    return {"lists": [list_task_item(seed, name) for name in train],
            "lists.test": [list_task_item(seed, name) for name in held_out]}


BUILDERS = {"names": names, "arithmetic": arithmetic, "code": code, "mixture": mixture,
            "algorithmic": algorithmic, "tool_use": tool_use, "list_tasks": list_tasks}
# Part of every cache key: bump a builder's number when an edit changes the items it builds.
VERSION = {"names": 1, "arithmetic": 1, "code": 1, "mixture": 1, "algorithmic": 2, "tool_use": 1, "list_tasks": 1}


# --- checking the request and the result ---

def check_args(builder, seed, args):
    """Refuse an unknown builder, or arguments that do not fit its signature, before building anything."""
    if builder not in BUILDERS:
        raise DatasetError(f"unknown dataset builder {builder!r}; the builders are: {', '.join(BUILDERS)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatasetError(f"{builder}: the seed must be an integer, not {seed!r}")
    parameters = dict(inspect.signature(BUILDERS[builder]).parameters)
    del parameters["seed"]
    accepted = ", ".join(str(parameter) for parameter in parameters.values())
    for name, value in args.items():
        if name not in parameters:
            raise DatasetError(f"{builder} has no argument {name!r}; it accepts: {accepted}")
        expected = parameters[name].annotation
        if isinstance(value, bool) or not isinstance(value, expected):  # no argument takes a bool
            raise DatasetError(f"{builder}: {name}={value!r} has the wrong type; it accepts: {accepted}")
    for name, parameter in parameters.items():
        if parameter.default is parameter.empty and name not in args:
            raise DatasetError(f"{builder} needs the argument {name!r}; it accepts: {accepted}")
    if builder == "mixture":
        for part, part_args in args["parts"].items():
            if not isinstance(part_args, dict):
                raise DatasetError(f"mixture: the arguments of part {part!r} must be a table, not {part_args!r}")
            check_args(part, seed, part_args)


def check_items(domain, items):
    if not DOMAIN_NAME.fullmatch(domain):
        raise DatasetError(f"domain name {domain!r} must be letters, digits, '_', '.' or '-' (not starting with '.')")
    if len(items) < MIN_ITEMS:
        raise DatasetError(f"domain {domain!r} has {len(items)} items: at least {MIN_ITEMS} are needed "
                           "so that 10% of them can be held out for testing")
    for item in items:
        # The trainer reads one stripped item per line: anything else would not train what the file says.
        if not item or "\n" in item or "\r" in item or item != item.strip():
            raise DatasetError(f"domain {domain!r}: item {item!r} is empty, holds a line break or has surrounding whitespace")


def build(builder: str, seed: int = 0, **args) -> dict[str, list[str]]:
    """The builder's domains, in name order, each a checked list of items."""
    check_args(builder, seed, args)
    domains = BUILDERS[builder](seed, **args)
    for domain, items in domains.items():
        check_items(domain, items)
        if builder not in ("tool_use", "mixture"):  # a mixture's parts were checked on their own
            tool_like = next((item for item in items if PRIVATE_USE.search(item)), None)
            if tool_like is not None:
                raise DatasetError(f"domain {domain!r}: the item {tool_like!r} holds a private-use character, "
                                   "which the lab reserves for tool tokens (03-tool-token.patch)")
    return dict(sorted(domains.items()))


# --- the cache ---

def input_files(builder, args):
    """The files a build reads: their bytes are part of its cache key."""
    if builder == "names":
        return census_list_files() if args.get("file") is None else [names_file_path(args["file"])]
    if builder == "code":
        return stdlib_sources()
    if builder == "mixture":
        return [path for part, part_args in args["parts"].items() for path in input_files(part, part_args)]
    return []


def builder_versions(builder, args):
    """The VERSION of a builder, and of each builder a mixture is made of."""
    if builder == "mixture":
        return {part: VERSION[part] for part in args["parts"]}
    return {builder: VERSION[builder]}


def cache_key(builder, seed, args):
    request = {"builder": builder, "seed": seed, "args": args, "version": builder_versions(builder, args),
               "inputs": [file_sha256(path) for path in input_files(builder, args)]}
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def cached_files(folder):
    """The files of a cached build, or None unless its manifest exists and every file matches it."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        files = [{"domain": entry["domain"], "path": folder / entry["file"], "sha256": entry["sha256"]}
                 for entry in manifest["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if files and all(file["path"].is_file() and file_sha256(file["path"]) == file["sha256"] for file in files):
        return files
    return None


def write_build(folder, domains, request):
    """Write the domains and their manifest under a temporary name, then rename it to `folder`."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        entries = []
        for domain, items in domains.items():
            path = write_items(items, staging / f"{domain}.txt")
            entries.append({"domain": domain, "file": path.name, "sha256": file_sha256(path), "items": len(items)})
        manifest = {**request, "files": entries}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if folder.exists() and cached_files(folder) is None:
            shutil.rmtree(folder)  # a damaged build (a file edited or gone): replace it
        try:
            staging.rename(folder)
        except OSError:
            if cached_files(folder) is None:  # not another process finishing the same build first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cached_files(folder)


def materialise(builder: str, seed: int = 0, args: dict | None = None, cache_dir: Path = DATA_DIR / "cache") -> list[dict]:
    """The build's files, written once: [{"domain", "path", "sha256"}] in domain name order."""
    args = args or {}
    check_args(builder, seed, args)
    folder = Path(cache_dir) / f"{builder}-{cache_key(builder, seed, args)[:12]}"
    files = cached_files(folder)
    if files is None:
        files = write_build(folder, build(builder, seed, **args), {"builder": builder, "seed": seed, "args": args})
    return files


# --- files and the command line ---

def write_items(items, path):
    """Write one item per line as UTF-8, replacing the file in one step, and only when it changes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(item + "\n" for item in items).encode("utf-8")
    if not path.exists() or path.read_bytes() != data:
        apply.write_atomic(path, data)
    return path


def parse_setting(text):
    """KEY=VALUE: the value as JSON when it parses (3, {"names": {}}), else as the string it is (+*)."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def builder_help(builder):
    """The builder's section of this module's docstring: its signature and what it builds."""
    lines = __doc__.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{builder}("))
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    return "\n".join(lines[start:end]).rstrip()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] in BUILDERS and argv[1] in ("-h", "--help"):  # the builder's own arguments
        print(f"python -m runs.datasets {argv[0]} [--seed N] [--set KEY=VALUE ...] [-o DIR]\n\n"
              f"{builder_help(argv[0])}")
        return
    parser = argparse.ArgumentParser(prog="python -m runs.datasets",
                                     description="Build a dataset of the lab: one DIR/<domain>.txt per domain.",
                                     epilog="A builder's own arguments: python -m runs.datasets BUILDER --help")
    parser.add_argument("builder", metavar="BUILDER", help=f"one of: {', '.join(BUILDERS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", type=parse_setting, action="append", default=[], metavar="KEY=VALUE",
                        help="a builder argument; the value is read as JSON when it parses, else as a string")
    parser.add_argument("--output-dir", "-o", type=Path, help="where to write the files (default: data/)")
    args = parser.parse_args(argv)
    problem = folder_problem(args.output_dir or DATA_DIR, "--output-dir")
    if problem:
        parser.error(problem)
    try:
        domains = build(args.builder, args.seed, **dict(args.set))
    except DatasetError as error:
        sys.exit(f"error: {error}")
    for domain, items in domains.items():
        path = write_items(items, (args.output_dir or DATA_DIR) / f"{domain}.txt")
        print(f"{path}: {len(items)} items")


if __name__ == "__main__":
    main()
