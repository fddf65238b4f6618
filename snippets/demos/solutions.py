"""The numbers of the exercises' worked solutions, one function per chapter (`ch03`, ...).

A solution that derives something on the page confirms it with numbers the build
computes here, often by running the reference solution from `snippets/solutions/`.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn

from snippets.attention import scaled_dot_product_attention
from snippets.bilingual import same, say
from snippets.exercises import reference, registry
from snippets.families import AdditiveAttention, counted_multiply_adds
from snippets.flash import flash_attention_io, online_logsumexp, standard_attention_io
from snippets.further import linear_sample, relative_logits_skewed, scan_parallel
from snippets.masks import causal_mask, combine, naive_attention, padding_mask
from snippets.measure import log_log_slope, median_interval
from snippets.multihead import MultiHeadAttention, count_parameters
from snippets.performer import (
    gaussian_random_features,
    kernel_estimates,
    softmax_features,
)
from snippets.positional import apply_rope, sinusoidal_encoding
from snippets.qkv import hard_lookup, soft_lookup
from snippets.reformer import lsh_hash, lsh_key_sets
from snippets.sequence_models import (
    KINDS,
    gradient_reach,
    layers_to_connect,
    make_layer,
)
from snippets.solutions import (
    ch01,
    ch02,
    ch03,
    ch04,
    ch05,
    ch06,
    ch07,
    ch09,
    ch10,
    ch11,
    ch12,
    ch13,
    ch14,
    ch16,
)
from snippets.sparse import dilated_window_mask, global_tokens_mask, sliding_window_mask
from snippets.transformer import (
    DecoderLayer,
    EncoderLayer,
    Transformer,
    TransformerConfig,
)
from snippets.vit import VisionTransformer, ViTConfig, shifted_window_attention


def code_exercises() -> dict[str, str]:
    """What the build checks each page's exercises against: for each code exercise, its
    function, title, number of test cases and the call it is made with, tab-separated."""
    found = {}
    for id_, exercise in registry().items():
        parameters = inspect.signature(reference(exercise)).parameters.values()
        plain = [p.replace(annotation=inspect.Parameter.empty) for p in parameters]
        call = f"{exercise.function}{inspect.Signature(plain)}"
        cases = len(exercise.cases())
        # data for the build's checks, not shown: the same in both editions
        fields = [exercise.function, exercise.title, str(cases), call]
        found[id_] = same("\t".join(fields))
    return found


# A difference of exactly zero, and whether an output changed, in words
_BIT_FOR_BIT = say("0 (bit for bit)", "0（逐位相同）")
_CHANGED = {True: say("changed", "改变了"), False: say("did not change", "没有改变")}


def _listed(numbers: list[int]) -> str:
    """Positions as a list: "0, 1, 2" in English, "0、1、2" in Chinese."""
    return say(", ".join(map(str, numbers)), "、".join(map(str, numbers)))


def ch03_numbers() -> dict[str, str]:
    """Softmax ignores a constant added to a row of scores but not one added to a
    column (exercise 3.1); the sampled variance of q.k for sigma = 2 (exercise 3.2)."""
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4, 6, generator=g, dtype=torch.float64)  # 4 queries, 6 keys
    p = torch.softmax(s, dim=-1)
    shift = 5.0  # the page's constant
    row = (torch.softmax(s + shift, dim=-1) - p).abs().max().item()
    column = s.clone()
    column[:, 0] += shift  # key 0 scores `shift` more for every query
    p_col = torch.softmax(column, dim=-1)
    d_k, sigma, n_samples = 64, 2.0, 20_000
    variance = ch03.dot_product_variance(d_k, sigma, n_samples, g)
    return {
        "row_change": f"{row:.1e}",
        "odds_factor": f"{math.exp(shift):.0f}",  # key 0's odds against any other
        "key0_before": f"{p[:, 0].mean().item():.3f}",
        "key0_after": f"{p_col[:, 0].mean().item():.3f}",
        "d_k": str(d_k),
        "sigma": f"{sigma:g}",
        "n_samples": f"{n_samples:,}",
        "variance": f"{variance:,.0f}",
        "predicted": f"{d_k * sigma**4:,.0f}",
    }


def ch15_numbers() -> dict[str, str]:
    """ViT-B/16 at 384 x 384 pixels (exercise 15.1); the multiply-adds of an encoder
    layer, counted by PyTorch against 12 n D^2 + 2 n^2 D, for ViT-B/16 and Swin-T's
    first stage (exercise 15.2); Swin's bias table against a full bias (15.5)."""
    with torch.device("meta"):  # shapes only: nothing allocated, nothing computed
        low = VisionTransformer(ViTConfig(image_size=224))
        high = VisionTransformer(ViTConfig(image_size=384))
        changed = [
            name
            for (name, p), q in zip(
                low.named_parameters(), high.parameters(), strict=True
            )
            if p.shape != q.shape
        ]
        d = low.config.d_model
        layer = EncoderLayer(low.config.encoder_config())
        counts = {  # multiply-adds of one layer on n tokens, n = 197 and 577
            n: counted_multiply_adds(lambda n=n: layer(torch.empty(1, n, d)))
            for n in (low.config.num_patches + 1, high.config.num_patches + 1)
        }
        # Swin-T's first stage: 56 x 56 tokens of width 96, windows of 7 x 7
        side, c, m = 56, 96, 7
        n_swin = side * side
        grid = torch.empty(1, side, side, c)
        windowed = counted_multiply_adds(
            lambda: shifted_window_attention(grid, grid, grid, m, m // 2)
        )
    if any(count != 12 * n * d**2 + 2 * n * n * d for n, count in counts.items()):
        raise RuntimeError(f"ViT-B/16 layer: counted {counts}, not 12nD^2 + 2n^2D")
    if windowed != 2 * m * m * n_swin * c:
        raise RuntimeError(f"Swin windows: counted {windowed}, not 2 M^2 n C")
    n224, n384 = counts
    linear = 12 * n_swin * c**2  # projections and MLP of one Swin-T layer
    return {
        "tokens_224": str(low.config.num_patches),
        "tokens_384": str(high.config.num_patches),
        "changed": ", ".join(f"`{name}`" for name in changed),
        "pos_224": str(tuple(low.pos_embed.shape)),
        "pos_384": str(tuple(high.pos_embed.shape)),
        "added": f"{high.pos_embed.numel() - low.pos_embed.numel():,}",
        "score_factor": f"{(n384 / n224) ** 2:.1f}",
        "crossover_layer": f"{6 * d:,}",
        "layer_224": f"{counts[n224]:,}",
        "layer_384": f"{counts[n384]:,}",
        "share_224": f"{2 * n224 * n224 * d / counts[n224]:.1%}",
        "share_384": f"{2 * n384 * n384 * d / counts[n384]:.1%}",
        "swin_tokens": f"{n_swin:,}",
        "swin_crossover": f"{6 * c:,}",
        "swin_dense_share": f"{2 * n_swin**2 * c / (linear + 2 * n_swin**2 * c):.0%}",
        "swin_window_share": f"{windowed / (linear + windowed):.1%}",
        "swin_windowed": f"{windowed:,}",
        "swin_ratio": f"{n_swin // (m * m)}",
        "table_rows": f"{(2 * m - 1) ** 2}",
        "full_bias": f"{(m * m) ** 2:,}",
    }


def ch16_numbers() -> dict[str, str]:
    """The gradient of a fractional read against the slopes of the signal (exercise
    16.2); the bidirectional skew against the causal one, and a scan run in two chunks
    against the whole (16.3, 16.4)."""
    g = torch.Generator().manual_seed(0)  # the signal of the page's code
    v = torch.randn(1, 8, 1, generator=g, dtype=torch.float64)
    grads = {}
    for p in (2.3, 2.0):
        pos = torch.tensor([[p]], dtype=torch.float64, requires_grad=True)
        linear_sample(v, pos).sum().backward()
        grads[p] = pos.grad.item()
    slope = (v[0, 1:, 0] - v[0, :-1, 0]).tolist()  # slope[k] = v[k + 1] - v[k]

    g = torch.Generator().manual_seed(1)
    n, d = 12, 8
    q = torch.randn(2, n, d, generator=g, dtype=torch.float64)
    e_rel = torch.randn(2 * n - 1, d, generator=g, dtype=torch.float64)
    both = ch16.relative_logits_bidirectional(q, e_rel)
    causal = relative_logits_skewed(q, e_rel[:n])  # distances -(n - 1) .. 0
    past = causal_mask(n)
    agree = (both - causal)[..., past].abs().max().item()

    n, k = 64, 40  # tokens, and the length of the first chunk
    a = torch.exp(-torch.rand(2, n, 4, 3, generator=g, dtype=torch.float64))
    b = torch.randn(2, n, 4, 3, generator=g, dtype=torch.float64)
    whole = scan_parallel(a, b)
    zero = torch.zeros(2, 4, 3, dtype=torch.float64)
    first = ch16.scan_from_state(a[:, :k], b[:, :k], zero)
    second = ch16.scan_from_state(a[:, k:], b[:, k:], first[:, -1])
    chunk_err = (torch.cat([first, second], dim=1) - whole).abs().max().item()
    return {
        "grad_frac": f"{grads[2.3]:.4f}",
        "grad_int": f"{grads[2.0]:.4f}",
        "slope_right": f"{slope[2]:.4f}",
        "slope_left": f"{slope[1]:.4f}",
        "skew_agree": _BIT_FOR_BIT if agree == 0 else f"{agree:.1e}",
        "tokens": str(n),
        "first_chunk": str(k),
        "second_chunk": str(n - k),
        "chunk_err": _BIT_FOR_BIT if chunk_err == 0 else f"{chunk_err:.1e}",
    }


def ch12_numbers() -> dict[str, str]:
    """Angular LSH under scaling and negation (exercise 12.1); sampled collision rates
    (12.2); several real hash rounds combined, with and without counting each key once
    (12.3)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 16, generator=g, dtype=torch.float64)

    def buckets(y: torch.Tensor) -> torch.Tensor:  # the same rotation for every call
        return lsh_hash(y, 8, 1, torch.Generator().manual_seed(1))[0]

    h, h3, h_neg = buckets(x), buckets(3 * x), buckets(-x)
    rate = {
        (nb, deg): ch12.collision_rate(
            math.radians(deg), 16, nb, 20_000, torch.Generator().manual_seed(2)
        )
        for nb, deg in ((2, 60), (2, 90), (8, 60))
    }
    # Four real hash rounds of 64 shared query/key vectors: 8 buckets, chunks of 8.
    qk = torch.randn(64, 16, generator=g, dtype=torch.float64)
    v = torch.randn(64, 4, generator=g, dtype=torch.float64)
    rounds = lsh_hash(qk, 8, 4, g)  # (4, 64)
    reached = torch.stack([lsh_key_sets(rounds[r : r + 1], 8) for r in range(4)])
    union = reached.any(dim=0)
    s = qk @ torch.nn.functional.normalize(qk, dim=-1).T / math.sqrt(16)
    exact = torch.softmax(s.masked_fill(~union, float("-inf")), dim=-1) @ v
    once = ch12.combine_rounds(s, v, reached)
    # the same combination without the 1/c_ij: every round reaches with count 1
    scores = s.masked_fill(~reached, float("-inf"))
    lam = scores.logsumexp(dim=-1, keepdim=True)
    plain = (torch.softmax(lam, dim=0) * (torch.exp(scores - lam) @ v)).sum(dim=0)
    repeated = (reached.sum(dim=0) > 1).sum() / union.sum()
    return {
        "vectors": f"{len(x):,}",
        "scaled_same": f"{(h3 == h).sum().item():,}",
        "negated_shifted": f"{(h_neg == (h + 4) % 8).sum().item():,}",
        "negated_same": f"{(h_neg == h).sum().item():,}",
        "samples": "20,000",
        "p2_60": f"{rate[2, 60]:.3f}",
        "p2_60_exact": f"{1 - 1 / 3:.3f}",
        "p2_90": f"{rate[2, 90]:.3f}",
        "p8_60": f"{rate[8, 60]:.3f}",
        "repeated": f"{repeated.item():.0%}",
        "error_once": f"{(once - exact).abs().max().item():.0e}",
        "error_plain": f"{(plain - exact).abs().max().item():.2f}",
    }


def ch13_numbers() -> dict[str, str]:
    """The online log-sum-exp with and without its rescaling, in two orders (exercise
    13.1); keys split into parts (13.3); HBM accesses of the two loop orders (13.4)."""
    x = torch.tensor([3.0, 1.0, 0.0, 2.0, 5.0, 4.0], dtype=torch.float64)

    def no_rescale(x: torch.Tensor) -> float:  # the recurrence, without exp(m - m')
        m, ell = -math.inf, 0.0
        for block in x.split(2):
            m = max(m, block.max().item())
            ell += torch.exp(block - m).sum().item()
        return m + math.log(ell)

    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 1, 64, generator=g, dtype=torch.float64)  # one new token
    k, v = (
        torch.randn(1, 4, 1000, 64, generator=g, dtype=torch.float64) for _ in range(2)
    )
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    split_error = max(
        (ch13.split_kv_attention(q, k, v, s) - reference).abs().max().item()
        for s in (1, 2, 3, 8)
    )
    n, d, sram = 4096, 64, 192 * 1024 // 2  # an A100's 192 KB, in 2-byte numbers
    algorithm_1 = flash_attention_io(n, d, sram)
    queries_outside = ch13.queries_outside_io(n, d, sram)
    return {
        "exact": f"{torch.logsumexp(x, dim=0).item():.4f}",
        "online": f"{online_logsumexp(x, 2).item():.4f}",
        "forward_no_rescale": f"{no_rescale(x):.4f}",
        "reversed_no_rescale": f"{no_rescale(x.flip(0)):.4f}",
        "split_error": f"{split_error:.0e}",
        "n": f"{n:,}",
        "sram": f"{sram:,}",
        "standard": f"{standard_attention_io(n, d) / 1e6:.1f}",
        "algorithm_1": f"{algorithm_1 / 1e6:.1f}",
        "algorithm_1_lead": f"{12 * n**2 * d**2 / sram / 1e6:.1f}",
        "queries_outside": f"{queries_outside / 1e6:.1f}",
        "queries_outside_lead": f"{8 * n**2 * d**2 / sram / 1e6:.1f}",
        "ratio": f"{algorithm_1 / queries_outside:.2f}",
    }


def ch14_numbers() -> dict[str, str]:
    """A fixed cost bends a log-log slope (exercise 14.1); attention's share of a
    layer's FLOPs (14.2); arithmetic intensities against an A100's balance (14.3); the
    sign test's interval for 6 and 20 rounds (14.4)."""
    lengths = [256, 512, 1024, 2048, 4096]
    seconds = [50e-6 + 1e-9 * n**2 for n in lengths]  # 50 µs plus 1 ns per N^2
    d, d_ff = 768, 3072  # GPT-2 small
    at_1024 = ch14.layer_flops(1024, d, d_ff)
    _, mixing, mlp = ch14.layer_flops(d_ff, d, d_ff)
    projections_2, mixing_2, mlp_2 = ch14.layer_flops(2 * d + d_ff, d, d_ff)
    intensity = {
        "scores": ch14.matmul_intensity(4096, 64, 4096, 2),  # Q K^T of one head
        "mlp": ch14.matmul_intensity(4096, 1024, 4096, 2),  # (N, d) @ (d, 4d)
        "decode": ch14.matmul_intensity(1, 4096, 4096, 2),  # one token, one matrix
    }
    six = median_interval(range(6))
    twenty = median_interval(range(20))  # values 0 .. 19: the k-th smallest is k - 1
    return {
        "slope_all": f"{log_log_slope(lengths, seconds):.2f}",
        "slope_first": f"{log_log_slope(lengths[:2], seconds[:2]):.2f}",
        "slope_last": f"{log_log_slope(lengths[-2:], seconds[-2:]):.2f}",
        "bend": f"{math.sqrt(50e-6 / 1e-9):.0f}",
        "mixing_share_1024": f"{at_1024[1] / sum(at_1024):.0%}",
        "n_mlp": f"{d_ff:,}",
        "mixing_over_mlp": f"{mixing / mlp:g}",
        "n_rest": f"{2 * d + d_ff:,}",
        "mixing_over_rest": f"{mixing_2 / (projections_2 + mlp_2):g}",
        "intensity_scores": f"{intensity['scores']:.0f}",
        "intensity_mlp": f"{intensity['mlp']:.0f}",
        "intensity_decode": f"{intensity['decode']:.2f}",
        "balance": f"{312e12 / 2.0e12:.0f}",
        "coverage_6": f"{six[2]:.1%}",
        "k_20": f"{int(twenty[0]) + 1}",
        "coverage_20": f"{twenty[2]:.1%}",
    }


def ch05_numbers() -> dict[str, str]:
    """Which output coordinates one head's values reach with and without W_O
    (exercise 5.1); the ranks of each head's QK and OV matrices (5.3); parameters
    and cached numbers of grouped-query attention (5.4)."""
    with torch.random.fork_rng():  # the page's snippet, under its seed
        torch.manual_seed(0)
        mha = MultiHeadAttention(d_model=16, num_heads=4)
        x = torch.randn(1, 5, 16)
        no_w_o = MultiHeadAttention(d_model=16, num_heads=4)
    no_w_o.load_state_dict(mha.state_dict())
    no_w_o.w_o = nn.Identity()
    moved = []
    with torch.no_grad():
        for m in (mha, no_w_o):
            before = m(x, x, x)[0]
            m.w_v.weight[:4] += 0.5  # head 0's values only
            change = (m(x, x, x)[0] - before).abs().amax(dim=(0, 1))  # (16,)
            moved.append((change > 1e-6).nonzero().flatten().tolist())

    g = torch.Generator().manual_seed(5)
    d, heads = 64, 8
    w_q, w_k, w_v, w_o = (
        torch.randn(d, d, generator=g, dtype=torch.float64) for _ in range(4)
    )
    qk, ov = ch05.head_circuits(w_q, w_k, w_v, w_o, heads)
    ranks = {
        name: sorted({int(r) for r in torch.linalg.matrix_rank(m)})
        for name, m in (("qk", qk), ("ov", ov))
    }
    if len(ranks["qk"]) != 1 or len(ranks["ov"]) != 1:
        raise AssertionError(f"heads of one module have different ranks: {ranks}")
    one_head = torch.linalg.matrix_rank(w_q @ w_k.T).item()  # H = 1, width d
    circuits = {
        "rank_d": str(d),
        "rank_heads": str(heads),
        "rank_d_head": str(d // heads),
    }

    d, heads, d_head = 512, 8, 64  # the base Transformer
    counts, cached = {}, {}
    for groups in (8, 2, 1):
        kv = groups * d_head
        layers = nn.ModuleList(
            nn.Linear(d, width, device="meta") for width in (d, kv, kv, d)
        )
        counts[groups] = count_parameters(layers)
        closed_form = 2 * d * d + 2 * d * kv + 2 * d + 2 * kv
        if counts[groups] != closed_form:
            raise AssertionError(f"G={groups}: {counts[groups]} != {closed_form}")
        cached[groups] = 2 * kv  # a key and a value per token and layer
    full = count_parameters(MultiHeadAttention(d, heads))
    if full != counts[8]:
        raise AssertionError(f"G = H should be multi-head attention: {full}")
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 7, 32, generator=g, dtype=torch.float64)
    mha = MultiHeadAttention(32, 4, bias=False).double()
    w = [lin.weight.T for lin in (mha.w_q, mha.w_k, mha.w_v, mha.w_o)]
    with torch.no_grad():
        gap = (ch05.grouped_query_attention(x, *w, 4) - mha(x, x, x)[0]).abs().max()
    return {
        "moved_with": str(len(moved[0])),
        "moved_without": _listed(moved[1]),
        "qk_rank": str(ranks["qk"][0]),
        "ov_rank": str(ranks["ov"][0]),
        "one_head_rank": str(one_head),
        **circuits,
        "direct": f"{heads * d * d:,}",
        "factored": f"{2 * d * d:,}",
        "gqa_8": f"{counts[8]:,}",
        "gqa_2": f"{counts[2]:,}",
        "gqa_1": f"{counts[1]:,}",
        "cache_8": f"{cached[8]:,}",
        "cache_2": f"{cached[2]:,}",
        "cache_1": f"{cached[1]:,}",
        "mha_gap": f"{gap.item():.1e}",
    }


def ch06_numbers() -> dict[str, str]:
    """Offsets +5 and -5 under the sinusoidal encoding and under RoPE (exercise 6.1);
    the closed form of 6.2 against rotated vectors; rotate half against the
    interleaved form with its dimensions permuted (6.3)."""
    pe = sinusoidal_encoding(64, 16, dtype=torch.float64)  # the page's snippet
    g = torch.Generator().manual_seed(0)
    query, key = torch.randn(2, 1, 16, generator=g, dtype=torch.float64)

    def score(m: int, n: int) -> float:
        rq = apply_rope(query, torch.tensor([m]))
        return (rq @ apply_rope(key, torch.tensor([n])).T).item()

    g = torch.Generator().manual_seed(7)
    d, n = 64, 48
    q, k = torch.randn(2, d, generator=g, dtype=torch.float64)
    positions = torch.arange(n)
    # every query position m against every key position n: (n, n)
    rq, rk = (apply_rope(v.expand(n, d), positions) for v in (q, k))
    rotated = rq @ rk.T
    offsets = positions[None, :] - positions[:, None]  # n - m
    by_offset = ch06.rope_offset_scores(q, k, torch.arange(-(n - 1), n))
    offset_gap = (rotated - by_offset[offsets + n - 1]).abs().max().item()

    x = torch.randn(3, 10, d, generator=g, dtype=torch.float64)  # (B, N, d)
    perm = torch.arange(d).view(2, d // 2).T.flatten()  # 0, d/2, 1, d/2 + 1, ...
    half = ch06.apply_rope_half(x, positions[:10])
    back = apply_rope(x[..., perm], positions[:10])[..., perm.argsort()]
    return {
        "pe_plus": f"{(pe[20] @ pe[25]).item():.4f}",
        "pe_minus": f"{(pe[20] @ pe[15]).item():.4f}",
        "rope_plus": f"{score(20, 25):.4f}",
        "rope_minus": f"{score(20, 15):.4f}",
        "rope_shifted": f"{score(50, 55):.4f}",
        "offset_d": str(d),
        "offset_n": str(n),
        "offset_gap": f"{offset_gap:.1e}",
        "perm_gap": f"{(half - back).abs().max().item():.1e}",
    }


def ch07_numbers() -> dict[str, str]:
    """What a decoder layer's outputs depend on (exercise 7.1); the base model's
    layer counts (7.2); the singular values of a LayerNorm's Jacobian (7.3)."""
    with torch.random.fork_rng():  # the page's snippet, under its seed
        torch.manual_seed(0)
        layer = DecoderLayer(TransformerConfig(d_model=16, num_heads=2, d_ff=32))
        x = torch.randn(1, 4, 16)
        memory = torch.randn(1, 9, 16)
    with torch.no_grad():
        out = layer(x, memory, causal_mask(4))
        weights = (layer.self_weights, layer.cross_weights)
        shapes = [tuple(t.shape) for t in (out, *weights)]
        x2, memory2 = x.clone(), memory.clone()
        x2[0, 2] += 1.0
        memory2[0, 5] += 1.0
        moved = []
        for a, b in ((x2, memory), (x, memory2)):
            change = (layer(a, b, causal_mask(4)) - out).abs().amax(dim=-1)[0]
            which = (change > 1e-6).nonzero().flatten().tolist()
            moved.append(", ".join(map(str, which)))

    base = TransformerConfig()
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        enc = count_parameters(EncoderLayer(base))
        dec = count_parameters(DecoderLayer(base))
        model = count_parameters(Transformer(base))
    for ours, decoder in ((enc, False), (dec, True)):
        closed = ch07.layer_parameters(base.d_model, base.d_ff, decoder)
        if ours != closed:
            raise AssertionError(f"decoder={decoder}: {ours} != {closed}")
    d, d_ff = base.d_model, base.d_ff
    ffn = 2 * d * d_ff + d_ff + d
    total = base.num_layers * (enc + dec) + base.vocab_size * d
    if total != model:
        raise AssertionError(f"6 (enc + dec) + V d = {total}, the model has {model}")

    g = torch.Generator().manual_seed(8)
    x = 2.0 * torch.randn(512, generator=g, dtype=torch.float64)
    eps = 1e-5
    jac = ch07.layer_norm_jacobian(x, torch.ones(512, dtype=torch.float64), eps)
    sv = torch.linalg.svdvals(jac)  # descending
    var = x.var(unbiased=False).item()
    s = (var + eps) ** 0.5
    at_top = int(((sv - 1 / s).abs() <= 1e-9 / s).sum())
    return {
        "out_shape": str(shapes[0]),
        "self_shape": str(shapes[1]),
        "cross_shape": str(shapes[2]),
        "target_moved": moved[0],
        "source_moved": moved[1],
        "enc": f"{enc:,}",
        "dec": f"{dec:,}",
        "ffn_share": f"{100 * ffn / enc:.0f}",
        "total_millions": f"{total / 1e6:.1f}",
        "inv_s": f"{1 / s:.4f}",
        "sv_top": f"{sv[0].item():.4f}",
        "sv_count": str(at_top),
        "sv_second_smallest": f"{sv[-2].item():.2e}",
        "sv_predicted": f"{eps / (var + eps) / s:.2e}",
        "sv_smallest": f"{sv[-1].item():.0e}",
    }


def ch01_numbers() -> dict[str, str]:
    """Which outputs move when input 0 changes (exercise 1.1); the layers of
    contiguous and dilated convolutions, and the paths of the dilated stack counted
    by autograd (1.2); the geometric fall of a linear recurrence's gradient (1.3);
    the flat gradient of attention with zero queries (1.4)."""
    # 1.1: the page's code, with the same seed (and the global generator restored)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x = torch.randn(1, 8, 16)  # one sequence of 8 positions, width 16
        x_new = x.clone()
        x_new[0, 0] += 1.0

        def moved(layer: torch.nn.Module) -> list[int]:
            change = (layer(x_new) - layer(x)).abs().amax(dim=-1)[0]  # (8,)
            return (change > 1e-6).nonzero().flatten().tolist()

        changed = {kind: moved(make_layer(kind, 16)) for kind in KINDS}
        stacked = {}
        for depth in (3, 4):
            layers = [make_layer("convolution", 16) for _ in range(depth)]
            stacked[depth] = 7 in moved(torch.nn.Sequential(*layers))

    # 1.2: n = 1024, k = 3; weights 1, so d y_{n-1} / d x_0 counts the paths
    n, k = 1024, 3
    dilated = ch01.dilated_layers_to_connect(n, k)

    def paths(layers: int) -> float:
        signal = torch.ones(1, 1, n, dtype=torch.float64, requires_grad=True)
        out = signal
        for layer in range(layers):
            dilation = k**layer
            padded = F.pad(out, ((k - 1) * dilation, 0))  # causal: zeros on the left
            ones = torch.ones(1, 1, k, dtype=torch.float64)
            out = F.conv1d(padded, ones, dilation=dilation)
        (grad,) = torch.autograd.grad(out[0, 0, -1], signal)
        return grad[0, 0, 0].item()

    # 1.3: W = 0.9 Q with Q orthogonal, and the distance of a fall by 10^6
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    u = torch.randn(16, 16, generator=g, dtype=torch.float64)
    falls = {}
    for lam in (0.9, 0.99):
        formula = math.ceil(6 * math.log(10) / -math.log(lam))
        reach = ch01.linear_recurrence_reach(lam * q, u, 2 * formula).flip(0)
        measured = int((reach / reach[0] <= 1e-6).nonzero()[0].item())
        falls[lam] = (formula, measured)
    reach = ch01.linear_recurrence_reach(0.9 * q, u, 101).flip(0)  # by distance

    # 1.4: the chapter's attention layer with W_Q = 0 and b_Q = 0
    with torch.random.fork_rng():
        torch.manual_seed(0)
        attention = make_layer("self-attention", 16).double()
    with torch.no_grad():
        attention.w_q.weight.zero_()
        attention.w_q.bias.zero_()
    w_ov = attention.w_o.weight @ attention.w_v.weight  # nn.Linear: y = W x + b
    flat = {}
    for length in (64, 128):
        x = torch.randn(length, 16, generator=g, dtype=torch.float64)
        flat[length] = gradient_reach(attention, x).detach()
    predicted = torch.linalg.matrix_norm(w_ov).item() / 64
    deviation = ((flat[64] - predicted).abs() / predicted).max().item()
    return {
        "rnn_changed": _listed(changed["recurrent"]),
        "conv_changed": _listed(changed["convolution"]),
        "attn_changed": _listed(changed["self-attention"]),
        "depth3": _CHANGED[stacked[3]],
        "depth4": _CHANGED[stacked[4]],
        "contiguous": f"{layers_to_connect('convolution', n, k):,}",
        "dilated": str(dilated),
        "paths": f"{paths(dilated):g}",
        "paths_fewer": f"{paths(dilated - 1):g}",
        "ratio_100": f"{(reach[100] / reach[1]).item():.4e}",
        "predicted_100": f"{0.9**99:.4e}",
        "fall_09": str(falls[0.9][0]),
        "fall_09_measured": str(falls[0.9][1]),
        "fall_099": f"{falls[0.99][0]:,}",
        "fall_099_measured": f"{falls[0.99][1]:,}",
        "attn_predicted": f"{predicted:.4f}",
        "attn_dev": f"{deviation:.1e}",
        "attn_halving": f"{(flat[64].mean() / flat[128].mean()).item():.4f}",
    }


def ch02_numbers() -> dict[str, str]:
    """The tie at a low temperature (exercise 2.1); symmetric scores without
    projections (2.2); attention that sees W_Q and W_K only through their product
    (2.3); the Gaussian kernel as dot-product attention with a key bias (2.4)."""
    # 2.1: the page's look-up, keys 0 and 2 tie
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    values = torch.tensor([[10.0], [20.0], [30.0], [40.0]])
    query = torch.tensor([2.0, 0.0])
    cold, cold_weights = soft_lookup(query, keys, values, temperature=0.01)
    hot, _ = soft_lookup(query, keys, values, temperature=100.0)

    # 2.2: 16 tokens of width 8 and equal norms, as after layer normalisation
    g = torch.Generator().manual_seed(0)
    n, d = 16, 8
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    x = math.sqrt(d) * x / x.norm(dim=-1, keepdim=True)
    s = x @ x.T / math.sqrt(d)  # no projections: Q = K = X
    a = torch.softmax(s, dim=-1)
    z = torch.logsumexp(s, dim=-1).exp()  # each row's denominator
    w_q, w_k = (
        torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
        for _ in range(2)
    )
    s_proj = (x @ w_q) @ (x @ w_k).T / math.sqrt(d)
    s_shared = (x @ w_q) @ (x @ w_q).T / math.sqrt(d)  # W_K = W_Q
    diagonal = torch.arange(n)

    # 2.3: d_model = 8, d_k = 2; (W_Q R, W_K R^-T) for a random invertible R
    x3 = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
    wq3, wk3 = (torch.randn(8, 2, generator=g, dtype=torch.float64) for _ in range(2))
    r = torch.randn(2, 2, generator=g, dtype=torch.float64)

    def weights(w_q: torch.Tensor, w_k: torch.Tensor) -> torch.Tensor:
        """softmax(Q K^T / sqrt(d_k)) from the two projections, not from M."""
        scores = (x3 @ w_q) @ (x3 @ w_k).transpose(-2, -1) / math.sqrt(2)  # (2, 5, 5)
        return torch.softmax(scores, dim=-1)

    before = weights(wq3, wk3)
    after = weights(wq3 @ r, wk3 @ torch.linalg.inv(r).T)
    rank = torch.linalg.matrix_rank(wq3 @ wk3.T).item()

    # 2.4: the solution against the kernel formula, and without the key bias
    xq = torch.linspace(0, 5, 11, dtype=torch.float64).unsqueeze(-1)
    xk = 5 * torch.rand(20, 1, generator=g, dtype=torch.float64)
    yk = 2 * torch.sin(xk) + xk
    width = 0.5
    kernel = torch.exp(-((xq - xk.T) ** 2) / (2 * width**2))  # (11, 20)
    formula = kernel / kernel.sum(dim=-1, keepdim=True) @ yk
    ours = ch02.gaussian_kernel_attention(xq, xk, yk, width)
    no_bias = torch.softmax(xq @ xk.T / width**2, dim=-1) @ yk
    unit = torch.randn(20, 3, generator=g, dtype=torch.float64)
    unit = unit / unit.norm(dim=-1, keepdim=True)  # keys of norm 1
    q3 = torch.randn(11, 3, generator=g, dtype=torch.float64)
    v3 = torch.randn(20, 2, generator=g, dtype=torch.float64)
    unit_gap = ch02.gaussian_kernel_attention(q3, unit, v3, width) - (
        torch.softmax(q3 @ unit.T / width**2, dim=-1) @ v3
    )
    return {
        "hard": f"{hard_lookup(query, keys, values).item():g}",
        "cold": f"{cold.item():g}",
        "cold_w0": f"{cold_weights[0].item():.3f}",
        "cold_w2": f"{cold_weights[2].item():.3f}",
        "hot": f"{hot.item():.2f}",
        "mean": f"{values.mean().item():g}",
        "sym": f"{(s - s.T).abs().max().item():.1e}",
        "self_best": str(int((s.argmax(dim=-1) == diagonal).sum())),
        "self_best_proj": str(int((s_proj.argmax(dim=-1) == diagonal).sum())),
        "n_tokens": str(n),
        "sym_proj": f"{(s_proj - s_proj.T).abs().max().item():.2f}",
        "sym_shared": f"{(s_shared - s_shared.T).abs().max().item():.1e}",
        "weight_asym": f"{(a - a.T).abs().max().item():.3f}",
        "ratio_err": f"{(a * z[:, None] - (a * z[:, None]).T).abs().max().item():.1e}",
        "reparam_diff": f"{(after - before).abs().max().item():.1e}",
        "rank": str(rank),
        "kernel_vs_formula": f"{(ours - formula).abs().max().item():.1e}",
        "without_bias": f"{(no_bias - formula).abs().max().item():.2f}",
        "unit_keys": f"{unit_gap.abs().max().item():.1e}",
    }


def ch04_numbers() -> dict[str, str]:
    """A float mask given to PyTorch (exercise 4.1); the empty rows of left padding
    under a causal mask (4.3); a batch norm that leaks the future (4.2); packed
    documents against each document alone (4.4)."""
    # 4.1: the page's code, with the same seed
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, 4, 8, generator=g), torch.randn(2, 1, 6, 8, generator=g)
    eye = torch.eye(6).expand(2, 1, 6, 6)  # values = identity: output = weights
    mask = torch.arange(6) < torch.tensor([[6], [3]])  # (2, 6): lengths 6 and 3
    mask = mask[:, None, None, :]  # (2, 1, 1, 6)
    right = F.scaled_dot_product_attention(q, k, eye, attn_mask=mask)
    wrong = F.scaled_dot_product_attention(q, k, eye, attn_mask=mask.float())
    additive = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    fixed = F.scaled_dot_product_attention(q, k, eye, attn_mask=additive)

    # 4.3: lengths 5, 3 and 1 padded to 5, under a causal mask
    lengths, n = torch.tensor([5, 3, 1]), 5
    left = combine(ch04.left_padding_mask(lengths, n), causal_mask(n))
    right_padded = combine(padding_mask(lengths, n), causal_mask(n))
    qkv = torch.randn(3, 1, n, 4, generator=g, dtype=torch.float64)
    _, naive = naive_attention(qkv, qkv, qkv, left)

    # 4.2: causal attention, then a normalisation, then a position-wise network
    d, n3 = 8, 10
    w = [torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5 for _ in range(5)]
    layer_norm = torch.nn.LayerNorm(d, dtype=torch.float64)
    batch_norm = torch.nn.BatchNorm1d(d, dtype=torch.float64)  # training mode

    def block(x: torch.Tensor, norm: str) -> torch.Tensor:
        out, _ = scaled_dot_product_attention(
            x @ w[0], x @ w[1], x @ w[2], causal_mask(x.size(1))
        )
        h = x + out  # (B, n, d)
        if norm == "layer":
            h = layer_norm(h)
        else:  # BatchNorm1d wants (B, d, n): statistics over the batch and positions
            h = batch_norm(h.transpose(1, 2)).transpose(1, 2)
        return h + torch.relu(h @ w[3]) @ w[4]

    x = torch.randn(2, n3, d, generator=g, dtype=torch.float64)
    x_new = x.clone()
    x_new[:, 5] += 1.0  # change position 5 only
    leak = {}
    with torch.no_grad():
        for norm in ("layer", "batch"):
            past = (block(x_new, norm) - block(x, norm))[:, :5]
            leak[norm] = past.abs().max().item()
        batch_norm.eval()
        past = (block(x_new, "batch") - block(x, "batch"))[:, :5]
        leak["batch_eval"] = past.abs().max().item()

    # 4.4: documents of 3, 2 and 4 tokens packed in one row of 9
    ids = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2, 2]])
    q4, k4, v4 = (
        torch.randn(1, 1, 9, 4, generator=g, dtype=torch.float64) for _ in "qkv"
    )
    packed, _ = scaled_dot_product_attention(q4, k4, v4, ch04.packed_causal_mask(ids))
    only_causal, _ = scaled_dot_product_attention(q4, k4, v4, causal_mask(9))
    alone = torch.cat(
        [
            F.scaled_dot_product_attention(
                q4[..., a:b, :], k4[..., a:b, :], v4[..., a:b, :], is_causal=True
            )
            for a, b in ((0, 3), (3, 5), (5, 9))
        ],
        dim=-2,
    )
    return {
        "pad_weight": f"{wrong[1, 0, :, 3:].sum(dim=-1).mean().item():.3f}",
        "right_pad_weight": f"{right[1, 0, :, 3:].sum(dim=-1).max().item():g}",
        "full_row_diff": f"{(wrong[0] - right[0]).abs().max().item():.1e}",
        "additive_diff": f"{(fixed - right).abs().max().item():.1e}",
        "left_empty": str(int((~left.any(dim=-1)).sum())),
        "right_empty": str(int((~right_padded.any(dim=-1)).sum())),
        "naive_nan_rows": str(int(naive.isnan().any(dim=-1).sum())),
        "ln_leak": f"{leak['layer']:.1e}",
        "bn_leak": f"{leak['batch']:.2e}",
        "bn_eval_leak": f"{leak['batch_eval']:.1e}",
        "packed_diff": f"{(packed - alone).abs().max().item():.1e}",
        "causal_only_diff": f"{(only_causal - alone).abs().max().item():.2f}",
    }


def ch09_numbers() -> dict[str, str]:
    """Additive scores stay below sum |v_m| while dot products grow (exercise 9.1);
    without the tanh, additive weights ignore the query (9.2); comparisons counted
    by a tournament and by a full sort (9.4)."""
    with torch.random.fork_rng(devices=[]):  # the same draws as the page's code
        torch.manual_seed(0)
        additive = AdditiveAttention(d_query=16, d_key=16, d_hidden=32)
        q, k = torch.randn(5, 16), torch.randn(7, 16)
    found: dict[str, str] = {}
    with torch.no_grad():
        found["bound"] = f"{additive.v.weight.abs().sum().item():.2f}"
        for c in (1, 100):
            e_add = additive.scores(c * q, c * k)  # (5, 7)
            e_dot = (c * q) @ (c * k).T / 16**0.5  # (5, 7)
            found[f"add_{c}"] = f"{e_add.abs().max().item():.2f}"
            largest = e_dot.abs().max().item()
            found[f"dot_{c}"] = (
                f"{largest:,.0f}" if largest >= 100 else f"{largest:.2f}"
            )
            top_add = e_add.softmax(-1).amax(-1).mean().item()
            found[f"add_top_{c}"] = f"{top_add:.2f}"
            found[f"dot_top_{c}"] = f"{e_dot.softmax(-1).amax(-1).mean().item():.2f}"
        # 9.2: the same module without its tanh, in float64
        W_q, W_k = additive.W_q.weight.double(), additive.W_k.weight.double()
        v = additive.v.weight.double().squeeze(0)
        hidden = (q.double() @ W_q.T)[:, None, :] + (k.double() @ W_k.T)[None, :, :]
        for name, h in (("linear", hidden), ("tanh", torch.tanh(hidden))):
            weights = (h @ v).softmax(dim=-1)  # (5, 7): one row per query
            # the largest difference between two queries' weights, over all pairs
            spread = (weights[:, None] - weights[None]).abs().max().item()
            found[f"{name}_spread"] = (
                f"{spread:.1e}" if spread < 1e-6 else f"{spread:.2f}"
            )
    # 9.4: comparisons made by the tournament and by Python's sort, n = 1024, k = 8
    values = torch.randn(1024, generator=torch.Generator().manual_seed(0)).tolist()
    counter = [0]

    class Counted(float):
        def __lt__(self, other: float) -> bool:
            counter[0] += 1
            return float(self) < float(other)

    items = [Counted(x) for x in values]
    top = ch09.tournament_top_k(items, 8)
    found["tournament"], counter[0] = f"{counter[0]:,}", 0
    ranked = sorted(range(len(items)), key=items.__getitem__, reverse=True)[:8]
    assert ranked == top, "the tournament and the sort disagree"
    found["sort"] = f"{counter[0]:,}"
    found["bound_1024"] = f"{1023 + 7 * math.ceil(math.log2(1024)):,}"
    return found


def ch10_numbers() -> dict[str, str]:
    """What three layers of a window and of a dilated window reach (exercise 10.1); the
    pairs of a dilated window, formula against mask (10.2); layers to connect (10.3)."""
    found: dict[str, str] = {}
    n = 41
    for name, mask in (
        ("window", sliding_window_mask(n, 2)),
        ("dilated", dilated_window_mask(n, 2, 3)),
    ):
        reach = mask.double()
        for _ in range(2):  # three layers in all
            reach = ((reach @ mask.double()) > 0).double()
        offsets = reach[20].nonzero().flatten() - 20
        found[f"{name}_count"] = str(len(offsets))
        found[f"{name}_far"] = str(offsets.max().item())
    n, w = 1024, 64
    for dilation in (1, 8, 32):
        count = ch10.dilated_pair_count(n, w, dilation)
        counted = int(dilated_window_mask(n, w, dilation).sum())
        assert count == counted, "the formula and the mask disagree"
        found[f"pairs_{dilation}"] = f"{count:,}"
        found[f"share_{dilation}"] = f"{count / n**2:.1%}"
    found["pairs_naive_32"] = f"{n * (2 * w + 1) - 32 * w * (w + 1):,}"
    n, w = 512, 32
    window, with_global = sliding_window_mask(n, w), global_tokens_mask(n, w, [0])
    found["layers_window"] = str(ch10.pattern_layers_to_connect(window))
    found["layers_global"] = str(ch10.pattern_layers_to_connect(with_global))
    return found


def ch11_numbers() -> dict[str, str]:
    """The relative error of one kernel estimate as the inputs double (exercise 11.1);
    positive against trigonometric features at three angles (11.2)."""
    found: dict[str, str] = {}
    g = torch.Generator().manual_seed(0)  # the same draws as the page's code
    u = torch.randn(16, generator=g, dtype=torch.float64)
    u = u / u.norm()  # q = k = c u: |x + y|^2 = c^2 for d_k = 16
    for size, z_sq in (("small", 0.5), ("mid", 2.0), ("big", 8.0)):
        c = z_sq**0.5
        est = kernel_estimates(
            c * u, c * u, 64, draws=4000, orthogonal=False, generator=g
        )
        exact = math.exp(z_sq / 4)  # exp(q . k / sqrt(d_k))
        found[f"sd_{size}"] = f"{est.std().item() / exact:.3f}"
        found[f"formula_{size}"] = f"{math.sqrt(math.expm1(z_sq) / 64):.3f}"
        found[f"mean_{size}"] = f"{est.mean().item() / exact:.3f}"
    factor = math.expm1(8.0) / math.expm1(2.0)  # (formula_big / formula_mid)^2
    found["features_factor"] = f"{factor:.0f}"
    # doubling the inputs from |x + y|^2 = z: sqrt((e^(4z) - 1) / (e^z - 1))
    found["growth_first"] = f"{math.sqrt(math.expm1(2.0) / math.expm1(0.5)):.1f}"
    found["growth_second"] = f"{math.sqrt(factor):.1f}"
    # 11.2: |x| = |y| = 1 with y = x, y orthogonal to x, y = -x; d_k = 16, m = 64
    d, m, draws = 16, 64, 2000
    g = torch.Generator().manual_seed(1)
    x = torch.randn(d, generator=g, dtype=torch.float64)
    x = x / x.norm()
    other = torch.randn(d, generator=g, dtype=torch.float64)
    other = other - (other @ x) * x
    pairs = {"aligned": x, "orthogonal": other / other.norm(), "opposite": -x}
    w = torch.stack([gaussian_random_features(m, d, g) for _ in range(draws)])
    root = d**0.25  # the functions divide their inputs by d^(1/4)
    for name, y in pairs.items():
        exact = math.exp((x @ y).item())
        both = torch.stack([root * x, root * y])  # (2, d)
        pos = softmax_features(both, w)  # (draws, 2, m)
        trig = ch11.trig_features(both, w)  # (draws, 2, 2m)
        for kind, phi in (("pos", pos), ("trig", trig)):
            est = (phi[:, 0] * phi[:, 1]).sum(dim=-1)  # (draws,): phi(x) . phi(y)
            rmse = ((est - exact) ** 2).mean().sqrt().item() / exact
            found[f"{kind}_{name}"] = f"{rmse:.3f}"
            found[f"{kind}_negative_{name}"] = str(int((est < 0).sum()))
        sum_sq, diff_sq = ((x + y) ** 2).sum().item(), ((x - y) ** 2).sum().item()
        pos_formula = math.sqrt(math.expm1(sum_sq) / m)
        trig_formula = math.sqrt(2 / m) * math.sinh(diff_sq / 2)
        found[f"pos_formula_{name}"] = f"{pos_formula:.3f}"
        found[f"trig_formula_{name}"] = f"{trig_formula:.3f}"
    found["draws"] = f"{draws:,}"
    return found
