"""Read the label out first, then fine-tune (LP-FT, Kumar et al., ICLR 2022), on cached frozen activations.

Why: the label is one token among a CoT's 50–130, and the LM head's four label rows start aimed at random, so SFT
as the loop ran it stayed at chance while a linear read-out of the same frozen model is well above it. Here:

1. **Cache** (one forward pass per pair): the residual stream entering decoder layer ``L - n`` for every token of
   each pair's deployed prompt (the one ``label_probs`` scores). The lower ``L - n`` layers never run again.
2. **Read-out** (convex, seconds): a class-balanced logistic regression on the final-norm hidden state at the last
   position, without intercept, written into the four label rows of an untied LM head (plus one shared row, which
   leaves the four-way softmax exactly the fit's and keeps the labels' mass against the rest of the vocabulary).
3. **Fine-tune** (``train_layers`` = n > 0): the top n layers, the final norm and the four label rows, with
   cross-entropy on the label position only (class-weighted), ``transformers.Trainer`` over the cached
   activations in length-grouped batches: an epoch costs n/L of a forward-and-backward over the data.

The result is a standard causal LM folder (safetensors, untied head): hf, vLLM and any OpenAI-compatible server
read the same four probabilities from it, and TRL's SFT/DPO/GRPO start from it unchanged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from taosr1.labels import LEVELS
from taosr1.obs import get_logger, log_event

log = get_logger(__name__)


@dataclass
class ReadoutConfig:
    """Settings of one read-out (+ fine-tune) run; defaults fit SmolLM2-135M on 2 CPU cores."""

    keep_layers: int = 0  # cut the model after this many decoder layers first (0 = keep them all)
    train_layers: int = 4  # n: the top n decoder layers are fine-tuned after the read-out (0 = read-out only)
    epochs: float = 3.0
    learning_rate: float = 1e-4
    batch_size: int = 16
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    c_grid: tuple[float, ...] = (0.03, 0.1, 0.3)  # inverse L2 strength of the read-out, picked on dev
    curve_every: int = 2048  # examples between two points of the learning curve (0 = none)
    cache_batch: int = 32
    seed: int = 0
    threads: int = 0  # torch threads (0: torch's default)
    bf16: bool = False  # compute in bfloat16 autocast (caching, features, fine-tune); weights and cache stay fp32
    report_to: tuple[str, ...] = ()


@dataclass
class CurvePoint:
    examples: int
    macro_f1: float
    accuracy: float
    spearman: float
    loss: float | None = None


@dataclass
class ReadoutResult:
    """What a run measured: the chosen C, the read-out's dev metrics, the fine-tune's curve and timings."""

    c: float
    readout_dev: dict[str, float]
    curve: list[CurvePoint] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    tokens_per_example: float = 0.0
    examples_per_s: float = 0.0
    dev_probs: Any = None  # the final model's four probabilities on the dev pairs (level order 4..1)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "dev_probs"}


def dev_metrics(gold: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Arg-max macro-F1 and accuracy, and Spearman of the expected level with the gold level."""
    from scipy.stats import spearmanr

    from taosr1.evaluation.metrics import classification_metrics

    pred = np.array(LEVELS)[probs.argmax(axis=1)]
    m = classification_metrics(gold, pred)
    expected = probs @ np.array(LEVELS, dtype=float)
    rho = spearmanr(expected, gold).statistic if len(set(gold.tolist())) > 1 and np.std(expected) > 0 else 0.0
    return {"macro_f1": m["macro_f1"], "accuracy": m["accuracy"], "spearman": float(rho)}


def class_weights(gold: np.ndarray) -> np.ndarray:
    """Balanced weights in level order 4..1 (n / (k · count)); a class with no example gets weight 0."""
    counts = np.array([(gold == lv).sum() for lv in LEVELS], dtype=float)
    present = counts > 0
    w = np.zeros(4)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return w


# -- the model's stacks ----------------------------------------------------------------------------------------------
class _Swap:
    """Run a Llama-style decoder with only a slice of its layers (and, for the lower stack, no final norm)."""

    def __init__(self, model: Any, layers: slice, drop_norm: bool) -> None:
        self.inner, self.layers, self.drop_norm = model.get_decoder(), layers, drop_norm

    def __enter__(self) -> Any:
        import torch

        self.saved_layers, self.saved_norm = self.inner.layers, self.inner.norm
        self.inner.layers = torch.nn.ModuleList(list(self.saved_layers)[self.layers])
        if self.drop_norm:
            self.inner.norm = torch.nn.Identity()
        return self.inner

    def __exit__(self, *exc: object) -> None:
        self.inner.layers, self.inner.norm = self.saved_layers, self.saved_norm


def lower_activations(model: Any, ids: Sequence[Sequence[int]], split: int, batch_size: int = 32,
                      progress: Callable[[int], None] | None = None, prefix: Sequence[int] = ()
                      ) -> tuple[Any, list[Any]]:
    """The residual stream entering layer ``split`` (float32, CPU): ``(prefix_hidden, per-pair hidden)``. The
    tokens every pair starts with (``prefix``: the instruction) run once and their KV cache is reused, so each
    pair runs only its own tokens; right-padded, length-sorted batches, so real tokens never see padding."""
    import copy

    import torch

    p = len(prefix)
    if p and any(list(s[:p]) != list(prefix) or len(s) <= p for s in ids):
        raise ValueError("every prompt must start with the shared prefix and go past it")
    out: list[Any] = [None] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    with torch.inference_mode(), _Swap(model, slice(0, split), drop_norm=True) as inner:
        prefix_hidden, cache = None, None
        if p:
            res = inner(input_ids=torch.tensor([list(prefix)]), use_cache=True)
            prefix_hidden, cache = res.last_hidden_state[0].float().clone(), res.past_key_values
        for b in range(0, len(order), batch_size):
            rows = order[b: b + batch_size]
            rest = [list(ids[i][p:]) for i in rows]
            width = max(len(r) for r in rest)
            inp = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), p + width), dtype=torch.long)
            mask[:, :p] = 1
            for j, r in enumerate(rest):
                inp[j, : len(r)] = torch.tensor(r)
                mask[j, p: p + len(r)] = 1
            kw: dict[str, Any] = {}
            if p:
                c = copy.deepcopy(cache)
                c.batch_repeat_interleave(len(rows))
                kw = dict(past_key_values=c, position_ids=torch.arange(p, p + width).unsqueeze(0).expand(len(rows), -1))
            h = inner(input_ids=inp, attention_mask=mask, use_cache=bool(p), **kw).last_hidden_state.float()
            for j, i in enumerate(rows):
                out[i] = h[j, : len(rest[j])].clone()
            if progress:
                progress(len(rows))
    return prefix_hidden, out


class CachedPairs:
    """A torch-style dataset of cached activations (one shared prefix + each pair's own tokens) and label indices
    (0 = level 4 … 3 = level 1)."""

    def __init__(self, prefix: Any, hidden: list[Any], labels: np.ndarray) -> None:
        self.prefix, self.hidden, self.labels = prefix, hidden, [LEVELS.index(int(v)) for v in labels]

    def __len__(self) -> int:
        return len(self.hidden)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"hidden": self.hidden[i], "label": self.labels[i]}

    def lengths(self) -> list[int]:
        extra = 0 if self.prefix is None else int(self.prefix.shape[0])
        return [extra + int(h.shape[0]) for h in self.hidden]


def _collate(items: list[dict]) -> dict[str, Any]:
    """Each pair's own tokens, right-padded (the shared prefix is the model's, run once per batch)."""
    import torch

    width = max(it["hidden"].shape[0] for it in items)
    dim = items[0]["hidden"].shape[1]
    hidden = torch.zeros((len(items), width, dim))
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for j, it in enumerate(items):
        n = it["hidden"].shape[0]
        hidden[j, :n], mask[j, :n] = it["hidden"], 1
    return {"hidden": hidden, "attention_mask": mask, "labels": torch.tensor([it["label"] for it in items])}


class _Renumber:
    """Give a slice of decoder layers cache indices 0..n-1 (a fresh KV cache for just those layers)."""

    def __init__(self, layers: Sequence[Any]) -> None:
        self.attn = [layer.self_attn for layer in layers]

    def __enter__(self) -> None:
        self.saved = [a.layer_idx for a in self.attn]
        for k, a in enumerate(self.attn):
            a.layer_idx = k

    def __exit__(self, *exc: object) -> None:
        for a, k in zip(self.attn, self.saved):
            a.layer_idx = k


def _top_module(model: Any, split: int, rows: Any, weights: np.ndarray, prefix: Any = None):
    """The trainable top: decoder layers ``split..L``, the final norm and the four label rows, as a module
    ``transformers.Trainer`` drives (``hidden``, ``attention_mask``, ``labels`` → loss, logits). The shared
    prefix runs through the top layers once per batch (with gradients) and its KV cache is repeated for every row,
    so each row runs only its own tokens — exact, and about half the work on a compact prompt."""
    import torch

    class Top(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = model.get_decoder()
            self.layers = torch.nn.ModuleList(list(self.decoder.layers)[split:])
            self.norm = self.decoder.norm
            self.rows = torch.nn.Parameter(rows.clone())
            self.register_buffer("class_weight", torch.tensor(weights, dtype=torch.float32), persistent=False)
            self.prefix = prefix  # (P, d) residual stream of the shared prefix entering layer ``split``, or None

        def features(self, hidden, attention_mask):
            b, width = attention_mask.shape
            with _Swap(model, slice(split, None), drop_norm=False) as inner, _Renumber(self.layers):
                if self.prefix is None or not len(self.prefix):
                    h = inner(inputs_embeds=hidden, attention_mask=attention_mask,
                              use_cache=False).last_hidden_state
                else:
                    p = self.prefix.shape[0]
                    cache = inner(inputs_embeds=self.prefix[None], use_cache=True).past_key_values
                    cache.batch_repeat_interleave(b)
                    mask = torch.cat([torch.ones((b, p), dtype=attention_mask.dtype), attention_mask], dim=1)
                    pos = torch.arange(p, p + width).unsqueeze(0).expand(b, -1)
                    h = inner(inputs_embeds=hidden, attention_mask=mask, position_ids=pos, past_key_values=cache,
                              use_cache=True).last_hidden_state
            last = attention_mask.sum(1) - 1
            return h[torch.arange(h.shape[0]), last]

        def forward(self, hidden, attention_mask, labels=None):
            logits = self.features(hidden, attention_mask) @ self.rows.T
            loss = None
            if labels is not None:
                loss = torch.nn.functional.cross_entropy(logits, labels, weight=self.class_weight)
            return {"loss": loss, "logits": logits}

    return Top()


def top_features(top: Any, data: CachedPairs, batch_size: int = 64) -> np.ndarray:
    """Final-norm hidden states at each pair's last position, from the cache through the top layers."""
    import torch

    if not len(data):
        return np.zeros((0, top.norm.weight.shape[0]), dtype=np.float32)
    order = sorted(range(len(data)), key=lambda i: data.hidden[i].shape[0])
    feats = np.zeros((len(data), data.hidden[0].shape[1]), dtype=np.float32)
    was = top.training
    top.eval()
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            rows = order[b: b + batch_size]
            batch = _collate([data[i] for i in rows])
            feats[rows] = top.features(batch["hidden"], batch["attention_mask"]).float().numpy()
    top.train(was)
    return feats


def fit_readout(x: np.ndarray, gold: np.ndarray, x_dev: np.ndarray, gold_dev: np.ndarray,
                c_grid: Sequence[float], seed: int = 0) -> tuple[np.ndarray, float, dict[str, float]]:
    """Rows ``W`` (4 × d, level order 4..1) with softmax(W·h) = a class-balanced logistic regression on the
    features, no intercept (an LM head has no bias); C picked on the dev features by macro-F1. Returns (W, C, dev
    metrics)."""
    from sklearn.linear_model import LogisticRegression

    if len(set(np.asarray(gold).tolist())) < 2:
        raise ValueError("the read-out needs training pairs of at least two levels")
    scale = x.std(axis=0) + 1e-6  # standardise the spread only: centring would need an intercept
    best: tuple[float, np.ndarray, float, dict] | None = None
    for c in c_grid:
        # Newton steps: the features share a large offset (no centring without an intercept), which leaves
        # L-BFGS thousands of iterations; Newton-Cholesky needs a handful whatever the conditioning
        clf = LogisticRegression(C=c, class_weight="balanced", fit_intercept=False, max_iter=100,
                                 solver="newton-cholesky", random_state=seed)
        clf.fit(x / scale, gold)
        w = np.zeros((4, x.shape[1]))
        classes = [int(v) for v in clf.classes_]
        if len(classes) == 2:  # sklearn fits one row (class 1 vs class 0): as a softmax, +w/2 and -w/2
            w[LEVELS.index(classes[1])], w[LEVELS.index(classes[0])] = clf.coef_[0] / 2, -clf.coef_[0] / 2
        else:
            for k, cls in enumerate(classes):
                w[LEVELS.index(cls)] = clf.coef_[k]
        w = w / scale
        present = [LEVELS.index(cls) for cls in classes]
        mean_x = x.mean(axis=0)
        for k in set(range(4)) - set(present):  # a level the data never shows: ~20 nats below the others
            w[k] = w[present].mean(axis=0) - 20 * mean_x / max(float(mean_x @ mean_x), 1e-9)
        m = dev_metrics(gold_dev, _softmax(x_dev @ w.T)) if len(gold_dev) else {"macro_f1": 0.0}
        if best is None or m["macro_f1"] > best[0]:
            best = (m["macro_f1"], w, c, m)
    assert best is not None
    return best[1], best[2], best[3]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def cut_layers(model: Any, keep: int) -> Any:
    """Keep the first ``keep`` decoder layers (the final norm and head then read layer ``keep``'s residual stream).
    Still a plain causal LM of the same architecture, which every engine loads from its config; on SmolLM2-135M the
    label is read out far better from the middle of the stack than from its top (``bench/layer_probe.py``), and
    each pair costs ``keep``/30 of the compute."""
    import torch

    inner = model.get_decoder()
    n = len(inner.layers)
    if keep <= 0 or keep >= n:
        return model
    inner.layers = torch.nn.ModuleList(list(inner.layers)[:keep])
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    cfg.num_hidden_layers = keep
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = list(cfg.layer_types)[:keep]
    return model


def untie_head(model: Any) -> Any:
    """Give the model its own LM head (a copy of the tied embedding), so label rows can change alone."""
    import torch

    head = model.get_output_embeddings()
    if head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr():
        head.weight = torch.nn.Parameter(head.weight.detach().clone())
    model.config.tie_word_embeddings = False
    if hasattr(model.config, "get_text_config"):
        model.config.get_text_config().tie_word_embeddings = False
    return head


# -- the run ---------------------------------------------------------------------------------------------------------
def train_readout(model: Any, label_ids: Sequence[int], train_ids: Sequence[Sequence[int]], train_gold: np.ndarray,
                  dev_ids: Sequence[Sequence[int]], dev_gold: np.ndarray, cfg: ReadoutConfig, out_dir: str,
                  on_curve: Callable[[CurvePoint], None] | None = None,
                  on_readout: Callable[[Any], None] | None = None) -> ReadoutResult:
    """LP, then (``train_layers`` > 0) FT, in place on ``model``; ``on_readout(model)`` sees the model right after
    the read-out is written (to save the read-out-only model). ``dev_ids`` pick C and make the learning curve."""
    import torch

    # bf16: one autocast for the cache, the features, the read-out and the curve (the Trainer also autocasts)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        return _train_readout(model, label_ids, train_ids, train_gold, dev_ids, dev_gold, cfg, out_dir, on_curve,
                              on_readout)


def _train_readout(model: Any, label_ids: Sequence[int], train_ids: Sequence[Sequence[int]], train_gold: np.ndarray,
                   dev_ids: Sequence[Sequence[int]], dev_gold: np.ndarray, cfg: ReadoutConfig, out_dir: str,
                   on_curve: Callable[[CurvePoint], None] | None,
                   on_readout: Callable[[Any], None] | None) -> ReadoutResult:
    import torch

    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model.eval()
    cut_layers(model, cfg.keep_layers)
    n_layers = len(model.get_decoder().layers)
    n_top = max(1, min(cfg.train_layers, n_layers))  # the read-out alone still reads through >= 1 cached layer
    split = n_layers - n_top
    seconds: dict[str, float] = {}
    t = time.time()
    done = [0]
    total = len(train_ids) + len(dev_ids)

    def progress(k: int) -> None:
        done[0] += k
        if done[0] // 2000 != (done[0] - k) // 2000 or done[0] == total:
            log_event(log, "readout.cache", pairs=done[0], of=total, seconds=round(time.time() - t, 1))

    from taosr1.engines.hf import common_prefix

    everything = list(train_ids) + list(dev_ids)
    prefix = list(everything[0][: max(0, min(common_prefix(everything), min(map(len, everything)) - 1))])
    train = CachedPairs(*lower_activations(model, train_ids, split, cfg.cache_batch, progress, prefix), train_gold)
    dev = CachedPairs(*lower_activations(model, dev_ids, split, cfg.cache_batch, progress, prefix), dev_gold)
    seconds["cache"] = time.time() - t

    t = time.time()
    head = untie_head(model)
    label_ids = list(label_ids)
    shared = head.weight.detach()[label_ids].mean(dim=0)
    weights = class_weights(train_gold)
    top = _top_module(model, split, head.weight.detach()[label_ids], weights, train.prefix)
    x, x_dev = top_features(top, train), top_features(top, dev)
    w, c, readout_dev = fit_readout(x, train_gold, x_dev, dev_gold, cfg.c_grid, cfg.seed)
    rows = torch.tensor(w, dtype=torch.float32) + shared  # a shared row: the 4-way softmax is unchanged
    with torch.no_grad():
        head.weight[label_ids] = rows
        top.rows.copy_(rows)
    seconds["readout"] = time.time() - t
    log_event(log, "readout.fit", c=c, pairs=len(train), **{k: round(v, 4) for k, v in readout_dev.items()})
    result = ReadoutResult(c=c, readout_dev=readout_dev, seconds=seconds,
                           tokens_per_example=float(np.mean(train.lengths())) if len(train) else 0.0)
    if on_readout is not None:
        on_readout(model)
    curve_point = _curve_probe(top, dev, dev_gold)
    result.curve.append(curve_point(0, None))
    if on_curve:
        on_curve(result.curve[-1])
    if cfg.train_layers <= 0 or len(train) == 0:
        result.dev_probs = _probs(top, dev)
        return result

    t = time.time()
    _fine_tune(top, train, cfg, out_dir, result, curve_point, on_curve)
    seconds["fine_tune"] = time.time() - t
    result.examples_per_s = cfg.epochs * len(train) / max(seconds["fine_tune"], 1e-9)
    with torch.no_grad():
        head.weight[label_ids] = top.rows.detach()
    result.dev_probs = _probs(top, dev)
    return result


def _probs(top: Any, data: CachedPairs) -> np.ndarray:
    import torch

    if not len(data):
        return np.zeros((0, 4))
    feats = torch.from_numpy(top_features(top, data))
    with torch.no_grad():
        return torch.softmax(feats @ top.rows.detach().T, dim=-1).double().numpy()


def _curve_probe(top: Any, dev: CachedPairs, dev_gold: np.ndarray) -> Callable[[int, float | None], CurvePoint]:
    def point(examples: int, loss: float | None) -> CurvePoint:
        if not len(dev):
            return CurvePoint(examples, float("nan"), float("nan"), float("nan"), loss)
        m = dev_metrics(dev_gold, _probs(top, dev))
        return CurvePoint(examples, m["macro_f1"], m["accuracy"], m["spearman"], loss)

    return point


def _fine_tune(top: Any, train: CachedPairs, cfg: ReadoutConfig, out_dir: str, result: ReadoutResult,
               curve_point: Callable[[int, float | None], CurvePoint],
               on_curve: Callable[[CurvePoint], None] | None) -> None:
    """``transformers.Trainer`` over the cached activations: length-grouped batches, cosine schedule, the curve
    every ``curve_every`` examples."""
    from transformers import Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_pt_utils import LengthGroupedSampler

    for p in top.parameters():
        p.requires_grad_(False)
    for p in list(top.layers.parameters()) + list(top.norm.parameters()) + [top.rows]:
        p.requires_grad_(True)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    max_steps = max(1, int(round(cfg.epochs * steps_per_epoch)))
    every = max(1, cfg.curve_every // cfg.batch_size) if cfg.curve_every else 0
    args = TrainingArguments(output_dir=out_dir, max_steps=max_steps, learning_rate=cfg.learning_rate,
                             per_device_train_batch_size=cfg.batch_size, weight_decay=cfg.weight_decay,
                             warmup_steps=int(cfg.warmup_ratio * max_steps), lr_scheduler_type="cosine",
                             logging_steps=max(1, every or 50), save_strategy="no", report_to=list(cfg.report_to),
                             use_cpu=True, bf16=cfg.bf16, remove_unused_columns=False, label_names=["labels"],
                             seed=cfg.seed,
                             dataloader_num_workers=0, disable_tqdm=True)
    lengths = train.lengths()

    class _Trainer(Trainer):
        def _get_train_sampler(self, *a: Any, **k: Any):  # length-grouped: little padding per batch
            import torch

            return LengthGroupedSampler(cfg.batch_size, lengths=lengths,
                                        generator=torch.Generator().manual_seed(cfg.seed))

    class _Curve(TrainerCallback):
        def __init__(self) -> None:
            self.loss: float | None = None

        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            if every and (state.global_step % every == 0 or state.global_step == state.max_steps):
                p = curve_point(state.global_step * cfg.batch_size, self.loss)
                result.curve.append(p)
                log_event(log, "readout.curve", examples=p.examples, macro_f1=round(p.macro_f1, 4),
                          spearman=round(p.spearman, 4), loss=None if p.loss is None else round(p.loss, 4))
                if on_curve:
                    on_curve(p)

    trainer = _Trainer(model=top, args=args, train_dataset=train, data_collator=_collate, callbacks=[_Curve()])
    trainer.train()
    top.eval()
