"""Generated token sequences whose best possible loss is known: language-model tasks without a network.

Each generator gives a :class:`bench.data.datasets.Dataset` of inputs `(n, context)`
(tokens as float32) and next-token labels `(n, context)` (int32; ``-1`` where a position
does not count), for the loss ``next_token_cross_entropy``. With them comes, per split and
per example, the **Bayes-optimal loss**: the mean over the counted positions of
``-log p(next token | everything before)`` under the true generating process, so a report
gives each model's gap to the optimum in nats per token on exactly the examples it saw.

* ``markov(vocab, order, concentration, ...)``: a random order-``k`` Markov chain (an
  n-gram language): every context of ``k`` tokens has a next-token distribution drawn
  from ``Dirichlet(concentration)``; sequences start in the chain's stationary
  distribution, so every counted position has the same expected optimal loss, the
  chain's **entropy rate** ``H = sum_s pi(s) H(P(. | s))``, computed exactly. The
  first ``k - 1`` positions (a context shorter than the order) do not count.
* ``modular_addition(p, fraction, ...)``: ``a b =`` -> ``(a + b) mod p`` on a random
  ``fraction`` of the ``p**2`` pairs, tested on the others (Power et al. 2022, grokking);
  only the answer counts; the optimum is 0.
* ``copy(vocab, length, ...)``: ``x_1 .. x_m SEP`` -> ``x_1 .. x_m`` again (Graves et al. 2014's
  copy task, causal form); only the copy counts; the optimum is 0.
* ``associative_recall(keys, values, pairs, ...)``: ``k_1 v_1 .. k_n v_n k_q`` -> ``v_q``, distinct
  keys, the query one of them (Ba et al. 2016; the induction-head probe of Olsson et al. 2022);
  only the answer counts; the optimum is 0.

Specs: ``markov``, ``markov(vocab=32, order=2)``, ``modular_addition(p=23)``, ``copy(length=12)``,
``associative_recall(pairs=6)`` (keyword arguments only, literals; ``initjax.spec``).

References: Cover & Thomas 2006, Elements of Information Theory, Thm. 4.2.4 (entropy
rate of a stationary Markov chain); Power et al. 2022, arXiv:2201.02177; Graves et al. 2014,
arXiv:1410.5401; Ba et al. 2016, arXiv:1610.06258; Olsson et al. 2022, arXiv:2209.11895.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bench.errors import UserError

IGNORED = -1  # the label of a position that does not count


@dataclasses.dataclass(frozen=True)
class MarkovChain:
    """An order-``k`` chain on ``vocab`` tokens.

    Attributes:
      next_token: `(vocab**order, vocab)`: row ``s`` is ``p(next | context s)``; a context is
        its ``order`` tokens as a base-``vocab`` number, the most recent token last (least significant).
      stationary: `(vocab**order,)`: the stationary distribution of contexts.
    """

    next_token: np.ndarray
    stationary: np.ndarray

    @property
    def vocab(self) -> int:
        return self.next_token.shape[1]

    @property
    def order(self) -> int:
        return int(round(np.log(self.next_token.shape[0]) / np.log(self.vocab)))

    def entropy_rate(self) -> float:
        """``sum_s pi(s) H(P(. | s))`` in nats per token."""
        rows = np.where(self.next_token > 0, -self.next_token * np.log(np.where(self.next_token > 0,
                                                                               self.next_token, 1)), 0)
        return float(self.stationary @ rows.sum(axis=1))

    def successor(self, context: np.ndarray, token: np.ndarray) -> np.ndarray:
        """The context after ``token`` follows ``context`` (arrays of indices)."""
        return (context * self.vocab + token) % self.next_token.shape[0]


def random_chain(vocab: int, order: int, concentration: float, rng: np.random.Generator) -> MarkovChain:
    """A chain whose rows are drawn from ``Dirichlet(concentration)``."""
    return chain_of(rng.dirichlet(np.full(vocab, concentration), size=vocab**order))


def chain_of(next_token: np.ndarray) -> MarkovChain:
    """The chain of next-token distributions `(vocab**order, vocab)`, with its stationary distribution.

    Context ``s = a vocab**(order-1) + r`` (``a`` its oldest token) moves to ``r vocab + x``
    with probability ``next_token[s, x]``, so one step of the context distribution is a sum
    over ``a``: `O(contexts x vocab)`, no dense matrix. The stationary distribution is the fixed
    point of the lazy chain ``pi <- (pi + pi T) / 2`` (the same fixed point; it converges
    whenever the chain is irreducible, as it is when every row is positive).

    Raises:
      UserError: no convergence in :data:`MAX_STEPS` steps (rows too peaked to mix).
    """
    states, vocab = next_token.shape
    pi = np.full(states, 1.0 / states)
    for _ in range(MAX_STEPS):
        stepped = (pi[:, None] * next_token).reshape(vocab, states // vocab, vocab).sum(axis=0).reshape(states)
        lazy = (pi + stepped) / 2
        change, pi = np.abs(lazy - pi).sum(), lazy
        if change < 1e-14:
            return MarkovChain(next_token, pi / pi.sum())
    raise UserError(f"markov: the chain's stationary distribution did not converge in {MAX_STEPS:,} steps (its rows "
                    "are too peaked to mix); give a larger concentration")


MAX_STEPS = 100_000


def sample_chain(chain: MarkovChain, n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences of ``length`` tokens from the stationary chain, and ``-log p`` of every token given its past.

    Returns:
      ``(tokens, surprise)``, each `(n, length)`; the first ``order`` tokens' surprise is NaN
      (they are drawn jointly from the stationary distribution, not one by one).
    """
    order, vocab = chain.order, chain.vocab
    context = rng.choice(len(chain.stationary), size=n, p=chain.stationary)
    tokens = np.zeros((n, length), np.int64)
    for j in range(order):  # the context's digits, oldest first
        tokens[:, j] = context // vocab ** (order - 1 - j) % vocab
    surprise = np.full((n, length), np.nan)
    for t in range(order, length):
        probabilities = chain.next_token[context]
        drawn = (rng.random((n, 1)) > np.cumsum(probabilities, axis=1)).sum(axis=1).clip(max=vocab - 1)
        tokens[:, t] = drawn
        surprise[:, t] = -np.log(probabilities[np.arange(n), drawn])
        context = chain.successor(context, drawn)
    return tokens, surprise


def _split(tokens: np.ndarray, surprise: np.ndarray, order: int):
    """Inputs, labels and per-example optimal losses of next-token prediction on whole sequences."""
    x, y = tokens[:, :-1], tokens[:, 1:].copy()
    y[:, : max(order - 1, 0)] = IGNORED
    optimal = np.nanmean(surprise[:, 1:][:, max(order - 1, 0):], axis=1)
    return x.astype(np.float32), y.astype(np.int32), optimal


def markov(vocab: int = 16, order: int = 1, concentration: float = 0.5, context: int = 32, n_train: int = 4096,
           n_val: int = 1024, n_test: int = 1024, seed: int = 0):
    """A random order-``order`` Markov language (see the module docstring).

    Args:
      vocab: tokens.
      order: how many previous tokens the next depends on (``vocab**order`` contexts).
      concentration: of the Dirichlet rows: small gives peaked rows (a low entropy rate).
      context: the model's context length (each sequence has ``context + 1`` tokens).
      n_train, n_val, n_test: sequences per split, independent draws of the same chain.
      seed: of the chain and the draws.

    Raises:
      UserError: an argument out of range.
    """
    from bench.data.datasets import Dataset

    _check_ints(vocab=(vocab, 2), order=(order, 1), context=(context, max(order, 1)), n_train=(n_train, 1),
                n_val=(n_val, 0), n_test=(n_test, 1), seed=(seed, 0))
    if vocab**order > 65_536:
        raise UserError(f"markov: vocab**order = {vocab**order:,} contexts is too many (at most 65,536)")
    if not (isinstance(concentration, (int, float)) and not isinstance(concentration, bool) and concentration >= 0.05):
        raise UserError(f"markov: concentration must be a number >= 0.05, got {concentration!r}")
    rng = np.random.default_rng(seed)
    chain = random_chain(vocab, order, float(concentration), rng)
    splits = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        if n:
            splits[split] = _split(*sample_chain(chain, n, context + 1, rng), order)
    source = (f"generated: order-{order} Markov chain on {vocab} tokens, Dirichlet({concentration:g}) rows, seed "
              f"{seed}, context {context}; entropy rate {chain.entropy_rate():.4f} nats/token")
    return _dataset(f"markov(vocab={vocab}, order={order})", splits, vocab, source, Dataset)


def modular_addition(p: int = 23, fraction: float = 0.5, seed: int = 0):
    """``a b =`` -> ``(a + b) mod p``: a ``fraction`` of the pairs to train on, the rest to test.

    Tokens: ``0 .. p-1`` the numbers, ``p`` the ``=`` sign; the vocabulary is ``p + 1``.

    Raises:
      UserError: ``p < 2`` or a fraction that leaves a split empty.
    """
    from bench.data.datasets import Dataset

    _check_ints(p=(p, 2), seed=(seed, 0))
    pairs = np.array([(a, b) for a in range(p) for b in range(p)])
    n_train = int(round(fraction * len(pairs))) if isinstance(fraction, float) else 0
    if not 1 <= n_train < len(pairs):
        raise UserError(f"modular_addition: fraction must be a number that leaves both splits non-empty "
                        f"(0 < fraction < 1 of {p}**2 pairs), got {fraction!r}")
    order = np.random.default_rng(seed).permutation(len(pairs))
    x = np.concatenate([pairs, np.full((len(pairs), 1), p)], axis=1).astype(np.float32)
    y = np.full((len(pairs), 3), IGNORED, np.int32)
    y[:, 2] = pairs.sum(axis=1) % p
    zeros = np.zeros(len(pairs))
    splits = {"train": (x[order[:n_train]], y[order[:n_train]], zeros[:n_train]),
              "test": (x[order[n_train:]], y[order[n_train:]], zeros[n_train:])}
    source = f"generated: a + b mod {p}, {n_train:,} of {len(pairs):,} pairs to train (seed {seed}); optimum 0"
    return _dataset(f"modular_addition(p={p})", splits, p + 1, source, Dataset)


def copy(vocab: int = 8, length: int = 8, n_train: int = 4096, n_val: int = 512, n_test: int = 1024, seed: int = 0):
    """``x_1 .. x_m SEP x_1 .. x_m``: after the separator, each next token is the one ``m + 1`` places back.

    Tokens ``0 .. vocab-1`` are drawn uniformly, token ``vocab`` is the separator (vocabulary
    ``vocab + 1``); inputs are the first ``2 m`` tokens (the context) and the ``m`` copied
    positions alone count, so the optimal loss is 0.

    Raises:
      UserError: an argument out of range.
    """
    from bench.data.datasets import Dataset

    _check_ints(vocab=(vocab, 2), length=(length, 1), n_train=(n_train, 1), n_val=(n_val, 0), n_test=(n_test, 1),
                seed=(seed, 0))
    rng = np.random.default_rng(seed)

    def split(n):
        content = rng.integers(0, vocab, (n, length))
        tokens = np.concatenate([content, np.full((n, 1), vocab), content], axis=1)
        y = np.full((n, 2 * length), IGNORED, np.int32)
        y[:, length:] = content
        return tokens[:, :-1].astype(np.float32), y, np.zeros(n)

    splits = {name: split(n) for name, n in (("train", n_train), ("val", n_val), ("test", n_test)) if n}
    source = (f"generated: copy {length} tokens of {vocab} after a separator (seed {seed}), context {2 * length}; "
              "optimum 0")
    return _dataset(f"copy(vocab={vocab}, length={length})", splits, vocab + 1, source, Dataset)


def associative_recall(keys: int = 16, values: int = 16, pairs: int = 4, n_train: int = 4096, n_val: int = 512,
                       n_test: int = 1024, seed: int = 0):
    """``k_1 v_1 .. k_n v_n k_q`` -> ``v_q``: recall the value stored with the queried key.

    Keys are ``pairs`` distinct tokens of ``0 .. keys-1``, values any of ``keys .. keys+values-1``
    (vocabulary ``keys + values``), the query a uniformly drawn one of the keys; the context is
    ``2 pairs + 1`` and the answer alone counts, so the optimal loss is 0.

    Raises:
      UserError: an argument out of range, or more pairs than keys.
    """
    from bench.data.datasets import Dataset

    _check_ints(keys=(keys, 2), values=(values, 2), pairs=(pairs, 1), n_train=(n_train, 1), n_val=(n_val, 0),
                n_test=(n_test, 1), seed=(seed, 0))
    if pairs > keys:
        raise UserError(f"associative_recall: pairs must be at most keys ({keys}) so that keys are distinct, "
                        f"got {pairs}")
    rng = np.random.default_rng(seed)

    def split(n):
        drawn = rng.permuted(np.tile(np.arange(keys), (n, 1)), axis=1)[:, :pairs]
        stored = rng.integers(keys, keys + values, (n, pairs))
        asked = rng.integers(0, pairs, n)
        x = np.concatenate([np.stack([drawn, stored], axis=2).reshape(n, 2 * pairs),
                            drawn[np.arange(n), asked][:, None]], axis=1)
        y = np.full((n, 2 * pairs + 1), IGNORED, np.int32)
        y[:, -1] = stored[np.arange(n), asked]
        return x.astype(np.float32), y, np.zeros(n)

    splits = {name: split(n) for name, n in (("train", n_train), ("val", n_val), ("test", n_test)) if n}
    source = (f"generated: recall 1 of {pairs} key-value pairs ({keys} keys, {values} values, seed {seed}), "
              f"context {2 * pairs + 1}; optimum 0")
    return _dataset(f"associative_recall(keys={keys}, values={values}, pairs={pairs})", splits, keys + values,
                    source, Dataset)


def _dataset(name, splits, vocab, source, dataset_class):
    x_train, y_train, o_train = splits["train"]
    x_test, y_test, o_test = splits["test"]
    val = splits.get("val")
    optimal = {"train": o_train, "test": o_test, **({"val": val[2]} if val else {})}
    return dataset_class(name, x_train, y_train, x_test, y_test, vocab, x_val=None if val is None else val[0],
                         y_val=None if val is None else val[1], source=source, optimal=optimal)


def _check_ints(**values) -> None:
    for name, (value, low) in values.items():
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
            raise UserError(f"{name} must be an integer >= {low}, got {value!r}")


GENERATORS = {
    "markov": (markov, "generated order-k Markov language (vocab=16, order=1, context=32), exact entropy rate"),
    "modular_addition": (modular_addition, "a b = -> (a + b) mod p (p=23), a fraction of pairs to train, optimum 0"),
    "copy": (copy, "x_1..x_m SEP -> x_1..x_m (vocab=8, length=8), optimum 0"),
    "associative_recall": (associative_recall, "k_1 v_1 .. k_n v_n k_q -> v_q (keys=16, values=16, pairs=4), "
                                               "optimum 0"),
}
