"""Queries, keys and values: attention as a soft look-up, and where Q, K, V
come from.

Shapes follow the course convention `(..., N, d)`. The attention itself is
always `snippets.attention.scaled_dot_product_attention` (mask True = may
attend); this module only decides what plays the query, the key and the value.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from snippets import checks
from snippets.attention import scaled_dot_product_attention


# --8<-- [start:lookup]
def hard_lookup(query: Tensor, keys: Tensor, values: Tensor) -> Tensor:
    """The value of the one key that matches the query best.

    query (d_k,), keys (n, d_k), values (n, d_v) -> (d_v,). Like a dict, it
    returns a stored value unchanged; unlike a dict, it needs no exact match,
    only a best score.
    """
    scores = keys @ query  # (n,)
    return values[scores.argmax()]


def soft_lookup(
    query: Tensor, keys: Tensor, values: Tensor, temperature: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Every value, weighted by how well its key matches the query.

    Returns the output (d_v,) and the weights (n,) = softmax(scores / T),
    positive and summing to 1. As T goes to 0 they approach the one-hot
    choice of `hard_lookup` (shared equally by keys tied for the best score);
    as T grows, 1/n each: the mean of the values.
    """
    checks.positive_number("temperature", temperature)
    scores = keys @ query  # (n,)
    weights = torch.softmax(scores / temperature, dim=-1)  # (n,)
    return weights @ values, weights


# --8<-- [end:lookup]


# --8<-- [start:projections]
def project(
    x: Tensor,  # (..., N, d_model): one vector per token
    w_q: Tensor,  # (d_model, d_k)
    w_k: Tensor,  # (d_model, d_k)
    w_v: Tensor,  # (d_model, d_v)
) -> tuple[Tensor, Tensor, Tensor]:
    """Q = X W_Q, K = X W_K, V = X W_V: three roles for the same tokens."""
    checks.floating("(d_model, d)", w_q=w_q, w_k=w_k, w_v=w_v, d_model=x.size(-1))
    return x @ w_q, x @ w_k, x @ w_v  # (..., N, d_k), twice, and (..., N, d_v)


def self_attention(
    x: Tensor,  # (..., N, d_model)
    w_q: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    mask: Tensor | None = None,  # bool (..., N, N), True = may attend
) -> tuple[Tensor, Tensor]:
    """Q, K and V all from x: output (..., N, d_v), weights (..., N, N)."""
    q, k, v = project(x, w_q, w_k, w_v)
    return scaled_dot_product_attention(q, k, v, mask)


# --8<-- [end:projections]


# --8<-- [start:cross]
def cross_attention(
    x_q: Tensor,  # (..., N_q, d_model): the sequence that asks
    x_kv: Tensor,  # (..., N_kv, d_model): the sequence that is read
    w_q: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    mask: Tensor | None = None,  # bool (..., N_q, N_kv), True = may attend
) -> tuple[Tensor, Tensor]:
    """Queries from x_q; keys and values from x_kv.

    Returns the output (..., N_q, d_v) and the weights (..., N_q, N_kv).
    """
    q = x_q @ w_q  # (..., N_q, d_k)
    k, v = x_kv @ w_k, x_kv @ w_v  # (..., N_kv, d_k), (..., N_kv, d_v)
    return scaled_dot_product_attention(q, k, v, mask)


# --8<-- [end:cross]


# --8<-- [start:builtin]
def self_attention_builtin(
    x: Tensor,  # (..., N, d_model)
    w_q: Tensor,
    w_k: Tensor,
    w_v: Tensor,
) -> Tensor:
    """The same output with PyTorch's fused function (it returns no weights)."""
    return F.scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v)


def cross_attention_builtin(
    x_q: Tensor,  # (..., N_q, d_model)
    x_kv: Tensor,  # (..., N_kv, d_model)
    w_q: Tensor,
    w_k: Tensor,
    w_v: Tensor,
) -> Tensor:
    """Cross-attention's output, with PyTorch's fused function."""
    return F.scaled_dot_product_attention(x_q @ w_q, x_kv @ w_k, x_kv @ w_v)


# --8<-- [end:builtin]


# fmt: off
# --8<-- [start:example]
# Three tokens of width 3 and three projections: numbers to check by hand.
X = [[1.0, 0.0, 0.5], [0.0, 1.0, 1.0], [0.5, 1.0, 0.0]]
W_Q = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.5, 0.0, 1.0]]
W_K = [[0.0, 1.0, 0.0], [1.0, 0.0, 0.5], [0.0, 0.5, 1.0]]
W_V = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.5, 0.0, 2.0]]


def worked_example(
    x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor
) -> dict[str, Tensor]:
    """Every intermediate matrix of one head of self-attention, by name."""
    q, k, v = project(x, w_q, w_k, w_v)  # (N, d_k), (N, d_k), (N, d_v)
    scores = q @ k.T  # (N, N): entry (i, j) = q_i . k_j
    scaled = scores / math.sqrt(k.size(-1))  # divided by sqrt(d_k), chapter 3
    weights = torch.softmax(scaled, dim=-1)  # each row sums to 1
    output = weights @ v  # (N, d_v): row i = sum_j weights[i, j] v_j
    return dict(
        x=x, w_q=w_q, w_k=w_k, w_v=w_v, q=q, k=k, v=v,
        scores=scores, scaled=scaled, weights=weights, output=output,
    )


# --8<-- [end:example]
# fmt: on


# fmt: off
# --8<-- [start:sentence]
SENTENCE = ["the", "cat", "ate", "fish", "because", "it", "was", "hungry"]
FEATURES = [
    "determiner", "noun", "verb", "pronoun", "adjective", "conjunction",
    "animate", "food",
]
# What each word is: its embedding is 1 on these features and 0 elsewhere.
WORD_FEATURES = {
    "the": ["determiner"], "cat": ["noun", "animate"], "ate": ["verb"],
    "fish": ["noun", "food"], "because": ["conjunction"], "it": ["pronoun"],
    "was": ["verb"], "hungry": ["adjective"],
}
# What a word with a feature looks for: its query rewards keys with these.
SEEKS = {
    "determiner": ["noun"], "noun": ["verb"], "verb": ["noun", "pronoun"],
    "pronoun": ["noun", "animate"], "adjective": ["animate", "pronoun"],
    "conjunction": ["verb"],
}


def hand_built_attention(strength: float = 8.0) -> tuple[Tensor, Tensor]:
    """Embeddings X (N, d) and self-attention weights (N, N) for SENTENCE.

    Everything is chosen by hand, nothing is learned. Keys are the features
    themselves (W_K = identity); W_Q maps each feature to the features it
    seeks, times `strength`; W_V = identity.
    """
    index = {f: i for i, f in enumerate(FEATURES)}
    d = len(FEATURES)
    x = torch.zeros(len(SENTENCE), d, dtype=torch.float64)  # (N, d)
    for i, word in enumerate(SENTENCE):
        x[i, [index[f] for f in WORD_FEATURES[word]]] = 1.0
    # (d, d): row = a feature of the query word, column = a feature it seeks
    w_q = torch.zeros(d, d, dtype=torch.float64)
    for feature, sought in SEEKS.items():
        w_q[index[feature], [index[f] for f in sought]] = strength
    eye = torch.eye(d, dtype=torch.float64)
    _, weights = self_attention(x, w_q, eye, eye)
    return x, weights


# --8<-- [end:sentence]
# fmt: on
