"""Chapter 9: additive and dot-product attention, soft vs top-k attention and their costs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from snippets.families import (
    AdditiveAttention,
    DotProductAttention,
    PredictiveAlignment,
    counted_multiply_adds,
    local_attention,
    softmax_attend,
    topk_attention,
)

# float32 matmuls round at ~1e-7 relative; float64 at ~1e-16.
TOL = {
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float64: dict(atol=1e-12, rtol=1e-12),
}


def naive_additive(module: AdditiveAttention, q, k, v, mask=None):
    """Bahdanau's formula written out pair by pair with Python loops, no broadcasting."""
    Wq, Wk, w = module.W_q.weight, module.W_k.weight, module.v.weight[0]
    n_q, n_k = q.size(0), k.size(0)
    out = torch.zeros(n_q, v.size(1), dtype=q.dtype)
    weights = torch.zeros(n_q, n_k, dtype=q.dtype)
    for i in range(n_q):
        e = [
            float(w @ torch.tanh(Wq @ q[i] + Wk @ k[j]))
            if mask is None or mask[i, j]
            else -math.inf
            for j in range(n_k)
        ]
        m = max(e)
        exps = [math.exp(x - m) for x in e]
        total = sum(exps)
        for j in range(n_k):
            weights[i, j] = exps[j] / total
            out[i] += weights[i, j] * v[j]
    return out, weights


@pytest.mark.parametrize("masked", [False, True])
def test_additive_attention_matches_a_naive_loop(gen, masked):
    d_q, d_k, d_h, d_v, n_q, n_k = (
        5,
        3,
        7,
        4,
        6,
        9,
    )  # queries and keys of different widths
    module = AdditiveAttention(d_q, d_k, d_h).double()
    q = torch.randn(n_q, d_q, generator=gen, dtype=torch.float64)
    k = torch.randn(n_k, d_k, generator=gen, dtype=torch.float64)
    v = torch.randn(n_k, d_v, generator=gen, dtype=torch.float64)
    mask = None
    if masked:
        mask = torch.rand(n_q, n_k, generator=gen) > 0.5
        mask[:, 0] = True  # every query may attend somewhere
    with torch.no_grad():
        out, weights = module(q, k, v, mask)
        ref_out, ref_weights = naive_additive(module, q, k, v, mask)
    torch.testing.assert_close(weights, ref_weights, **TOL[torch.float64])
    torch.testing.assert_close(out, ref_out, **TOL[torch.float64])


def test_additive_attention_broadcasts_over_batch_dimensions(gen):
    module = AdditiveAttention(8, 6, 16)
    q = torch.randn(2, 3, 5, 8, generator=gen)
    k = torch.randn(2, 3, 7, 6, generator=gen)
    v = torch.randn(2, 3, 7, 4, generator=gen)
    out, weights = module(q, k, v)
    assert out.shape == (2, 3, 5, 4) and weights.shape == (2, 3, 5, 7)
    with torch.no_grad():  # each batch element on its own gives the same result
        single, _ = module(q[1, 2], k[1, 2], v[1, 2])
    torch.testing.assert_close(out[1, 2], single, **TOL[torch.float32])


def test_additive_scores_are_bounded_by_the_l1_norm_of_v(gen):
    """|v^T tanh(.)| <= sum |v_m| whatever the inputs: additive scores cannot blow up."""
    module = AdditiveAttention(16, 16, 8)
    q = 1e4 * torch.randn(5, 16, generator=gen)  # huge inputs saturate tanh
    k = 1e4 * torch.randn(9, 16, generator=gen)
    with torch.no_grad():
        scores = module.scores(q, k)
        bound = module.v.weight.abs().sum()
    assert (scores.abs() <= bound * (1 + 1e-6)).all()  # 1e-6: float32 summation order


def test_softmax_attend_gives_zeros_for_an_empty_row(gen):
    scores = torch.randn(3, 4, generator=gen)
    v = torch.randn(4, 2, generator=gen)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    out, weights = softmax_attend(scores, v, mask)
    assert torch.equal(weights[1], torch.zeros(4)) and torch.equal(
        out[1], torch.zeros(2)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dot_product_module_equals_torch_sdpa_on_projected_inputs(gen, dtype):
    module = DotProductAttention(5, 3, 8).to(dtype)
    q = torch.randn(2, 6, 5, generator=gen, dtype=dtype)
    k = torch.randn(2, 9, 3, generator=gen, dtype=dtype)
    v = torch.randn(2, 9, 4, generator=gen, dtype=dtype)
    with torch.no_grad():
        out, _ = module(q, k, v)
        expected = F.scaled_dot_product_attention(module.W_q(q), module.W_k(k), v)
    torch.testing.assert_close(out, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch, n_q, n_k", [((), 1, 1), ((3,), 5, 11), ((2, 4), 7, 6)])
def test_topk_with_k_equal_n_is_soft_attention(gen, dtype, batch, n_q, n_k):
    q = torch.randn(*batch, n_q, 8, generator=gen, dtype=dtype)
    k = torch.randn(*batch, n_k, 8, generator=gen, dtype=dtype)
    v = torch.randn(*batch, n_k, 3, generator=gen, dtype=dtype)
    out, weights = topk_attention(q, k, v, top_k=n_k)
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, k, v), **TOL[dtype]
    )
    torch.testing.assert_close(
        weights, torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), -1), **TOL[dtype]
    )


@pytest.mark.parametrize("top_k", [1, 3, 10])
def test_topk_weights_have_exactly_k_nonzeros_summing_to_one(gen, top_k):
    q = torch.randn(2, 3, 12, 16, generator=gen, dtype=torch.float64)
    k = torch.randn(2, 3, 20, 16, generator=gen, dtype=torch.float64)
    v = torch.randn(2, 3, 20, 5, generator=gen, dtype=torch.float64)
    _, weights = topk_attention(q, k, v, top_k)
    assert torch.equal((weights > 0).sum(-1), torch.full((2, 3, 12), top_k))
    torch.testing.assert_close(
        weights.sum(-1), torch.ones(2, 3, 12, dtype=torch.float64)
    )
    # The kept keys are those with the largest scores: the smallest kept score is at least
    # the largest dropped one.
    scores = q @ k.transpose(-2, -1)
    kept_min = scores.masked_fill(weights == 0, math.inf).amin(-1)
    dropped_max = scores.masked_fill(weights > 0, -math.inf).amax(-1)
    assert (kept_min >= dropped_max).all()


def test_topk_output_matches_a_brute_force_per_query(gen):
    q = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    k = torch.randn(9, 6, generator=gen, dtype=torch.float64)
    v = torch.randn(9, 3, generator=gen, dtype=torch.float64)
    out, _ = topk_attention(q, k, v, top_k=3)
    for i in range(4):
        s = [float(q[i] @ k[j]) / math.sqrt(6) for j in range(9)]
        best = sorted(range(9), key=lambda j: -s[j])[:3]
        z = sum(math.exp(s[j]) for j in best)
        expected = sum(math.exp(s[j]) / z * v[j] for j in best)
        torch.testing.assert_close(out[i], expected, **TOL[torch.float64])


def test_flop_counter_counts_a_matrix_product_in_closed_form(gen):
    a, b = torch.randn(7, 5, generator=gen), torch.randn(5, 3, generator=gen)
    assert counted_multiply_adds(lambda: a @ b) == 7 * 5 * 3


@pytest.mark.parametrize("n", [64, 1000])
def test_topk_still_pays_for_scoring_every_key(gen, n):
    """Counted multiply-adds per query: soft n*d + n*d_v, top-k n*d + k*d_v, not O(k)."""
    n_q, d, d_v, top_k = 3, 16, 8, 4
    q = torch.randn(n_q, d, generator=gen)
    k = torch.randn(n, d, generator=gen)
    v = torch.randn(n, d_v, generator=gen)
    soft = counted_multiply_adds(lambda: F.softmax(q @ k.T, -1) @ v)
    hard = counted_multiply_adds(lambda: topk_attention(q, k, v, top_k))
    assert soft == n_q * (n * d + n * d_v)
    assert hard == n_q * (n * d + top_k * d_v)
    assert hard >= n_q * n * d  # the scoring alone is already linear in n


# ------------------------------------------------------------------ local attention


def local_by_hand(q, k, v, centres, window, gaussian):
    """Global scores, restricted to the window around round(p_t) and reweighted, per query
    with Python loops: softmax over the window, then the Gaussian factor of Luong et al."""
    n_q, n_k = q.size(0), k.size(0)
    out = torch.zeros(n_q, v.size(1), dtype=q.dtype)
    weights = torch.zeros(n_q, n_k, dtype=q.dtype)
    for t in range(n_q):
        p = float(centres[t])
        c = round(p)  # half to even, as torch.round
        keys = [s for s in range(c - window, c + window + 1) if 0 <= s < n_k]
        e = {s: float(q[t] @ k[s]) / math.sqrt(q.size(1)) for s in keys}
        top = max(e.values())
        z = sum(math.exp(x - top) for x in e.values())
        for s in keys:
            a = math.exp(e[s] - top) / z
            if gaussian:
                a *= math.exp(-((s - p) ** 2) / (2 * (window / 2) ** 2))
            weights[t, s] = a
            out[t] += a * v[s]
    return out, weights


@pytest.mark.parametrize("gaussian", [False, True])
def test_local_attention_is_global_attention_restricted_and_reweighted(gen, gaussian):
    n_q, n_k, d, d_v, window = 7, 12, 5, 3, 2
    q = torch.randn(n_q, d, generator=gen, dtype=torch.float64)
    k = torch.randn(n_k, d, generator=gen, dtype=torch.float64)
    v = torch.randn(n_k, d_v, generator=gen, dtype=torch.float64)
    centres = n_k * torch.rand(n_q, generator=gen, dtype=torch.float64)
    centres[:2] = torch.tensor([0.2, n_k - 0.3])  # windows cut by both ends
    out, weights = local_attention(q, k, v, centres, window, gaussian)
    ref_out, ref_weights = local_by_hand(q, k, v, centres, window, gaussian)
    torch.testing.assert_close(weights, ref_weights, **TOL[torch.float64])
    torch.testing.assert_close(out, ref_out, **TOL[torch.float64])


def test_local_m_with_a_window_over_every_key_is_global_attention(gen):
    q = torch.randn(2, 3, 6, 8, generator=gen, dtype=torch.float64)
    k = torch.randn(2, 3, 9, 8, generator=gen, dtype=torch.float64)
    v = torch.randn(2, 3, 9, 4, generator=gen, dtype=torch.float64)
    centres = torch.arange(6, dtype=torch.float64).expand(2, 3, 6)  # p_t = t
    out, _ = local_attention(q, k, v, centres, window=9, gaussian=False)
    expected = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, expected, **TOL[torch.float64])


def test_local_windows_at_the_edges_keep_only_the_keys_inside(gen):
    n_k, window = 10, 3
    q = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    k = torch.randn(n_k, 4, generator=gen, dtype=torch.float64)
    v = torch.randn(n_k, 2, generator=gen, dtype=torch.float64)
    centres = torch.tensor([0.0, 5.0, n_k - 1.0], dtype=torch.float64)
    _, soft = local_attention(q, k, v, centres, window, gaussian=False)
    kept = [torch.nonzero(row).flatten().tolist() for row in soft]
    assert kept == [[0, 1, 2, 3], list(range(2, 9)), [6, 7, 8, 9]]
    torch.testing.assert_close(soft.sum(-1), torch.ones(3, dtype=torch.float64))
    _, faded = local_attention(q, k, v, centres, window, gaussian=True)
    # The Gaussian multiplies each weight by exp(-(s - p)^2 / (2 (w/2)^2)) <= 1, with no
    # renormalisation: the centre keeps its weight, the edge of the window keeps e^-2 of it.
    torch.testing.assert_close(faded[1, 5], soft[1, 5])
    torch.testing.assert_close(faded[1, 8], soft[1, 8] * math.exp(-2.0))
    assert (faded.sum(-1) < 1).all()


def test_local_attention_never_reads_a_key_outside_the_window(gen):
    q = torch.randn(4, 6, generator=gen)
    k = torch.randn(20, 6, generator=gen)
    v = torch.randn(20, 3, generator=gen)
    centres = torch.tensor([3.0, 4.4, 5.6, 6.0])
    out, _ = local_attention(q, k, v, centres, window=2)
    k[10:], v[10:] = 1e6, -1e6  # keys and values far from every window
    torch.testing.assert_close(local_attention(q, k, v, centres, window=2)[0], out)


@pytest.mark.parametrize("n_k", [64, 1000])
def test_local_attention_costs_the_window_not_the_source(gen, n_k):
    """Counted multiply-adds per query: (2w + 1)(d_k + d_v), independent of n_k."""
    n_q, d, d_v, window = 5, 16, 8, 4
    q = torch.randn(n_q, d, generator=gen)
    k = torch.randn(n_k, d, generator=gen)
    v = torch.randn(n_k, d_v, generator=gen)
    centres = torch.linspace(0, n_k - 1, n_q)
    local = counted_multiply_adds(lambda: local_attention(q, k, v, centres, window))
    assert local == n_q * (2 * window + 1) * (d + d_v)


def test_local_attention_rejects_bad_arguments(gen):
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    with pytest.raises(ValueError, match="window"):
        local_attention(q, k, v, torch.zeros(3), window=0, gaussian=True)
    with pytest.raises(ValueError, match="window"):
        local_attention(q, k, v, torch.zeros(3), window=-1, gaussian=False)
    with pytest.raises(TypeError, match="window"):
        local_attention(q, k, v, torch.zeros(3), window=1.5)
    with pytest.raises(ValueError, match="centres"):
        local_attention(q, k, v, torch.zeros(4), window=1)


def test_predicted_centres_follow_luongs_formula(gen):
    align = PredictiveAlignment(6, 5).double()
    h = torch.randn(2, 7, 6, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        p = align(h, 30)
        by_hand = 30 * torch.sigmoid(
            torch.tanh(h @ align.W_p.weight.T) @ align.v_p.weight[0]
        )
    assert p.shape == (2, 7) and ((p > 0) & (p < 30)).all()
    torch.testing.assert_close(p, by_hand, **TOL[torch.float64])


def test_only_the_gaussian_lets_a_gradient_reach_the_centres(gen):
    """local-p learns p_t through the Gaussian factor; the window itself has no gradient."""
    q, k, v = torch.randn(3, 4), torch.randn(12, 4), torch.randn(12, 2)
    for gaussian, expect_gradient in ((True, True), (False, False)):
        centres = torch.tensor([2.3, 5.8, 9.1], requires_grad=True)
        out, _ = local_attention(q, k, v, centres, window=2, gaussian=gaussian)
        reached = out.requires_grad and bool(
            (torch.autograd.grad(out.sum(), centres)[0].abs() > 0).all()
        )
        assert reached == expect_gradient


def tournament_top_k(values: list[float], k: int) -> tuple[list[int], int]:
    """The k largest by a knockout tournament, replaying the winner's path after each
    removal; returns their indices in order and the number of comparisons made."""
    size = 1 << max(len(values) - 1, 0).bit_length()  # leaves, padded to a power of 2
    tree: list[int | None] = [None] * size + list(range(len(values)))
    tree += [None] * (2 * size - len(tree))
    comparisons = 0

    def play(node: int) -> None:
        nonlocal comparisons
        a, b = tree[2 * node], tree[2 * node + 1]
        if a is not None and b is not None:
            comparisons += 1
            tree[node] = a if values[a] >= values[b] else b
        else:
            tree[node] = a if b is None else b

    for node in range(size - 1, 0, -1):
        play(node)
    winners = [tree[1]]
    while len(winners) < k:  # remove the last winner, replay its path, take the new one
        node = size + winners[-1]
        tree[node] = None
        while node > 1:
            node //= 2
            play(node)
        winners.append(tree[1])
    return winners, comparisons


@pytest.mark.parametrize("n, k", [(2, 1), (9, 1), (9, 4), (33, 8), (64, 63)])
def test_a_tournament_selects_the_top_k_within_the_pages_bounds(gen, n, k):
    """Chapter 9: at least n - 1 comparisons, at most n - 1 + (k - 1) ceil(log2 n)."""
    values = torch.randn(n, generator=gen)
    winners, comparisons = tournament_top_k(values.tolist(), k)
    assert winners == values.topk(k).indices.tolist()
    assert n - 1 <= comparisons <= n - 1 + (k - 1) * math.ceil(math.log2(n))
