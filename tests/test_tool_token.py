"""The tool-token patch (03-tool-token.patch): the calculator, the reserved tokens, generation that
runs the tool, result tokens kept out of the loss, the cost rule, the policy's evaluation, and a
tool run end to end (its metrics, its files, exact resume). That the patch at its defaults trains
exactly like the variant before it is test_series.py's job."""

import builtins
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import apply
from conftest import TINY_MODEL_FLAGS
from runs import load_module
from runs.datasets import build, write_items

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def variant():
    return apply.Project(ROOT).ensure_variant("tool-token") / "makemore.py"


@pytest.fixture(scope="module")
def mm(variant):
    return load_module(variant)


@pytest.fixture(scope="module")
def tool_files(tmp_path_factory):
    """A small tool_use dataset: every type, a few hundred items."""
    folder = tmp_path_factory.mktemp("tool")
    domains = build("tool_use", 0, memorised=20, repeats=8, computed=100, names=100, test=20)
    return ",".join(str(write_items(items, folder / f"{name}.txt")) for name, items in domains.items())


@pytest.fixture(scope="module")
def vocab(mm):
    return mm.Vocabulary(sorted(set("0123456789+*=abcdefghijklmnopqrstuvwxyz") | set(mm.TOOL_TOKENS)))


# --- the calculator -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    ("7", "7"), ("12+30", "42"), ("12*30", "360"), ("2+3*4", "14"), ("(2+3)*4", "20"), ("10-25", "-15"),
    ("-4*-5", "20"), ("0*999", "0"), ("007+1", "8"), ("1-2-3", "-4"), ("((((((((1))))))))", "1"),
    ("999999*1000000", "999999000000"),
])
def test_the_calculator_evaluates_integer_arithmetic(mm, text, value):
    assert mm.calculate(text) == value


@pytest.mark.parametrize("text", [
    "", "+", "1+", "+1", "1++2", "1**2", "(1", "1)", "()", "1 + 2", "abc", "emma", "1/2", "2^3", "1.5*2",
    "--1", "²+1", "١+1",  # not ASCII digits, though str.isdigit says they are
])
def test_the_calculator_gives_an_error_for_what_is_not_integer_arithmetic(mm, text):
    assert mm.calculate(text) is None


@pytest.mark.parametrize("text", [
    "9" * 13,  # one number above the bound
    "999999*999999*999999",  # an intermediate result above the bound
    "(" * 9 + "1" + ")" * 9,  # nesting one level deeper than allowed
    "(" * 1000 + "1" + ")" * 1000,  # far deeper: refused by length before any recursion
    "1+" * 40 + "1",  # longer than the calculator reads
    "__import__('os').system('touch pwned')", "exec('1')", "1;2", "1\n+2",
])
def test_hostile_calls_get_an_error_result(mm, text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert mm.calculate(text) is None
    assert not (tmp_path / "pwned").exists()


def test_the_calculator_never_runs_code(mm, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the calculator ran code")
    for name in ("eval", "exec", "compile", "__import__"):
        monkeypatch.setattr(builtins, name, refuse)
    assert mm.calculate("(12+3)*4") == "60"
    assert mm.calculate("__import__('os')") is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789+-*()x= \ue000"), max_size=80) | st.text(max_size=80))
def test_the_calculator_never_raises_and_answers_an_integer_or_none(mm, text):
    value = mm.calculate(text)
    assert value is None or (value.lstrip("-").isdigit() and abs(int(value)) <= mm.CALC_MAX_VALUE)


def expressions():
    """(text, value) of random expression trees, the value computed here, independently."""
    number = st.integers(0, 9999).map(lambda n: (str(n), n))

    def combine(children):
        def join(parts):
            (a, x), op, (b, y) = parts
            return f"({a}{op}{b})", {"+": x + y, "-": x - y, "*": x * y}[op]
        return st.tuples(children, st.sampled_from("+-*"), children).map(join)
    return st.recursive(number, combine, max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(expressions())
def test_the_calculator_agrees_with_integer_arithmetic(mm, expression):
    text, value = expression
    expected = str(value) if len(text) <= mm.CALC_MAX_CHARS else None
    if text.count("(") > mm.CALC_MAX_DEPTH:
        return  # the depth bound is tested above; whether it bites depends on the tree's shape
    if expected is not None and abs(value) > mm.CALC_MAX_VALUE:
        return  # an intermediate result may pass the bound even when the final value does not
    assert mm.calculate(text) == expected


# --- tool tokens, queries and answers -----------------------------------------------------------------


def test_each_tool_token_is_one_token_of_the_vocabulary(mm, vocab):
    item = f"12*3={mm.CALL}12*3{mm.CALL_END}{mm.RESULT}36{mm.RESULT_END}36"
    assert len(vocab.encode(item)) == len(item) == 17
    assert mm.has_tool_tokens(vocab)
    assert not mm.has_tool_tokens(mm.Vocabulary(list("abc=")))


def test_an_item_reads_as_a_query_with_or_without_its_call(mm):
    item = f"12*3={mm.CALL}12*3{mm.CALL_END}{mm.RESULT}36{mm.RESULT_END}36"
    query = mm.read_query(item)
    assert (query.text, query.answer, query.call_form, query.call_text, query.plain) == \
        ("12*3", "36", item, "12*3", "12*3=36")
    assert mm.read_query("emma=amme") == mm.Query("emma", "amme")
    assert mm.with_call("12*3", "36") == item
    for broken in ["emma", f"1={mm.CALL}1{mm.CALL_END}1", f"1={mm.CALL}1{mm.RESULT}1{mm.RESULT_END}1",
                   f"1={mm.CALL}1{mm.CALL_END}{mm.RESULT}1{mm.RESULT_END}1{mm.CALL}", f"1{mm.CALL}=1"]:
        assert mm.read_query(broken) is None, ascii(broken)


def test_the_answer_leaves_the_call_out_and_needs_a_stop(mm, vocab):
    def answer(text, stop=True):
        return mm.answer_of(vocab, vocab.encode(text) + ([0] if stop else []))
    assert answer("36") == "36"
    assert answer(f"{mm.CALL}12*3{mm.CALL_END}{mm.RESULT}36{mm.RESULT_END}36") == "36"
    assert answer("36", stop=False) is None
    assert answer(f"{mm.CALL}12*3") is None  # a call never closed
    assert answer(f"3{mm.RESULT_END}6") is None


# --- results carry no loss ----------------------------------------------------------------------------


def test_result_tokens_are_masked_from_the_loss_and_nothing_else_is(mm, vocab):
    item = f"12*3={mm.CALL}12*3{mm.CALL_END}{mm.RESULT}36{mm.RESULT_END}36"
    split = mm.encode_split([item, "1+1=2"], [0, 0], vocab, block_size=24)
    masked = [i for i, target in enumerate(split.y[0].tolist()) if target == -1]
    result = [i for i, ch in enumerate(item) if ch in (mm.RESULT, "3", "6", mm.RESULT_END)][2:6]
    assert result == [11, 12, 13, 14]
    assert masked[:4] == result and masked[4:] == list(range(len(item) + 1, 24))
    logits = torch.randn(2, 24, len(vocab), requires_grad=True)
    mm.lm_loss(logits, split.y).backward()
    touched = logits.grad.abs().sum(dim=-1)[0] > 0
    assert touched.tolist() == [target != -1 for target in split.y[0].tolist()]


def test_batches_and_evaluation_keep_the_answer_after_a_masked_result(mm, vocab):
    item = f"12*3={mm.CALL}12*3{mm.CALL_END}{mm.RESULT}36{mm.RESULT_END}36"
    split = mm.encode_split([item], [0], vocab, block_size=24)
    x, y, n_targets = mm.BatchSampler(split, 1, 0, "cpu").next()
    assert x.shape[1] == len(item) + 1 and y[0, -1] == 0  # the row ends with the answer's <stop>
    assert n_targets == len(item) + 1 - 4
    assert mm.used_widths(split.y).tolist() == [len(item) + 1]


def test_a_practice_row_scores_its_first_answer_token_with_calls_forbidden(mm, vocab):
    C, E, R, RE = mm.TOOL_TOKENS
    items = [f"12*3={C}12*3{E}{R}36{RE}36", "12*3=36"]  # an item that calls, and its practice row
    split = mm.encode_split(items, [0, 0], vocab, block_size=24)
    split.y[1, 5] = -1  # what ToolTraining.encode does to a practice row: '=' at 5 predicts the '3'
    logits = torch.randn(2, 24, len(vocab), requires_grad=True)
    loss = mm.with_practice(mm.lm_loss(logits, split.y), logits, split.x, split.y, vocab)
    allowed = [i for i in range(len(vocab)) if vocab.chars[i - 1] not in mm.TOOL_TOKENS or i == 0]
    practised = -torch.log_softmax(logits[1, 5, allowed], dim=0)[allowed.index(vocab.stoi["3"])]
    scored = torch.nn.functional.cross_entropy(logits.view(-1, len(vocab)), split.y.view(-1), ignore_index=-1,
                                               reduction="sum")
    assert loss.item() == pytest.approx(((scored + practised) / ((split.y != -1).sum() + 1)).item(), rel=1e-6)
    loss.backward()
    assert logits.grad[1, 5, vocab.stoi[C]] == 0 and logits.grad[1, 5, vocab.stoi["3"]] < 0
    assert mm.with_practice(loss, logits, split.x[:1], split.y[:1], vocab) is loss  # no practice row: as it was


# --- generation that runs the tool --------------------------------------------------------------------


class Scripted(torch.nn.Module):
    """A stand-in model: after each prefix in `script` it puts all its weight on the token given,
    elsewhere on `default` (and, when `bias` is set, a lot on that token everywhere)."""

    def __init__(self, script, vocab_size, default=0, bias=None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.script, self.vocab_size, self.default, self.bias = script, vocab_size, default, bias

    def forward(self, idx, targets=None):
        logits = torch.zeros(*idx.shape, self.vocab_size)
        for b, row in enumerate(idx.tolist()):
            for t in range(len(row)):
                logits[b, t, self.script.get(tuple(row[:t + 1]), self.default)] = 30.0
                if self.bias is not None:
                    logits[b, t, self.bias] += 60.0
        return logits, None


def script_for(vocab, *texts):
    """Each text's prefix -> its next token, so that a Scripted model writes the texts."""
    script = {}
    for text in texts:
        tokens = [0] + vocab.encode(text) + [0]
        for t in range(1, len(tokens)):
            script[tuple(tokens[:t])] = tokens[t]
    return script


def test_the_result_is_forced_in_exactly_where_the_call_closed(mm, vocab):
    C, E, R, RE = mm.TOOL_TOKENS
    model = Scripted(script_for(vocab, f"12*3={C}12*3{E}", f"12*3={C}12*3{E}{R}36{RE}36"), len(vocab))
    [row] = mm.generate_with_tool(model, [[0] + vocab.encode("12*3=")], vocab, max_len=32)
    assert vocab.decode(row[1:-1]) == f"12*3={C}12*3{E}{R}36{RE}36" and row[-1] == 0
    # a result the model would write otherwise (here '99') is overwritten by the calculator's own
    model = Scripted(script_for(vocab, f"12*3={C}12*3{E}{R}99{RE}99"), len(vocab))
    [row] = mm.generate_with_tool(model, [[0] + vocab.encode("12*3=")], vocab, max_len=32)
    assert vocab.decode(row[1:]).startswith(f"12*3={C}12*3{E}{R}36{RE}")


def test_an_answer_that_fills_the_block_still_gets_its_stop(mm, vocab):
    C, E, R, RE = mm.TOOL_TOKENS
    text = f"12*3={C}12*3{E}{R}36{RE}36"
    model = Scripted(script_for(vocab, f"12*3={C}12*3{E}", text), len(vocab))
    [row] = mm.generate_with_tool(model, [[0] + vocab.encode("12*3=")], vocab, max_len=len(text) + 1)
    assert row[-1] == 0 and mm.answer_of(vocab, row[6:]) == "36"  # the model read the whole block, then stopped
    [row] = mm.generate_with_tool(model, [[0] + vocab.encode("12*3=")], vocab, max_len=len(text))
    assert len(row) == len(text) + 1 and mm.answer_of(vocab, row[6:]) is None  # one token short: no stop


def test_a_malformed_call_gets_an_empty_result(mm, vocab):
    C, E, R, RE = mm.TOOL_TOKENS
    model = Scripted(script_for(vocab, f"ab={C}ab{E}", f"ab={C}ab{E}{R}{RE}ba"), len(vocab))
    [row] = mm.generate_with_tool(model, [[0] + vocab.encode("ab=")], vocab, max_len=32)
    assert vocab.decode(row[1:-1]) == f"ab={C}ab{E}{R}{RE}ba"


def test_with_the_tool_disabled_a_call_is_never_emitted(mm, vocab):
    eager = Scripted({}, len(vocab), default=vocab.stoi["1"], bias=vocab.stoi[mm.CALL])  # wants to call everywhere
    prompts = [[0] + vocab.encode(text) for text in ("12*3=", "emma=", "5+5=")]
    for row in mm.generate_with_tool(eager, prompts, vocab, max_len=16, tool=False):
        assert vocab.stoi[mm.CALL] not in row
    for row, prompt in zip(mm.generate_with_tool(eager, prompts, vocab, max_len=16, tool=True), prompts):
        calls = [t for t, token in enumerate(row) if token == vocab.stoi[mm.CALL]]
        assert calls == [len(prompt)]  # only where the answer starts, and once


def test_sampling_with_the_tool_is_deterministic_for_a_seed(mm, vocab):
    torch.manual_seed(0)
    config = mm.ModelConfig(block_size=24, vocab_size=len(vocab), n_layer=1, n_head=2, n_embd=16)
    model = mm.Transformer(config).eval()
    runs = [mm.generate_with_tool(model, [[0]] * 8, vocab, 24, top_k=5, generator=torch.Generator().manual_seed(3))
            for _ in range(2)]
    assert runs[0] == runs[1] and all(len(row) <= 25 for row in runs[0])


def test_samples_match_their_items_with_or_without_the_call(mm, tool_files, tmp_path):
    args = mm.parse_args(["-i", tool_files, "-o", str(tmp_path), "--tool", "on", "--max-steps", "10"])
    data = mm.load_data(args.input_file, args.seed)
    item = next(item for item in data.train.items if mm.CALL in item and mm.calculate(mm.read_query(item).call_text))
    query = mm.read_query(item)
    for written in (query.plain, f"{query.text}={mm.CALL}{query.call_text}{mm.CALL_END}"):
        model = Scripted(script_for(data.vocab, written, item), len(data.vocab))
        groups = mm.sample_groups(model, data, args, num=2, seed=0)
        assert [mm.read_query(sample).plain for sample in groups["in train"]] == [query.plain] * 2


class CallBias(torch.nn.Module):
    """A model with a constant added to its call token's logit."""

    def __init__(self, model, call, bias):
        super().__init__()
        self.model, self.call, self.bias = model, call, bias

    def forward(self, idx, targets=None):
        logits, loss = self.model(idx)
        logits[..., self.call] += self.bias
        return logits, loss


def test_the_policy_read_off_two_decodings_is_greedy_decoding_with_the_tool(mm, vocab):
    torch.manual_seed(1)
    config = mm.ModelConfig(block_size=32, vocab_size=len(vocab), n_layer=1, n_head=2, n_embd=16)
    model, call = mm.Transformer(config).eval(), vocab.stoi[mm.CALL]
    queries = [mm.Query(f"{a}*{b}", str(a * b)) for a in range(10, 40, 3) for b in (7, 71, 707)]
    prompts = [[0] + vocab.encode(q.text + "=") for q in queries]
    with torch.no_grad():  # a bias that makes the call token the most likely one after about half the prompts
        logits = model(mm.padded(prompts))[0][torch.arange(len(prompts)), [len(p) - 1 for p in prompts]]
        margin = logits[:, call] - torch.cat([logits[:, :call], logits[:, call + 1:]], dim=1).max(dim=1).values
    model = CallBias(model, call, -float(margin.median()) + 1e-4)
    answers = mm.answer_queries(model, vocab, 32, queries)
    direct = mm.generate_with_tool(model, prompts, vocab, 32)
    called = [a["called"] for a in answers]
    assert 0 < sum(called) < len(called)
    for answer, row, prompt in zip(answers, direct, prompts):
        own = mm.answer_of(vocab, row[len(prompt):])
        assert own == (answer["always"] if answer["called"] else answer["off"])
        assert (call in row) == answer["called"]


# --- the cost rule, the baselines, the threshold curve -------------------------------------------------


@pytest.mark.parametrize("p_alone, tool_right, cost, call", [
    (0.3, True, 0.5, True),  # gains 0.7 > 0.5
    (0.6, True, 0.5, False),  # gains 0.4 < 0.5
    (0.5, True, 0.5, False),  # gains exactly the cost: not worth it
    (0.999, True, 0.0, True),  # a free call that helps at all is taken
    (1.0, True, 0.0, False),  # ... but not when the model is sure
    (0.0, False, 0.0, False),  # a tool that is wrong (or fails) gains nothing, even for free
    (0.0, True, 1.0, False),  # a call that costs a whole correct answer is never worth it
])
def test_the_cost_rule(mm, p_alone, tool_right, cost, call):
    assert mm.call_label(p_alone, tool_right, cost) is call


@pytest.mark.parametrize("practice", ["on", "off"])
def test_call_labels_come_from_the_models_own_answers_not_the_type(mm, tool_files, tmp_path, monkeypatch, practice):
    """On hand-made probabilities (0.5 where none is given; the cost is 0.2): a computed item the
    model knows keeps no call, a memorised one it does not know gets one, names never do; every
    item that calls is practised too, however sure the model is (none with --tool-practice off)."""
    args = mm.parse_args(["-i", tool_files, "-o", str(tmp_path), "--tool", "on", "--max-steps", "10",
                          "--tool-cost", "0.2", "--tool-practice", practice])
    data = mm.load_data(args.input_file, args.seed)
    tool = mm.ToolTraining(args, data, tmp_path)
    by_type = {}  # the distinct training queries of each type
    for q, d in zip(tool.train_queries, data.train.domain.tolist()):
        by_type.setdefault(data.domains[d], {})[q.text] = q
    by_type = {name: list(queries.values()) for name, queries in by_type.items()}
    knows = {by_type["computed"][0].text: 0.9, by_type["memorised"][0].text: 0.1, by_type["memorised"][1].text: 0.95,
             by_type["memorised"][2].text: 0.7}
    monkeypatch.setattr(mm, "answer_probabilities",
                        lambda model, vocab, pairs: [knows.get(text, 0.5) for text, _ in pairs])
    items, domains, rows, stats = tool.cost_rule(model=None)
    calls = {q.text: item == q.call_form for q, item in zip(tool.train_queries, items)}
    known = [q for q in tool.train_queries if q.text == by_type["memorised"][2].text]  # calls, and knows it
    assert calls[known[0].text] and len(known) == 8  # a memorised fact: written 8 times
    delegated = [q.plain for q in tool.train_queries if calls[q.text]]
    assert items[len(tool.train_queries):] == (delegated if practice == "on" else [])  # the practice rows
    assert list(rows) == list(range(len(tool.train_queries), len(items))) and len(domains) == len(items)
    assert stats["labels"]["memorised"]["practice"] == (stats["labels"]["memorised"]["call"] if practice == "on" else 0)
    assert not calls[by_type["computed"][0].text] and calls[by_type["computed"][1].text]
    assert calls[by_type["memorised"][0].text] and not calls[by_type["memorised"][1].text]
    assert not any(calls[q.text] for q in by_type["names"])
    assert all(item in (q.call_form, q.plain) for q, item in zip(tool.train_queries, items))
    assert stats["labels"]["names"]["call"] == 0
    assert stats["labels"]["computed"]["call"] == stats["labels"]["computed"]["items"] - 1


def test_a_dream_mutant_changes_one_digit_and_keeps_every_operands_length(mm):
    generator = torch.Generator().manual_seed(0)
    for text in ["12+345", "7*89", "100*100", "5+5"] * 25:
        mutant = mm.mutate(text, generator)
        changed = [i for i, (a, b) in enumerate(zip(text, mutant)) if a != b]
        assert len(mutant) == len(text) and len(changed) == 1 and mutant[changed[0]].isdigit()
        assert all(len(str(int(n))) == len(n) for n in mutant.replace("*", "+").split("+"))  # no leading 0
    again = torch.Generator().manual_seed(0)
    assert [mm.mutate("12+345", again) for _ in range(5)] == \
        [mm.mutate("12+345", g) for g in [torch.Generator().manual_seed(0)] for _ in range(5)]


def test_a_dream_never_punishes_a_needed_call(mm, tool_files, tmp_path, monkeypatch):
    """Hand-made dreams at cost 0.2: a query the model answers right and surely gets a no-call
    target; one it is sure of but answers wrong gets none (no call target either: not worth it);
    unsure ones get call targets; a held-out query is never dreamed of."""
    args = mm.parse_args(["-i", tool_files, "-o", str(tmp_path), "--tool", "on", "--max-steps", "10",
                          "--tool-cost", "0.2", "--dream-size", "8"])
    data = mm.load_data(args.input_file, args.seed)
    tool = mm.ToolTraining(args, data, tmp_path)
    held_out = next(text for text in sorted(tool.held_out) if mm.calculate(text))
    dreamt = ["11+22", "30*40", "emma", held_out]  # what the model 'samples'
    own = {"11+22": "33", "30*40": "1300"}  # its own answers; anything else it gets wrong
    sure = {"11+22": 0.9, "30*40": 0.9}  # its probability of the right answer; 0 elsewhere

    def generate(model, prompts, vocab, max_len, tool=True, generator=None, **kwargs):
        if generator is not None:
            return [[0] + vocab.encode(dreamt[i % 4] + "=1") + [0] for i in range(len(prompts))]
        texts = [vocab.decode(p[1:-1]) for p in prompts]
        return [p + vocab.encode(own.get(t, "9")) + [0] for p, t in zip(prompts, texts)]
    monkeypatch.setattr(mm, "generate_with_tool", generate)
    monkeypatch.setattr(mm, "answer_probabilities", lambda model, vocab, pairs: [sure.get(t, 0.0) for t, _ in pairs])
    tool.round = 1
    items, domains, practice, stats = tool.dream(model=None)
    new = items[len(data.train.items):]
    practised = [items[row] for row in practice]
    no_call = [item for item in new if mm.CALL not in item and item not in practised]
    called = [mm.read_query(item).text for item in new if mm.CALL in item]
    assert no_call == ["11+22=33"] and "30*40" not in called and held_out not in called + no_call
    assert called and all(mm.calculate(text) is not None and text not in sure for text in called)
    assert stats["dream"]["call"] == len(called) and stats["dream"]["no_call"] == 1
    assert sorted(practised) == sorted(f"{text}={mm.calculate(text)}" for text in called)  # each call practised
    assert domains[len(data.train.items):] == [-1] * len(new)


def hand_items():
    """Four held-out answers: (p_call, called, off_correct, always_correct)."""
    rows = [(0.9, True, False, True), (0.6, True, True, True), (0.3, False, True, False), (0.1, False, False, False)]
    return [{"p_call": p, "called": c, "off_correct": o, "always_correct": a} for p, c, o, a in rows]


def test_the_baselines_on_a_hand_made_case(mm):
    chosen = mm.baselines(hand_items(), cost=0.1)
    assert chosen["policy"] == {"acc": 0.75, "calls": 0.5, "utility": pytest.approx(0.7)}
    assert chosen["never"]["acc"] == 0.5 and chosen["always"]["acc"] == 0.5 and chosen["always"]["calls"] == 1.0
    assert chosen["random"]["acc"] == 0.5 and chosen["random"]["calls"] == 0.5
    assert chosen["oracle"]["acc"] == 0.75 and chosen["oracle"]["calls"] == 0.5


def test_the_threshold_curve_calls_the_most_likely_first(mm):
    curve = mm.threshold_curve(hand_items())
    assert [p["threshold"] for p in curve] == [None, 0.9, 0.6, 0.3, 0.1]
    assert [(p["calls"], p["acc"]) for p in curve] == [(0.0, 0.5), (0.25, 0.75), (0.5, 0.75), (0.75, 0.5), (1.0, 0.5)]
    tied = [dict(item, p_call=0.5) for item in hand_items()]
    assert [(p["calls"], p["acc"]) for p in mm.threshold_curve(tied)] == [(0.0, 0.5), (1.0, 0.5)]


# --- a tool run end to end ----------------------------------------------------------------------------

RUN_FLAGS = [*TINY_MODEL_FLAGS, "--tool", "on", "--max-steps", "60", "--eval-interval", "20", "--dream-rounds", "1",
             "--dream-size", "40", "--tool-eval-items", "10", "--tool-cost", "0.2"]


def arguments(tool_files, work_dir, *extra):
    return ["-i", tool_files, "-o", str(work_dir), *RUN_FLAGS, *extra]


def train(mm, tool_files, work_dir, *extra):
    """A tool run in this process: a process of its own spends seconds importing torch (and its
    compiler, which the optimiser loads) before the first step. Only a run that is signalled needs
    one."""
    assert mm.main(arguments(tool_files, work_dir, *extra)) == 0


def records(work_dir):
    return [json.loads(line) for line in (work_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tool_run(mm, tool_files, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("run") / "out"
    train(mm, tool_files, work_dir)
    return work_dir


def test_every_evaluation_logs_the_tool_metrics(tool_run):
    types = ["computed", "memorised", "names"]
    logged = records(tool_run)
    assert [r["step"] for r in logged] == [0, 20, 40, 60]
    assert [r["tool/round"] for r in logged] == [0, 0, 1, 2]  # labels at step 30, a dream round at step 45
    for record in logged:
        for key in ("acc", "acc_off", "acc_always", "calls"):
            assert 0 <= record[f"tool/{key}"] <= 1
            assert all(0 <= record[f"tool/{key}/{name}"] <= 1 for name in types)
        assert record["tool/acc_oracle"] >= max(record["tool/acc_off"], record["tool/acc"] - 1e-9)
        assert record["tool/utility"] == pytest.approx(record["tool/acc"] - 0.2 * record["tool/calls"])


def test_the_run_writes_every_held_out_answer_and_each_round(tool_run):
    evaluation = json.loads((tool_run / "tool_eval.json").read_text())
    assert evaluation["step"] == 60 and evaluation["round"] == 2 and evaluation["cost"] == 0.2
    assert evaluation["types"] == ["computed", "memorised", "names"]
    items = evaluation["items"]  # one list per key
    assert set(items) == {"type", "query", "answer", "p_call", "called", "off", "always", "off_correct",
                          "always_correct"}
    assert all(len(column) == 30 for column in items.values()) and set(items["type"]) == set(evaluation["types"])
    assert set(evaluation["baselines"]) == {"policy", "never", "always", "random", "oracle"}
    assert evaluation["thresholds"][0]["calls"] == 0 and evaluation["thresholds"][-1]["calls"] == 1
    rounds = json.loads((tool_run / "tool_rounds.json").read_text())
    assert [(r["round"], r["step"], r["kind"]) for r in rounds["rounds"]] == [(1, 30, "labels"), (2, 45, "dream")]
    assert set(rounds["rounds"][0]["labels"]) == set(evaluation["types"])
    assert rounds["rounds"][1]["dream"]["call"] + rounds["rounds"][1]["dream"]["no_call"] <= 40
    assert rounds["now"] == evaluation["summary"]


def test_a_tool_run_stopped_after_its_labels_resumes_exactly(mm, variant, tool_files, tmp_path):
    """SIGTERM once the labels are made: the checkpoint holds the labelled training rows, so
    --resume ends with the metrics and files of an uninterrupted run. The stopped run is a process
    (with this process's torch threads, for the same arithmetic); the others train here."""
    flags = ["--max-steps", "400", "--eval-interval", "50"]  # labels at step 200, the dream at 300
    process = subprocess.Popen([sys.executable, str(variant), *arguments(tool_files, tmp_path / "cut", *flags)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(r["step"] >= 250 for r in safe_records(tmp_path / "cut")):
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    stopped_at = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["step"]
    assert 250 <= stopped_at < 400
    train(mm, tool_files, tmp_path / "cut", *flags, "--resume")
    train(mm, tool_files, tmp_path / "whole", *flags)
    whole, cut = records(tmp_path / "whole"), records(tmp_path / "cut")
    assert [strip_timing(r) for r in cut] == [strip_timing(r) for r in whole]
    for name in ("tool_eval.json", "tool_rounds.json"):
        assert json.loads((tmp_path / "cut" / name).read_text()) == json.loads((tmp_path / "whole" / name).read_text())


def safe_records(work_dir):
    try:
        return records(work_dir)
    except (OSError, ValueError):  # not written yet, or caught mid-line
        return []


def strip_timing(record):
    return {key: value for key, value in record.items() if key not in ("tokens_per_s", "step_ms")}


@pytest.mark.parametrize("flags, message", [
    (["--tool-warmup", "0"], "--tool-warmup must be above 0"),
    (["--tool-cost", "-1"], "--tool-cost must not be negative"),
    (["--dream-rounds", "-1"], "--dream-rounds must not be negative"),
    (["--dream-size", "0"], "--dream-size must be positive"),
    (["--max-steps", "-1"], "--tool on needs --max-steps"),
    (["--max-steps", "3", "--dream-rounds", "5"], "too few steps after the warm-up"),
    (["--tool-cost", "1.5"], "--tool-cost must be at most 1"),
    (["--tool", "off"], "--tool-cost needs --tool on: without the tool nothing calls"),  # the run flags set it
    (["--tool-cost", "nan"], "--tool-cost must be a finite number, not nan"),
])
def test_bad_tool_flags_are_one_line(mm, tool_files, tmp_path, capsys, flags, message):
    # the variant's main in this process, for the exit status the command would have; the real
    # command line's one-line error is the next test's
    try:
        status = mm.main(arguments(tool_files, tmp_path / "out", *flags))
    except SystemExit as exit:
        status = exit.code
    error = capsys.readouterr().err
    assert status != 0 and message in error and len(error.strip().splitlines()) == 1


def test_tool_on_needs_data_written_with_calls(variant, names_file, tmp_path):
    result = subprocess.run([sys.executable, str(variant), "-i", str(names_file), "-o", str(tmp_path / "out"),
                             *RUN_FLAGS], capture_output=True, text=True)
    assert result.returncode == 1 and "--tool on needs data written with tool calls" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
