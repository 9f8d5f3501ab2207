"""A simulator of noisy chat-completion APIs, for calibrating the statistics.

It produces the JSON of chat completions (``logprobs=True, top_logprobs=k``)
from a toy language model whose behaviour mimics what hosted APIs show:

* **A prompt is a world.** Each world (an integer) defines, for every prefix of
  generated tokens, a vector of logits over a small vocabulary (drawn from a
  generator seeded by the world and the prefix, so the same prefix always
  gets the same logits). Most positions have a clear favourite; a share of
  them (``near_tie_prob``) has a top-2 gap below ``near_tie_gap``.
* **Per-call logit noise.** Every call adds independent Gaussian noise
  (``noise``, in logits) to every logit it evaluates: hosted models are not
  bit-reproducible (batching, mixture-of-experts routing), even at
  temperature 0.
* **Heavy-noise calls.** With probability ``heavy_prob`` a call's noise is
  multiplied by ``heavy_scale``.
* **Greedy decoding with flips.** The generated token is the argmax of the
  noisy logits, so noise flips near-ties and the continuation then follows
  another prefix (different logits from there on), as in the seed experiment
  where one trial's mean |Δlogprob| jumped from ~0.4 to ~2.
* **Effect knob.** Arm B adds ``effect`` x a fixed, world- and
  prefix-dependent standard-normal perturbation to the logits: a prompt
  change that nudges every distribution a little (and flips some near-ties
  for good).

With the defaults the seed metric's noise floor (mean |Δlogprob| between two
calls of the same arm) is close to the ~0.4 the seed experiment measured.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from pytest_rolecheck.core.parse import ParsedCall, Position

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SimConfig:
    """Parameters of a simulated API (see the module docstring)."""

    vocab_size: int = 300
    length: int = 20
    top_k: int = 20
    logit_scale: float = 2.0
    noise: float = 0.35
    heavy_prob: float = 0.05
    heavy_scale: float = 4.0
    near_tie_prob: float = 0.015
    near_tie_gap: float = 0.4
    clear_gap_min: float = 2.0
    clear_gap_mean: float = 3.0
    effect: float = 0.0
    model: str = "sim-1"
    fingerprint: str | None = "fp_sim"

    def with_(self, **changes: Any) -> SimConfig:
        """Return a copy with some fields changed."""
        return replace(self, **changes)


_VOCAB_CACHE: dict[int, list[str]] = {}


def _vocab(size: int) -> list[str]:
    words = _VOCAB_CACHE.get(size)
    if words is None:
        words = [f" w{i}" for i in range(size)]
        _VOCAB_CACHE[size] = words
    return words


class World:
    """One prompt: deterministic base logits (and B's perturbation) per prefix."""

    def __init__(self, world: int, config: SimConfig) -> None:
        self.world = world
        self.config = config
        self._base: dict[tuple[int, ...], FloatArray] = {}
        self._shift: dict[tuple[int, ...], FloatArray] = {}

    def base_logits(self, prefix: tuple[int, ...]) -> FloatArray:
        """Noise-free logits of arm A after ``prefix``."""
        cached = self._base.get(prefix)
        if cached is not None:
            return cached
        cfg = self.config
        rng = np.random.default_rng([self.world, 1, len(prefix), *prefix])
        logits = rng.standard_normal(cfg.vocab_size) * cfg.logit_scale
        order = np.argsort(logits)
        top, second = order[-1], order[-2]
        if rng.random() < cfg.near_tie_prob:
            gap = rng.uniform(0.0, cfg.near_tie_gap)
        else:
            gap = cfg.clear_gap_min + rng.exponential(cfg.clear_gap_mean)
        logits[top] = logits[second] + gap
        self._base[prefix] = logits
        return logits

    def shift(self, prefix: tuple[int, ...]) -> FloatArray:
        """Fixed direction in which arm B's logits move after ``prefix`` (unit scale)."""
        cached = self._shift.get(prefix)
        if cached is None:
            rng = np.random.default_rng([self.world, 2, len(prefix), *prefix])
            cached = rng.standard_normal(self.config.vocab_size)
            self._shift[prefix] = cached
        return cached


def _log_softmax(x: FloatArray) -> FloatArray:
    m = float(np.max(x))
    return np.asarray(x - (m + np.log(np.sum(np.exp(x - m)))), dtype=np.float64)


def simulate_call(
    world: World, rng: np.random.Generator, *, effect: float = 0.0, call_id: str = "sim"
) -> dict[str, Any]:
    """Simulate one greedy chat completion and return its JSON as a dict.

    Parameters
    ----------
    world : World
        The prompt (deterministic logits per prefix).
    rng : numpy.random.Generator
        Source of this call's noise.
    effect : float, optional
        Scale of arm B's logit perturbation (0 for arm A).
    call_id : str, optional
        The response ``id``.

    Returns
    -------
    dict
        A chat-completion response with ``logprobs.content`` filled.
    """
    cfg = world.config
    words = _vocab(cfg.vocab_size)
    sigma = cfg.noise * (cfg.heavy_scale if rng.random() < cfg.heavy_prob else 1.0)
    prefix: list[int] = []
    content: list[dict[str, Any]] = []
    for _ in range(cfg.length):
        key = tuple(prefix)
        logits = world.base_logits(key)
        if effect:
            logits = logits + effect * world.shift(key)
        if sigma > 0:
            logits = logits + sigma * rng.standard_normal(cfg.vocab_size)
        logprobs = _log_softmax(logits)
        top = np.argpartition(logprobs, -cfg.top_k)[-cfg.top_k :]
        top = top[np.argsort(-logprobs[top], kind="stable")]
        chosen = int(top[0])
        alternatives = [
            {
                "token": words[int(t)],
                "logprob": float(logprobs[t]),
                "bytes": list(words[int(t)].encode()),
            }
            for t in top
        ]
        content.append(
            {
                "token": words[chosen],
                "logprob": float(logprobs[chosen]),
                "bytes": list(words[chosen].encode()),
                "top_logprobs": alternatives,
            }
        )
        prefix.append(chosen)
    text = "".join(words[t] for t in prefix)
    return {
        "id": call_id,
        "object": "chat.completion",
        "created": 0,
        "model": cfg.model,
        "system_fingerprint": cfg.fingerprint,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": {"content": content, "refusal": None},
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": 20,
            "completion_tokens": cfg.length,
            "total_tokens": 20 + cfg.length,
        },
    }


def simulate_arms(
    config: SimConfig,
    n_a: int,
    n_b: int,
    *,
    world: int,
    seed: int,
    extra_a: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Simulate two arms on one world; B carries ``config.effect``.

    Parameters
    ----------
    config : SimConfig
        The simulated API.
    n_a, n_b : int
        Calls per arm (arm A gets ``extra_a`` more, e.g. a baseline call).
    world : int
        Which prompt.
    seed : int
        Seed of the per-call noise.
    extra_a : int, optional
        Additional A calls, prepended.

    Returns
    -------
    responses_a, responses_b : list of dict
    """
    w = World(world, config)
    rng = np.random.default_rng([seed, world])
    total_a = n_a + extra_a
    # Interleave the arms, as the plugin does, so call order never aligns with an arm.
    a: list[dict[str, Any]] = []
    b: list[dict[str, Any]] = []
    for i in range(max(total_a, n_b)):
        if i < total_a:
            a.append(simulate_call(w, rng, call_id=f"a{i}"))
        if i < n_b:
            b.append(simulate_call(w, rng, effect=config.effect, call_id=f"b{i}"))
    return a, b


# --------------------------------------------------------------------------- families
# A faster simulator for the calibration table: it builds ``ParsedCall`` values
# directly (no JSON), over a short completion and a small vocabulary, so that
# thousands of comparisons per family fit in minutes on one core.


@dataclass(frozen=True)
class ArmModel:
    """How one arm's calls are generated from a world (see :func:`draw_calls`).

    ``noise``: per-call logit noise scale; ``heavy_df``: Student-t noise with
    these degrees of freedom instead of Gaussian; ``sample``: draw tokens at
    temperature 1 instead of greedy decoding; ``shift``: scale of a fixed,
    world- and prefix-dependent logit perturbation (a prompt change that nudges
    every distribution); ``swap``: swap the two most likely first tokens (the
    answer flips); ``mix``: share of calls answered from another world (a
    rewritten answer, e.g. one call in five takes another continuation);
    ``after``: a mixed-in call follows the arm's own world for its first
    ``after`` tokens and the other world from there on (a change that shows
    only later in the answer).
    """

    noise: float = 0.0
    heavy_df: float | None = None
    sample: bool = False
    shift: float = 0.0
    swap: bool = False
    mix: float = 0.0
    after: int = 0


@dataclass(frozen=True)
class WorldModel:
    """The prompts of a family: vocabulary, length and shape of the logits.

    ``flat_first``: the first position has several near-equal modes (sampled,
    multimodal outputs); ``eos``: logit of the end-of-sequence token after the
    first position (variable-length outputs; ``None``: never ends early).
    """

    vocab: int = 12
    length: int = 4
    top_k: int = 5
    scale: float = 2.5
    flat_first: bool = False
    eos: float | None = None


_EOS = 0
# Tokens spelled as distinct words (not " w1", " w2", ... which share most of their
# characters), so that the text metrics see answers that differ as answers do. The
# token metrics match tokens by identity and are unaffected by the spelling.
_WORDS = (
    " the",
    " cat",
    " rocks",
    " at",
    " night",
    " and",
    " my",
    " kitty",
    " sings",
    " loud",
    " in",
    " city",
    " with",
    " blue",
    " moon",
    " dance",
    " fire",
    " heart",
)


class FastWorld:
    """Deterministic base logits (and a shift direction) per prefix of one prompt.

    ``other_words``: the prompt's tokens are spelled in capitals, so its answers share
    no letter with another world's (a change the text metrics can see, e.g. another
    language); otherwise every world spells its tokens alike.
    """

    def __init__(self, world: int, model: WorldModel, *, other_words: bool = False) -> None:
        self.world = world
        self.model = model
        self._cache: dict[tuple[int, ...], tuple[FloatArray, FloatArray]] = {}
        self.words = [" <eos>"] + [
            _WORDS[i % len(_WORDS)] + str(i // len(_WORDS) or "") for i in range(model.vocab - 1)
        ]
        if other_words:
            self.words = [w.upper() for w in self.words]

    def logits(self, prefix: tuple[int, ...]) -> tuple[FloatArray, FloatArray]:
        hit = self._cache.get(prefix)
        if hit is None:
            rng = np.random.default_rng([self.world, len(prefix), *prefix])
            m = self.model
            base = rng.normal(size=m.vocab) * m.scale
            if not prefix and m.flat_first:
                base = rng.normal(size=m.vocab) * 0.3 - 3.0
                base[1:4] = 0.0  # three equally likely answers
            base[_EOS] = -30.0 if (m.eos is None or not prefix) else m.eos
            hit = (base, rng.normal(size=m.vocab))
            self._cache[prefix] = hit
        return hit


def _position(world: FastWorld, logits: FloatArray, token: int) -> Position:
    logp = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
    order = np.argsort(-logp, kind="stable")[: world.model.top_k]
    alts = tuple((world.words[i], world.words[i], float(logp[i])) for i in order)
    if token not in order:
        alts = (*alts, (world.words[token], world.words[token], float(logp[token])))
    word = world.words[token]
    return Position(token=word, key=word, logprob=float(logp[token]), alternatives=alts)


def draw_calls(
    world: FastWorld, other: FastWorld, arm: ArmModel, n: int, rng: np.random.Generator
) -> list[ParsedCall]:
    """``n`` calls of one arm (greedy unless ``arm.sample``), as ``ParsedCall`` values."""
    calls = []
    for _ in range(n):
        mixed = other if arm.mix and rng.random() < arm.mix else world
        prefix: tuple[int, ...] = ()
        positions = []
        for t in range(world.model.length):
            src = mixed if t >= arm.after else world
            base, direction = src.logits(prefix)
            logits = base + arm.shift * direction
            if arm.swap and not prefix:
                i, j = np.argsort(-base)[:2]
                logits = logits.copy()
                logits[i], logits[j] = logits[j], logits[i]
            if arm.noise:
                eps = (
                    rng.standard_t(arm.heavy_df, size=logits.size)
                    if arm.heavy_df
                    else rng.normal(size=logits.size)
                )
                logits = logits + arm.noise * eps
            if arm.sample:
                p = np.exp(logits - logits.max())
                token = int(rng.choice(logits.size, p=p / p.sum()))
            else:
                token = int(np.argmax(logits))
            if token == _EOS:
                break  # the end-of-sequence token is not part of the logprobs
            positions.append(_position(src, logits, token))
            prefix = (*prefix, token)
        text = "".join(p.token for p in positions)
        calls.append(ParsedCall(text=text, positions=tuple(positions), finish_reason="stop"))
    return calls
