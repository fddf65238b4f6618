"""Chapter 12, Reformer: hashing, the agreement of LSH attention with full attention, memory."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

from snippets.bilingual import Say, same, say
from snippets.masks import causal_mask
from snippets.measure import peak_memory_bytes
from snippets.plotting import COLORS, Figure, figure
from snippets.reformer import (
    ReversibleBlock,
    hash_with,
    lsh_attention,
    lsh_attention_with_buckets,
    lsh_hash,
    lsh_key_sets,
    random_rotations,
    reversible_stack,
    shared_qk_attention,
)
from snippets.runtime import device

_ANGLES_DEG = np.linspace(0, 180, 19)
_COLLISION_BUCKETS = [2, 4, 8, 16]
_COLLISION_ROUNDS = 2000
_D = 32  # width of the shared query/key vectors in the agreement and memory demos


def _device_type() -> Say:
    """The build's device as figure titles name it ("cpu", "cuda"): data, in both."""
    return same(device().type)


def _pair_at_angle(theta: float, d: int, g: torch.Generator) -> torch.Tensor:
    """Two unit vectors (2, d) at angle theta, in a random plane."""
    basis, _ = torch.linalg.qr(torch.randn(d, 2, generator=g, dtype=torch.float64))
    e1, e2 = basis.T
    return torch.stack([e1, math.cos(theta) * e1 + math.sin(theta) * e2])


def hash_sectors_figure() -> Figure:
    """Buckets of 2-D directions for one random rotation: angular LSH cuts the circle."""
    g = torch.Generator().manual_seed(3)
    phi = torch.linspace(0, 2 * math.pi, 720, dtype=torch.float64)
    circle = torch.stack([phi.cos(), phi.sin()], dim=-1)  # (720, 2)
    fig, axes = figure(ncols=2, width=7.2, height=3.5)
    for ax, nb in zip(axes, (4, 8), strict=True):
        buckets = hash_with(circle, random_rotations(2, nb, 1, g))[0]
        ax.scatter(
            circle[:, 0],
            circle[:, 1],
            c=[COLORS[b % len(COLORS)] for b in buckets.tolist()],
            s=12,
            linewidths=0,
        )
        ax.set(
            aspect="equal",
            title=say(f"{nb} buckets, one rotation", f"{nb} 个桶，一次旋转"),
            xticks=[],
            yticks=[],
            xlim=(-1.25, 1.25),
            ylim=(-1.25, 1.25),
        )
        ax.grid(False)
        for b in range(nb):  # label each bucket at the middle of its arc(s)
            ang = phi[buckets == b]
            if len(ang):
                mid = torch.atan2(ang.sin().mean(), ang.cos().mean())
                ax.annotate(
                    str(b),
                    (1.13 * mid.cos().item(), 1.13 * mid.sin().item()),
                    ha="center",
                    va="center",
                    fontsize=9,
                )
    return fig


@functools.lru_cache
def _collisions() -> dict[int, dict[int, float]]:
    """buckets -> angle in degrees -> share of the rounds that hash the pair together."""
    g = torch.Generator().manual_seed(4)
    out: dict[int, dict[int, float]] = {}
    pairs = [_pair_at_angle(math.radians(a), 64, g) for a in _ANGLES_DEG]
    x = torch.stack(pairs)  # (angles, 2, d)
    for nb in _COLLISION_BUCKETS:
        # (R, angles, 2)
        b = hash_with(x, random_rotations(64, nb, _COLLISION_ROUNDS, g))
        shares = (b[..., 0] == b[..., 1]).double().mean(0).tolist()
        out[nb] = {int(a): p for a, p in zip(_ANGLES_DEG, shares, strict=True)}
    return out


def collision_figure() -> Figure:
    """P(same bucket) against the angle between two vectors, measured and (2 buckets) exact."""
    coll = _collisions()
    fig, ax = figure(width=5.6, height=3.6)
    ax.plot(
        _ANGLES_DEG,
        1 - _ANGLES_DEG / 180,
        color=COLORS[1],
        linestyle="--",
        label=say(
            r"exact for 2 buckets: $1-\theta/\pi$", r"2 个桶时的精确值：$1-\theta/\pi$"
        ),
    )
    colors = (COLORS[0], COLORS[2], COLORS[3], COLORS[4])
    for nb, color in zip(_COLLISION_BUCKETS, colors, strict=True):
        ax.plot(
            _ANGLES_DEG,
            list(coll[nb].values()),
            "o",
            ms=4,
            color=color,
            label=say(f"{nb} buckets, measured", f"{nb} 个桶，实测"),
        )
    ax.set(
        xlabel=say(
            r"angle $\theta$ between the two vectors (degrees)",
            r"两个向量的夹角 $\theta$（度）",
        ),
        ylabel=say("share of rounds with the same bucket", "落在同一个桶中的轮次比例"),
        xticks=range(0, 181, 30),
        title=say(
            f"$d_k$ = 64, {_COLLISION_ROUNDS:,} random rotations per point",
            f"$d_k = 64$，每个点 {_COLLISION_ROUNDS:,} 次随机旋转",
        ),
    )
    ax.legend()
    return fig


def collision_numbers() -> dict[str, str]:
    coll = _collisions()
    return {
        "p2_60": f"{coll[2][60]:.3f}",
        "p2_60_exact": f"{1 - 60 / 180:.3f}",
        "p16_60": f"{coll[16][60]:.3f}",
        "p16_90": f"{coll[16][90]:.3f}",
        "rounds": f"{_COLLISION_ROUNDS:,}",
    }


def _clustered(
    n: int, n_clusters: int, d: int, g: torch.Generator, radius: float = 8.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, d) vectors in n_clusters tight clusters, in random order, and their cluster labels.

    Centres have norm radius * sqrt(d), so a query's score q.k/sqrt(d) for a key of its own
    cluster is about `radius`, and about 0 for other clusters.
    """
    centres = nn.functional.normalize(
        torch.randn(n_clusters, d, generator=g, dtype=torch.float64), dim=-1
    )
    label = torch.randint(n_clusters, (n,), generator=g)
    noise = 0.15 * torch.randn(n, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    return radius * math.sqrt(d) * (centres[label] + noise), label


_N_AGREE, _CHUNK_AGREE = 256, 16
# The paper's rule (Kitaev et al. 2020, section 2): chunk = 2 N / n_buckets, so that the
# average bucket holds half a chunk. Clusters of that average size give each query about as
# many true neighbours as the rule assumes a bucket holds.
_DESIGN_BUCKETS = 2 * _N_AGREE // _CHUNK_AGREE
_CLUSTERS = _DESIGN_BUCKETS  # clusters of N / n_buckets positions on average
_ROUNDS = [1, 2, 4, 8]
_FEW_BUCKETS, _MANY_BUCKETS = 8, 2 * _DESIGN_BUCKETS
_AGREE_BUCKETS = [_FEW_BUCKETS, 16, _DESIGN_BUCKETS, _MANY_BUCKETS]
_SEEDS = [0, 1, 2, 3]
# What `_agreement` measures, for each bucket count and number of rounds.
_METRICS = ("mass", "error", "error_of_output", "together")


@functools.lru_cache
def _agreement() -> dict[int, dict[int, dict[str, float]]]:
    """buckets -> rounds -> the full-attention mass reached ("mass"), the output error in
    units of the values' spread ("error"), the output error relative to |O|
    ("error_of_output"), and the share of pairs of the same cluster that share a bucket in
    at least one round, chunks aside ("together"); averaged over _SEEDS.

    The rounds are nested: the first r rounds of the 8-round hash, so adding rounds only
    adds keys.
    """
    sums = {
        nb: {r: dict.fromkeys(_METRICS, 0.0) for r in _ROUNDS} for nb in _AGREE_BUCKETS
    }
    for seed in _SEEDS:
        g = torch.Generator().manual_seed(seed)
        qk, label = _clustered(_N_AGREE, _CLUSTERS, _D, g)
        same_cluster = (label[:, None] == label[None, :]) & ~torch.eye(
            _N_AGREE, dtype=torch.bool
        )
        v = torch.randn(_N_AGREE, _D, generator=g, dtype=torch.float64)
        p = shared_qk_attention(qk, torch.eye(_N_AGREE, dtype=torch.float64))  # weights
        exact = p @ v
        spread = (v - v.mean(dim=0)).norm()  # |V - mean value|_F
        for nb in _AGREE_BUCKETS:
            all_rounds = lsh_hash(qk, nb, max(_ROUNDS), g)  # (8, N)
            for r in _ROUNDS:
                buckets = all_rounds[:r]
                approx = lsh_attention_with_buckets(qk, v, buckets, _CHUNK_AGREE)
                mass = (p * lsh_key_sets(buckets, _CHUNK_AGREE)).sum(-1).mean().item()
                err = (approx - exact).norm()
                together = (buckets[:, :, None] == buckets[:, None, :]).any(0)
                values = {
                    "mass": mass,
                    "error": (err / spread).item(),
                    "error_of_output": (err / exact.norm()).item(),
                    "together": together[same_cluster].double().mean().item(),
                }
                for metric, value in values.items():
                    sums[nb][r][metric] += value
    return {
        nb: {
            r: {metric: total / len(_SEEDS) for metric, total in sums[nb][r].items()}
            for r in _ROUNDS
        }
        for nb in _AGREE_BUCKETS
    }


def agreement_figure() -> Figure:
    """Mass of full attention inside the LSH key sets, and the output error, vs rounds."""
    agree = _agreement()
    fig, axes = figure(ncols=2, width=8.4, height=3.4)
    for i, nb in enumerate(_AGREE_BUCKETS):
        label = say(f"{nb} buckets", f"{nb} 个桶") + (
            say(" (paper's rule)", "（论文的规则）") if nb == _DESIGN_BUCKETS else ""
        )
        style = dict(
            color=COLORS[i], label=label, lw=2.4 if nb == _DESIGN_BUCKETS else 1.4
        )
        axes[0].plot(_ROUNDS, [agree[nb][r]["mass"] for r in _ROUNDS], "o-", **style)
        axes[1].plot(_ROUNDS, [agree[nb][r]["error"] for r in _ROUNDS], "o-", **style)
    axes[0].set(
        ylabel=say("full-attention mass reached", "触及的完整注意力权重份额"),
        ylim=(0, 1.02),
    )
    axes[1].set(ylabel=r"$\|\hat O - O\|_F \,/\, \|V - \bar v\|_F$", ylim=(0, None))
    for ax in axes:
        ax.set(
            xscale="log",
            xlabel=say("hash rounds", "哈希轮数"),
            xticks=_ROUNDS,
            xticklabels=_ROUNDS,
            title=say(
                f"N = {_N_AGREE}, chunk {_CHUNK_AGREE}",
                f"N = {_N_AGREE}，段长 {_CHUNK_AGREE}",
            ),
        )
        ax.minorticks_off()
    axes[0].legend(fontsize=8)
    return fig


def agreement_numbers() -> dict[str, str]:
    agree = _agreement()
    design, few, many = (
        agree[nb] for nb in (_DESIGN_BUCKETS, _FEW_BUCKETS, _MANY_BUCKETS)
    )
    return {
        "n": str(_N_AGREE),
        "chunk": str(_CHUNK_AGREE),
        "d": str(_D),
        "seeds": str(len(_SEEDS)),
        "clusters": str(_CLUSTERS),
        "cluster_size": str(_N_AGREE // _CLUSTERS),
        "buckets": ", ".join(str(nb) for nb in _AGREE_BUCKETS),
        "design": str(_DESIGN_BUCKETS),
        "few": str(_FEW_BUCKETS),
        "few_bucket_size": str(_N_AGREE // _FEW_BUCKETS),
        "many": str(_MANY_BUCKETS),
        "mass_design_1": f"{design[1]['mass']:.2f}",
        "mass_design_8": f"{design[8]['mass']:.2f}",
        "err_design_1": f"{design[1]['error']:.2f}",
        "err_design_8": f"{design[8]['error']:.3f}",
        "old_err_design_8": f"{design[8]['error_of_output']:.2f}",
        "mass_few_1": f"{few[1]['mass']:.2f}",
        "mass_few_8": f"{few[8]['mass']:.2f}",
        "err_few_8": f"{few[8]['error']:.3f}",
        "mass_many_8": f"{many[8]['mass']:.2f}",
        "split_few_1": f"{1 - few[1]['together']:.2f}",
        "split_many_1": f"{1 - many[1]['together']:.2f}",
        "split_design_8": f"{1 - design[8]['together']:.3f}",
        "err_many_8": f"{many[8]['error']:.3f}",
    }


def key_sets_figure() -> Figure:
    """Full attention weights next to the key sets of 1 and 4 rounds, on a short sequence."""
    g = torch.Generator().manual_seed(5)
    n, chunk = 64, 8
    qk, label = _clustered(n, 6, _D, g)
    p = shared_qk_attention(qk, torch.eye(n, dtype=torch.float64))
    buckets = lsh_hash(qk, 8, 4, g)
    show = label.argsort(stable=True)  # display order: grouped by cluster
    panels = [
        (p, say("full attention weights", "完整注意力权重")),
        (
            lsh_key_sets(buckets[:1], chunk).double(),
            say("keys reached, 1 round", "触及的键，1 轮"),
        ),
        (
            lsh_key_sets(buckets, chunk).double(),
            say("keys reached, 4 rounds", "触及的键，4 轮"),
        ),
    ]
    fig, axes = figure(ncols=3, width=9.6, height=3.4)
    for ax, (img, title) in zip(axes, panels, strict=True):
        img = img[show][:, show].numpy()
        ax.imshow(img, cmap="viridis", vmin=0, vmax=img.max(), interpolation="nearest")
        ax.set(
            title=title,
            xlabel=say("key (grouped by cluster)", "键（按簇分组）"),
            xticks=[],
            yticks=[],
        )
        ax.grid(False)
    axes[0].set_ylabel(say("query (grouped by cluster)", "查询（按簇分组）"))
    return fig


def agreement_with_dense() -> str:
    """One bucket, one chunk: LSH attention must equal dense shared-QK attention."""
    g = torch.Generator().manual_seed(6)
    qk, v = (torch.randn(2, 4, 48, 16, generator=g) for _ in range(2))
    qk, v = qk.to(device()), v.to(device())
    err = max(
        (
            lsh_attention(qk, v, 1, 1, 48, causal=c)
            - shared_qk_attention(
                qk,
                v,
                causal_mask(48, device=qk.device) if c else None,
            )
        )
        .abs()
        .max()
        .item()
        for c in (False, True)
    )
    return say(
        "With one bucket and one chunk of 48 positions (a batch of 2 × 4 heads, "
        f"width 16, float32, on `{device()}`), LSH attention and the dense computation "
        f"differ by at most **{err:.1e}**, with and without the causal mask.",
        f"用一个桶和一个 48 个位置的段（一批 2 × 4 个头，宽度 16，float32，在 "
        f"`{device()}` 上），无论有没有因果掩码，LSH 注意力与稠密计算之差都至多为 "
        f"**{err:.1e}**。",
    )


_MEMORY_N = [256, 512, 1024, 2048, 4096]
_MEM_ROUNDS, _MEM_CHUNK = 2, 32


def _mem_buckets(n: int) -> int:
    """The paper's rule, chunk = 2 N / n_buckets: the bucket count grows with N."""
    return 2 * n // _MEM_CHUNK


@functools.lru_cache
def _memory() -> dict[str, dict[int, int]]:
    """ "lsh", "dense" or "hash" (the hashing step alone) -> N -> peak bytes of one call."""
    g = torch.Generator().manual_seed(7)
    out: dict[str, dict[int, int]] = {"lsh": {}, "dense": {}, "hash": {}}
    for n in _MEMORY_N:
        qk, v = (torch.randn(1, n, _D, generator=g).to(device()) for _ in range(2))
        out["hash"][n] = peak_memory_bytes(
            lambda qk=qk, n=n: lsh_hash(
                qk, _mem_buckets(n), _MEM_ROUNDS, torch.Generator().manual_seed(0)
            )
        )
        out["lsh"][n] = peak_memory_bytes(
            lambda qk=qk, v=v, n=n: lsh_attention(
                qk,
                v,
                _mem_buckets(n),
                _MEM_ROUNDS,
                _MEM_CHUNK,
                generator=torch.Generator().manual_seed(0),
            )
        )
        out["dense"][n] = peak_memory_bytes(
            lambda qk=qk, v=v: shared_qk_attention(qk, v)
        )
    return out


def _slope(x: list[float], y: list[float]) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _memory_slope(key: str, lengths: list[int]) -> float:
    """The log-log slope of `key`'s peak memory over the given lengths."""
    return _slope(lengths, [_memory()[key][n] for n in lengths])


# "dense shared-QK attention": QK, the shared query/key, stays in Latin letters
_DENSE_SHARED_QK = (
    say("dense shared-", "稠密共享 ") + same("QK") + say(" attention", " 注意力")
)


def memory_figure() -> Figure:
    """Peak memory of one attention call vs N: dense grows like N^2, LSH like N."""
    mem = _memory()
    fig, ax = figure(width=5.6, height=3.6)
    lsh = say(
        f"LSH attention (2N/{_MEM_CHUNK} buckets, {_MEM_ROUNDS} rounds, "
        f"chunk {_MEM_CHUNK})",
        f"LSH 注意力（2N/{_MEM_CHUNK} 个桶，{_MEM_ROUNDS} 轮，段长 {_MEM_CHUNK}）",
    )
    for key, color, label in (
        ("dense", COLORS[3], _DENSE_SHARED_QK),
        ("lsh", COLORS[0], lsh),
        ("hash", COLORS[2], say("its hashing step alone", "单独的哈希步骤")),
    ):
        slope = f"{_memory_slope(key, _MEMORY_N):.2f}"
        ax.plot(
            _MEMORY_N,
            [mem[key][n] / 2**20 for n in _MEMORY_N],
            "o:" if key == "hash" else "o-",
            color=color,
            label=label + say(f": slope {slope}", f"：斜率 {slope}"),
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=say("sequence length N", "序列长度 N"),
        ylabel=say("peak memory (MiB)", "峰值内存（MiB）"),
        title=say(
            f"one head, $d_k$ = {_D}, float32, ", f"一个头，$d_k = {_D}$，float32，"
        )
        + _device_type(),
    )
    ax.set_xticks(_MEMORY_N, [str(n) for n in _MEMORY_N])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return fig


def memory_numbers() -> dict[str, str]:
    mem = _memory()
    n_min, n_max = min(_MEMORY_N), max(_MEMORY_N)
    n_before = max(n for n in _MEMORY_N if n < n_max)  # the length before the longest
    lsh, dense, hashing = mem["lsh"], mem["dense"], mem["hash"]
    lsh_min, dense_min = (f"{x[n_min] / 2**20:.2f}" for x in (lsh, dense))
    return {
        "slope_lsh": f"{_memory_slope('lsh', _MEMORY_N):.2f}",
        "slope_dense": f"{_memory_slope('dense', _MEMORY_N):.2f}",
        "n_max": f"{n_max:,}",
        "ratio_max": f"{dense[n_max] / lsh[n_max]:.1f}",
        "lsh_max_mib": f"{lsh[n_max] / 2**20:.1f}",
        "dense_max_mib": f"{dense[n_max] / 2**20:.1f}",
        "short": (
            say(
                f"at $N = {n_min}$ the two are {lsh_min} and {dense_min} MiB, ",
                f"在 $N = {n_min}$ 时，两者分别为 {lsh_min} 和 {dense_min} MiB，",
            )
            + (
                say(
                    "so for short sequences the bookkeeping of the rounds costs more "
                    "than it saves",
                    "所以对短序列而言，多轮哈希的簿记开销大于它省下的内存",
                )
                if lsh[n_min] > dense[n_min]
                else say(
                    "so LSH attention saves memory even at this length",
                    "所以即使在这个长度上，LSH 注意力也节省内存",
                )
            )
        ),
        "buckets_min": str(_mem_buckets(n_min)),
        "buckets_max": str(_mem_buckets(n_max)),
        "n_min": f"{n_min:,}",
        "n_before_max": f"{n_before:,}",
        "slope_lsh_before_max": (
            f"{_memory_slope('lsh', [n for n in _MEMORY_N if n < n_max]):.2f}"
        ),
        "growth_last": f"{lsh[n_max] / lsh[n_before]:.2f}",
        "hash_max_mib": f"{hashing[n_max] / 2**20:.1f}",
        "slope_hash": f"{_memory_slope('hash', _MEMORY_N):.2f}",
        "rounds": str(_MEM_ROUNDS),
        "chunk": str(_MEM_CHUNK),
        "d": str(_D),
    }


_DEPTHS = [1, 2, 4, 8]
_WIDTH, _TOKENS = 64, 1024


def _blocks(depth: int) -> list[ReversibleBlock]:
    torch.manual_seed(8)

    def mlp() -> nn.Module:
        return nn.Sequential(
            nn.Linear(_WIDTH, 4 * _WIDTH), nn.GELU(), nn.Linear(4 * _WIDTH, _WIDTH)
        )

    return [ReversibleBlock(mlp(), mlp()).to(device()) for _ in range(depth)]


@functools.lru_cache
def _reversible_memory() -> dict[str, dict[int, int]]:
    """ "standard" or "reversible" -> depth -> peak bytes of forward + backward."""
    out: dict[str, dict[int, int]] = {"standard": {}, "reversible": {}}
    g = torch.Generator().manual_seed(9)
    x1, x2 = (torch.randn(_TOKENS, _WIDTH, generator=g).to(device()) for _ in range(2))
    for depth in _DEPTHS:
        blocks = _blocks(depth)

        def standard(blocks=blocks) -> None:
            y1, y2 = x1.requires_grad_(), x2.requires_grad_()
            for block in blocks:
                y1, y2 = block(y1, y2)
            (y1.sum() + y2.sum()).backward()

        def reversible(blocks=blocks) -> None:
            y1, y2 = reversible_stack(blocks, x1.requires_grad_(), x2.requires_grad_())
            (y1.sum() + y2.sum()).backward()

        for name, fn in (("standard", standard), ("reversible", reversible)):
            for block in blocks:
                block.zero_grad(set_to_none=True)
            x1.grad = x2.grad = None
            out[name][depth] = peak_memory_bytes(fn)
    return out


def reversible_figure() -> Figure:
    """Peak memory of forward + backward vs depth, ordinary vs reversible residual blocks."""
    mem = _reversible_memory()
    fig, ax = figure(width=5.6, height=3.6)
    for key, color, label in (
        ("standard", COLORS[3], say("standard", "普通堆叠")),
        ("reversible", COLORS[0], say("reversible", "可逆堆叠")),
    ):
        mib = [mem[key][depth] / 2**20 for depth in _DEPTHS]
        ax.plot(_DEPTHS, mib, "o-", color=color, label=label)
    title = say(
        f"{_TOKENS:,} tokens × width {_WIDTH}, float32, ",
        f"{_TOKENS:,} 个词元 × 宽度 {_WIDTH}，float32，",
    )
    ax.set(
        xlabel=say("number of blocks", "块数"),
        ylabel=say(
            "peak memory, forward + backward (MiB)", "峰值内存，前向 + 反向（MiB）"
        ),
        xticks=_DEPTHS,
        ylim=(0, None),
        title=title + _device_type(),
    )
    ax.legend()
    return fig


def reversible_numbers() -> dict[str, str]:
    mem = _reversible_memory()
    return {
        "std_1": f"{mem['standard'][1] / 2**20:.1f}",
        "std_8": f"{mem['standard'][8] / 2**20:.1f}",
        "rev_1": f"{mem['reversible'][1] / 2**20:.1f}",
        "rev_8": f"{mem['reversible'][8] / 2**20:.1f}",
        "depth_max": str(max(_DEPTHS)),
        "tokens": f"{_TOKENS:,}",
        "width": str(_WIDTH),
    }
