"""
makemore: a character-level language model that makes more of what you give it.

Give it a file with one item per line (names, sums, lines of code) and it learns to produce
more items like them. This file is the spine of the lab: every experiment in the series is a
patch against it, so it is written to be read top to bottom:

    config -> models -> sampling -> data -> evaluation -> training loop -> command line

It behaves like Andrej Karpathy's makemore (the same flags, models, data format, optimiser and
evaluation rhythm) and adds what a lab needs: metrics.jsonl at every evaluation, exact resume,
per-domain test losses for several input files, and one-line errors for bad input.

    python makemore.py -i names.txt -o out            # train the default transformer
    python makemore.py -i names.txt -o out --sample-only
"""

import argparse
import json
import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from importlib.util import find_spec
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

# -----------------------------------------------------------------------------
# config


@dataclass
class ModelConfig:
    """Each field but the first two is set by the flag of the same name (--n-embd -> n_embd)."""
    block_size: int = None  # longest item + 1: the model sees <start> + the item
    vocab_size: int = None  # distinct characters + 1: token 0 is both <start> and <stop>
    n_layer: int = 4
    n_embd: int = 64
    n_embd2: int = 64  # hidden width of the MLP, RNN and BoW models
    n_head: int = 4


# -----------------------------------------------------------------------------
# models: each maps token indices (B, T) to logits (B, T, vocab_size), and to a loss when
# given targets. A target of -1 marks a position after the end of an item: it is ignored.


def lm_loss(logits, targets):
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which each position attends only to itself and the past."""

    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # query, key, value at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_size): the heads attend independently
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        # softmax(q k^T / sqrt(head_size)) v with the future masked out, in one fused call
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class FeedForward(nn.Module):
    """The position-wise MLP of a transformer block: widen 4x, GELU, project back."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))  # GPT-2's tanh GELU


class Block(nn.Module):
    """A pre-LayerNorm transformer block: communicate (attention), then compute (MLP)."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = FeedForward(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class Transformer(nn.Module):
    """A GPT-2-style decoder: token + position embeddings, n_layer blocks, a linear read-out."""

    def __init__(self, config):
        super().__init__()
        self.block_size = config.block_size
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, idx, targets=None):
        T = idx.size(1)
        assert T <= self.block_size, f"sequence of {T} tokens is longer than block_size {self.block_size}"
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else lm_loss(logits, targets)
        return logits, loss


class CausalBoW(nn.Module):
    """Each position becomes the plain average of itself and every position before it:
    attention with all weights equal, so nothing about *which* past token matters is learned."""

    def __init__(self, config):
        super().__init__()
        past = torch.tril(torch.ones(config.block_size, config.block_size))
        self.register_buffer("average", past / past.sum(dim=1, keepdim=True), persistent=False)

    def forward(self, x):
        T = x.size(1)
        return self.average[:T, :T] @ x


class BoWBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.cbow = CausalBoW(config)
        self.c_fc = nn.Linear(config.n_embd, config.n_embd2)
        self.c_proj = nn.Linear(config.n_embd2, config.n_embd)

    def forward(self, x):
        x = x + self.cbow(x)
        x = x + self.c_proj(torch.tanh(self.c_fc(x)))
        return x


class BoW(nn.Module):
    """The transformer with its attention replaced by a running average of the past."""

    def __init__(self, config):
        super().__init__()
        self.block_size = config.block_size
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.context_block = BoWBlock(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size)

    def forward(self, idx, targets=None):
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.context_block(self.wte(idx) + self.wpe(pos))
        logits = self.lm_head(x)
        loss = None if targets is None else lm_loss(logits, targets)
        return logits, loss


class RNNCell(nn.Module):
    """The vanilla (Elman) cell: h_t = tanh(W [x_t, h_{t-1}] + b)."""

    def __init__(self, config):
        super().__init__()
        self.xh_to_h = nn.Linear(config.n_embd + config.n_embd2, config.n_embd2)

    def forward(self, xt, hprev):
        return torch.tanh(self.xh_to_h(torch.cat([xt, hprev], dim=1)))


class GRUCell(nn.Module):
    """The gated recurrent unit: a reset gate r chooses how much of the past feeds the proposal,
    an update gate z how much of the state the proposal replaces."""

    def __init__(self, config):
        super().__init__()
        width = config.n_embd + config.n_embd2
        self.xh_to_z = nn.Linear(width, config.n_embd2)
        self.xh_to_r = nn.Linear(width, config.n_embd2)
        self.xh_to_hbar = nn.Linear(width, config.n_embd2)

    def forward(self, xt, hprev):
        xh = torch.cat([xt, hprev], dim=1)
        r = torch.sigmoid(self.xh_to_r(xh))
        hbar = torch.tanh(self.xh_to_hbar(torch.cat([xt, r * hprev], dim=1)))
        z = torch.sigmoid(self.xh_to_z(xh))
        return (1 - z) * hprev + z * hbar


class RNN(nn.Module):
    """A recurrent network unrolled over the sequence from a learned start state."""

    def __init__(self, config, cell_type):
        super().__init__()
        self.block_size = config.block_size
        self.start = nn.Parameter(torch.zeros(1, config.n_embd2))
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.cell = {"rnn": RNNCell, "gru": GRUCell}[cell_type](config)
        self.lm_head = nn.Linear(config.n_embd2, config.vocab_size)

    def forward(self, idx, targets=None):
        emb = self.wte(idx)
        h = self.start.expand(idx.size(0), -1)
        hiddens = []
        for t in range(idx.size(1)):
            h = self.cell(emb[:, t, :], h)
            hiddens.append(h)
        logits = self.lm_head(torch.stack(hiddens, dim=1))
        loss = None if targets is None else lm_loss(logits, targets)
        return logits, loss


class MLP(nn.Module):
    """Bengio et al. (2003): concatenate the embeddings of the last block_size tokens and read
    the next token off one hidden layer. Positions before the start of the item hold an extra
    'blank' token (index vocab_size), so the window always has the same width."""

    def __init__(self, config):
        super().__init__()
        self.block_size = config.block_size
        self.blank = config.vocab_size
        self.wte = nn.Embedding(config.vocab_size + 1, config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(self.block_size * config.n_embd, config.n_embd2),
            nn.Tanh(),
            nn.Linear(config.n_embd2, config.vocab_size),
        )

    def forward(self, idx, targets=None):
        B, T = idx.size()
        blanks = torch.full((B, self.block_size - 1), self.blank, dtype=idx.dtype, device=idx.device)
        # window t holds tokens t-block_size+1 .. t; flipped so the newest token comes first
        windows = torch.cat([blanks, idx], dim=1).unfold(1, self.block_size, 1).flip(-1)
        logits = self.mlp(self.wte(windows).view(B, T, -1))
        loss = None if targets is None else lm_loss(logits, targets)
        return logits, loss


class Bigram(nn.Module):
    """A table of next-token logits indexed by the current token: counting, learned by gradient."""

    def __init__(self, config):
        super().__init__()
        self.block_size = 1
        self.logits = nn.Parameter(torch.zeros(config.vocab_size, config.vocab_size))

    def forward(self, idx, targets=None):
        logits = self.logits[idx]
        loss = None if targets is None else lm_loss(logits, targets)
        return logits, loss


MODEL_TYPES = ["bigram", "mlp", "rnn", "gru", "bow", "transformer"]


def create_model(model_type, config):
    if model_type == "transformer":
        return Transformer(config)
    if model_type == "bigram":
        return Bigram(config)
    if model_type == "mlp":
        return MLP(config)
    if model_type in ("rnn", "gru"):
        return RNN(config, cell_type=model_type)
    if model_type == "bow":
        return BoW(config)
    raise ValueError(f"unknown model type {model_type!r}")


# -----------------------------------------------------------------------------
# sampling


@torch.no_grad()
def generate(model, idx, max_new_tokens, top_k=None, generator=None):
    """Extend each row of idx by sampling one token at a time from the model's distribution."""
    for _ in range(max_new_tokens):
        context = idx[:, -model.block_size:]  # the bigram sees 1 token, the others a full block
        logits, _ = model(context)
        logits = logits[:, -1, :]
        if top_k is not None:
            kth_best = torch.topk(logits, top_k).values[:, [-1]]
            logits = logits.masked_fill(logits < kth_best, float("-inf"))
        next_token = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1, generator=generator)
        idx = torch.cat([idx, next_token], dim=1)
        if (idx[:, 1:] == 0).any(dim=1).all():  # every row has emitted <stop>
            break
    return idx


# -----------------------------------------------------------------------------
# data


class UsageError(Exception):
    """Bad input from the user: reported as one line and a non-zero exit, never a traceback."""


class Vocabulary:
    """The sorted distinct characters of the data; character i is token i + 1, token 0 is
    <start> at the input side and <stop> at the target side."""

    def __init__(self, chars):
        self.chars = chars
        self.stoi = {ch: i + 1 for i, ch in enumerate(chars)}

    def __len__(self):
        return len(self.chars) + 1

    def encode(self, text):
        return [self.stoi[ch] for ch in text]

    def decode(self, tokens):
        return "".join(self.chars[t - 1] for t in tokens)


@dataclass
class Split:
    """Items encoded for teacher forcing: x = <start> + item, y = item + <stop>, then -1s.
    domain[i] is the index of the input file that row i came from."""

    items: list
    x: torch.Tensor
    y: torch.Tensor
    domain: torch.Tensor

    def __len__(self):
        return len(self.items)


def read_items(path):
    """One item per line, stripped; blank lines dropped."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"input file {str(path)!r} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"input file {str(path)!r} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not text:
        raise UsageError(f"input file {str(path)!r} is empty")
    items = [line.strip() for line in text.split("\n")]
    items = [item for item in items if item]
    if not items:
        raise UsageError(f"input file {str(path)!r} has no usable lines (every line is blank)")
    return items


def encode_split(items, domains, vocab, block_size):
    x = torch.zeros((len(items), block_size), dtype=torch.long)
    y = torch.full((len(items), block_size), -1, dtype=torch.long)
    for row, item in enumerate(items):
        tokens = torch.tensor(vocab.encode(item), dtype=torch.long)
        x[row, 1:1 + len(tokens)] = tokens
        y[row, :len(tokens)] = tokens
        y[row, len(tokens)] = 0  # <stop>
    return Split(items, x, y, torch.tensor(domains, dtype=torch.long))


@dataclass
class Data:
    vocab: Vocabulary
    block_size: int
    domains: list  # one name per input file: the file's stem
    train: Split
    test: Split


def load_data(input_files, seed):
    """Read each input file as one domain and split each on its own: the last
    min(1000, 10%) items of a seeded permutation are its test items."""
    paths = [Path(p) for p in input_files.split(",")]
    domains = [p.stem for p in paths]
    if len(set(domains)) < len(domains):
        raise UsageError(f"input files must have distinct stems (their domain names): {input_files!r}")
    permutation = torch.Generator().manual_seed(seed)
    train, test = ([], []), ([], [])  # (items, domain index) of each split
    for index, path in enumerate(paths):
        items = read_items(path)
        n_test = min(1000, int(len(items) * 0.1))
        if n_test == 0:
            raise UsageError(f"input file {str(path)!r} has {len(items)} items: at least 10 are needed "
                             "so that 10% of them can be held out for testing")
        order = torch.randperm(len(items), generator=permutation).tolist()
        for split, rows in ((train, order[:-n_test]), (test, order[-n_test:])):
            split[0].extend(items[i] for i in rows)
            split[1].extend([index] * len(rows))
    all_items = train[0] + test[0]
    vocab = Vocabulary(sorted(set("".join(all_items))))
    block_size = max(len(item) for item in all_items) + 1
    return Data(vocab, block_size, domains,
                encode_split(*train, vocab, block_size), encode_split(*test, vocab, block_size))


class BatchSampler:
    """Random training rows drawn with replacement, as makemore's infinite DataLoader does, but
    gathered from in-memory tensors: no per-item Python collation, no worker processes.

    Each batch is cut after its last target (the end of its longest item). This is exact, not an
    approximation: the positions cut hold only padding, whose targets are -1 (ignored by the loss),
    and every model here is causal, so no position before them ever reads them. The loss and its
    gradients are those of the full block; only the work on padding is saved."""

    def __init__(self, split, batch_size, seed, device):
        self.x, self.y = split.x.to(device), split.y.to(device)
        self.targets_per_row = (split.y != -1).sum(dim=1).to(device)
        self.width_per_row = used_widths(split.y).to(device)
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def next(self):
        rows = torch.randint(len(self.x), (self.batch_size,), generator=self.generator).to(self.x.device)
        width = int(self.width_per_row[rows].max())
        return self.x[rows, :width], self.y[rows, :width], self.targets_per_row[rows].sum()


def used_widths(y):
    """Per row of targets, one past its last target: every position after it is padding."""
    has_target = y != -1
    return has_target.size(1) - has_target.flip(1).int().argmax(dim=1)


# -----------------------------------------------------------------------------
# evaluation

EVAL_BATCH_SIZE = 100  # makemore evaluates 10 batches of 100 items


@torch.no_grad()
def mean_loss(model, x, y, device):
    """Next-token cross-entropy averaged over every target token of the rows given."""
    total, count = 0.0, 0
    for start in range(0, len(x), EVAL_BATCH_SIZE):
        yb = y[start:start + EVAL_BATCH_SIZE]
        width = int(used_widths(yb).max())  # cut after the last target, as BatchSampler does
        xb, yb = x[start:start + EVAL_BATCH_SIZE, :width].to(device), yb[:, :width].to(device)
        logits, _ = model(xb)
        total += F.cross_entropy(logits.view(-1, logits.size(-1)), yb.reshape(-1),
                                 ignore_index=-1, reduction="sum").item()
        count += (yb != -1).sum().item()
    return total / count


def evaluation_rows(data, eval_batches, seed):
    """The rows every evaluation scores, fixed once so that curves are not noisy from resampling:
    a seeded sample of the training items, and up to the same number of each domain's test items."""
    n = eval_batches * EVAL_BATCH_SIZE
    train_rows = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:n]
    test_rows = {name: (data.test.domain == d).nonzero().squeeze(1)[:n] for d, name in enumerate(data.domains)}
    return train_rows, test_rows


def evaluate(model, data, rows, device):
    train_rows, test_rows = rows
    model.eval()  # the models here have no dropout, but patches may act differently at eval
    record = {"train_loss": mean_loss(model, data.train.x[train_rows], data.train.y[train_rows], device)}
    all_test = torch.cat(list(test_rows.values()))
    record["test_loss"] = mean_loss(model, data.test.x[all_test], data.test.y[all_test], device)
    if len(data.domains) > 1:
        for name, r in test_rows.items():
            record[f"test_loss/{name}"] = mean_loss(model, data.test.x[r], data.test.y[r], device)
    model.train()
    return record


def sample_groups(model, data, args, num, seed):
    """Sample num items and sort them into those seen in training, in the test set, and new:
    {"in train": [...], "in test": [...], "new": [...]}."""
    prompt = [0] + encode_prompt(data.vocab, args.prompt)
    start = torch.tensor([prompt] * num, dtype=torch.long, device=args.device)
    model.eval()
    rows = generate(model, start, data.block_size - len(prompt) + 1, top_k=args.top_k if args.top_k > 0 else None,
                    generator=torch.Generator(device=args.device).manual_seed(seed))
    model.train()
    samples = []
    for row in rows[:, 1:].tolist():
        tokens = row[:row.index(0)] if 0 in row else row  # cut at <stop>
        samples.append(data.vocab.decode(tokens))
    seen = {"in train": set(data.train.items), "in test": set(data.test.items)}
    groups = {"in train": [], "in test": [], "new": []}
    for sample in samples:
        group = next((name for name, items in seen.items() if sample in items), "new")
        groups[group].append(sample)
    return groups


def print_samples(model, data, args, num, seed):
    print("-" * 80)
    for name, group in sample_groups(model, data, args, num, seed).items():
        print(f"{len(group)} samples that are {name}:")
        for sample in group:
            print(sample)
    print("-" * 80)


def encode_prompt(vocab, prompt):
    unknown = sorted(set(prompt) - set(vocab.chars))
    if unknown:
        raise UsageError(f"--prompt has characters the model does not know: {''.join(unknown)!r} "
                         f"(its vocabulary is {''.join(vocab.chars)!r})")
    return vocab.encode(prompt)


# -----------------------------------------------------------------------------
# checkpoints: model.pt holds the best weights so far (what --sample-only loads);
# checkpoint.pt holds everything needed to continue training exactly (what --resume loads).


def save_atomically(obj, path):
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint behind
    finally:
        tmp.unlink(missing_ok=True)  # nor a half-written one beside it


def load_checkpoint(path, vocab):
    if not path.is_file():
        raise UsageError(f"no checkpoint at {str(path)!r}: nothing to resume or sample from")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["chars"] != vocab.chars:
        raise UsageError(f"vocabulary clash: {str(path)!r} was trained on characters "
                         f"{''.join(state['chars'])!r} but the input has {''.join(vocab.chars)!r}")
    return state


def restore_weights(model, state, path):
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        raise UsageError(f"{str(path)!r} holds a different model: check --type and the size flags") from None


class MetricsLog:
    """metrics.jsonl: one JSON object per evaluation. On resume, records from after the
    checkpoint are dropped: training repeats those steps and writes them again."""

    def __init__(self, path, keep_until_step=None):
        self.path = path
        records = []
        if keep_until_step is not None and path.exists():
            records = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= keep_until_step]
        path.write_text("".join(line + "\n" for line in records))

    def write(self, record):
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


class StopRequest:
    """Ctrl-C (or SIGTERM) asks the loop to stop at the next step boundary, so that the state
    saved is consistent and --resume continues exactly. Only a second Ctrl-C, which a person
    types, aborts at once: SIGTERM comes from programs (a runner, a dying parent, a scheduler),
    which may send it more than once, and always means "checkpoint and stop"."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = {sig: signal.signal(sig, self.request) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def request(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not self.requested:
            print("\nstopping after this step; a checkpoint will be saved (Ctrl-C again to abort)", file=sys.stderr)
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            # once stopping, a late SIGTERM finds the process on its way out: it is ignored
            signal.signal(sig, signal.SIG_IGN if self.requested and sig == signal.SIGTERM else handler)


# -----------------------------------------------------------------------------
# training


def tensorboard_writer(work_dir):
    """TensorBoard logging when tensorboard is installed; never a hard dependency."""
    if find_spec("tensorboard") is None:
        return None
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(log_dir=str(work_dir))


def train(args, model, data, work_dir):
    # makemore's AdamW settings; fused=True runs the same update as one kernel instead of a
    # Python loop over parameter tensors, which on a CPU saves about a tenth of a step
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay,
                                  betas=(0.9, 0.99), eps=1e-8, fused=True)
    batches = BatchSampler(data.train, args.batch_size, args.seed, args.device)
    rows = evaluation_rows(data, args.eval_batches, args.seed)
    checkpoint_path = work_dir / "checkpoint.pt"
    step, best_test_loss = 0, None
    if args.resume:
        state = load_checkpoint(checkpoint_path, data.vocab)
        restore_weights(model, state, checkpoint_path)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        batches.generator.set_state(state["batch_rng"])
        step, best_test_loss = state["step"], state["best_test_loss"]
        print(f"resuming from step {step}")
    elif checkpoint_path.exists():
        raise UsageError(f"{str(work_dir)!r} already holds a training run: continue it with --resume "
                         "or choose another --work-dir")
    metrics = MetricsLog(work_dir / "metrics.jsonl", keep_until_step=step if args.resume else None)
    writer = tensorboard_writer(work_dir)

    def save_checkpoint():
        save_atomically({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                         "best_test_loss": best_test_loss, "torch_rng": torch.get_rng_state(),
                         "batch_rng": batches.generator.get_state(), "chars": data.vocab.chars,
                         "type": args.type, "config": asdict(model_config(args, data))}, checkpoint_path)

    def evaluate_and_log(step_ms, tokens_per_s):
        nonlocal best_test_loss
        record = {"step": step, **evaluate(model, data, rows, args.device),
                  "tokens_per_s": tokens_per_s, "step_ms": step_ms}
        metrics.write(record)
        if writer is not None:
            for key, value in record.items():
                if value is not None:
                    writer.add_scalar(key, value, step)
            writer.flush()
        print(f"step {step} train loss: {record['train_loss']:.4f} test loss: {record['test_loss']:.4f}")
        if best_test_loss is None or record["test_loss"] < best_test_loss:
            best_test_loss = record["test_loss"]
            print(f"test loss {best_test_loss:.4f} is the best so far, saving model to {work_dir / 'model.pt'}")
            save_atomically({"model": model.state_dict(), "chars": data.vocab.chars}, work_dir / "model.pt")
        save_checkpoint()  # after metrics.jsonl, so a crash in between at worst repeats an evaluation

    if not args.resume:
        evaluate_and_log(step_ms=None, tokens_per_s=None)  # the loss at initialisation
    train_time, train_tokens, steps_timed = 0.0, 0, 0
    with StopRequest() as stop, writer or nullcontext():
        while args.max_steps < 0 or step < args.max_steps:
            if stop.requested:
                save_checkpoint()
                print(f"stopped at step {step}: checkpoint saved; continue with --resume", file=sys.stderr)
                return 130
            t0 = time.perf_counter()
            x, y, n_targets = batches.next()
            _, loss = model(x, y)
            model.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()  # so that the step time below is real
            t1 = time.perf_counter()
            step += 1
            train_time += t1 - t0
            train_tokens += n_targets
            steps_timed += 1
            if step % 10 == 0:
                print(f"step {step} | loss {loss.item():.4f} | step time {(t1 - t0) * 1000:.2f}ms")
            if step % args.eval_interval == 0 or step == args.max_steps:
                evaluate_and_log(step_ms=1000 * train_time / steps_timed,
                                 tokens_per_s=float(train_tokens) / train_time)
                train_time, train_tokens, steps_timed = 0.0, 0, 0
            if args.sample_interval > 0 and step % args.sample_interval == 0:
                print_samples(model, data, args, num=10, seed=args.seed + step)
    return 0


def model_config(args, data):
    """Every field from the flag of the same name, so that a patch adds a model knob as a field
    and a flag, and nothing in between; the data decides the vocabulary and the block size."""
    knobs = {f.name: getattr(args, f.name) for f in fields(ModelConfig) if hasattr(args, f.name)}
    return ModelConfig(**knobs, vocab_size=len(data.vocab), block_size=data.block_size)


def parameter_counts(model):
    """All the weights, and those one token's forward pass uses: here, all of them."""
    total = sum(p.numel() for p in model.parameters())
    return {"total": total, "active": total}


def run(args):
    torch.manual_seed(args.seed)  # model initialisation draws from the global generator
    data = load_data(args.input_file, args.seed)
    encode_prompt(data.vocab, args.prompt)  # a bad prompt fails now, not after hours of training
    print(f"{sum(map(len, (data.train, data.test)))} items in {len(data.domains)} domain(s) "
          f"({', '.join(data.domains)}): {len(data.train)} train, {len(data.test)} test")
    print(f"vocabulary of {len(data.vocab)} tokens: <start/stop> + {''.join(data.vocab.chars)!r}; "
          f"block size {data.block_size}")
    model = create_model(args.type, model_config(args, data)).to(args.device)
    counts = parameter_counts(model)
    print(f"model #params: {counts['total']}" +
          (f" ({counts['active']} used per token)" if counts["active"] != counts["total"] else ""))
    work_dir = Path(args.work_dir)
    if args.sample_only:
        path = work_dir / "model.pt"
        restore_weights(model, load_checkpoint(path, data.vocab), path)
        print_samples(model, data, args, num=50, seed=args.seed)
        return 0
    work_dir.mkdir(parents=True, exist_ok=True)
    return train(args, model, data, work_dir)


# -----------------------------------------------------------------------------
# command line


class ArgumentParser(argparse.ArgumentParser):
    """argparse's, with every error on one line."""

    def error(self, message):
        self.exit(2, f"makemore: error: {message} (see --help)\n")


def parse_args(argv=None):
    parser = ArgumentParser(description="makemore: a character-level language model")
    # system/input/output
    parser.add_argument("--input-file", "-i", type=str, default="names.txt",
                        help="one item per line; several comma-separated files are several domains")
    parser.add_argument("--work-dir", "-o", type=str, default="out", help="output working directory")
    parser.add_argument("--resume", action="store_true",
                        help="continue training exactly where the checkpoint in --work-dir stopped")
    parser.add_argument("--sample-only", action="store_true", help="just sample from the model and quit")
    parser.add_argument("--num-workers", "-n", type=int, default=4,
                        help="accepted for makemore compatibility; batches come from in-memory tensors, "
                             "so no worker processes are used")
    parser.add_argument("--max-steps", type=int, default=-1, help="max number of optimization steps (-1 = forever)")
    parser.add_argument("--device", type=str, default="cpu", help="device to use: cpu|cuda|cuda:2|mps")
    parser.add_argument("--seed", type=int, default=3407, help="seed")
    # sampling
    parser.add_argument("--top-k", type=int, default=-1, help="top-k for sampling, -1 means no top-k")
    parser.add_argument("--prompt", type=str, default="", help="start every sample with this text")
    # model
    parser.add_argument("--type", type=str, default="transformer", choices=MODEL_TYPES, help="model class type")
    parser.add_argument("--n-layer", type=int, default=4, help="number of layers")
    parser.add_argument("--n-head", type=int, default=4, help="number of heads (in a transformer)")
    parser.add_argument("--n-embd", type=int, default=64, help="number of feature channels in the model")
    parser.add_argument("--n-embd2", type=int, default=64, help="number of feature channels elsewhere in the model")
    # optimization
    parser.add_argument("--batch-size", "-b", type=int, default=32, help="batch size during optimization")
    parser.add_argument("--learning-rate", "-l", type=float, default=5e-4, help="learning rate")
    parser.add_argument("--weight-decay", "-w", type=float, default=0.01, help="weight decay")
    # evaluation rhythm
    parser.add_argument("--eval-interval", type=int, default=500, help="evaluate and checkpoint every N steps")
    parser.add_argument("--sample-interval", type=int, default=200, help="print samples every N steps (0 = never)")
    parser.add_argument("--eval-batches", type=int, default=10,
                        help=f"batches of {EVAL_BATCH_SIZE} items scored per split at each evaluation")
    args = parser.parse_args(argv)
    check_values(parser, args)
    return args


def check_values(parser, args):
    """What the flags' types let through but no run can use: refused now, in one line, before
    any data is read or any file written."""
    def flag(name):
        return "--" + name.replace("_", "-")
    for name in ("n_layer", "n_head", "n_embd", "n_embd2", "batch_size", "learning_rate", "eval_interval",
                 "eval_batches"):
        if getattr(args, name) <= 0:
            parser.error(f"{flag(name)} must be positive")
    for name in ("weight_decay", "sample_interval", "num_workers"):
        if getattr(args, name) < 0:
            parser.error(f"{flag(name)} must not be negative")
    for name in ("max_steps", "top_k"):
        if getattr(args, name) == 0 or getattr(args, name) < -1:
            parser.error(f"{flag(name)} must be positive, or -1 for no limit")
    if args.type == "transformer" and args.n_embd % args.n_head:
        parser.error(f"--n-embd {args.n_embd} must be a multiple of --n-head {args.n_head}: "
                     "each head gets an equal share of the channels")
    problem = device_problem(args.device)
    if problem:
        parser.error(problem)
    work_dir = Path(args.work_dir)
    if work_dir.exists() and not work_dir.is_dir():
        parser.error(f"--work-dir {args.work_dir!r} is a file, not a folder")
    if args.resume and not (work_dir / "checkpoint.pt").is_file():
        parser.error(f"--resume: no checkpoint in {args.work_dir!r} to resume from")


def device_problem(name):
    """Why --device cannot be used on this machine, or None."""
    try:
        device = torch.device(name)
    except RuntimeError:
        return f"--device {name!r} is not a device (cpu, cuda, cuda:N or mps)"
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if device.type not in available:
        return f"--device {name!r}: only cpu, cuda and mps are supported"
    if not available[device.type]:
        return f"--device {name!r}: this machine or this build of torch has no {device.type}"
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        return f"--device {name!r}: there are only {torch.cuda.device_count()} CUDA devices"
    return None


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except UsageError as error:
        print(f"makemore: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint saved still stands
        print("makemore: aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
