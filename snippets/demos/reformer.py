"""Chapter 12, Reformer: hashing, the agreement of LSH attention with full attention, memory."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

from snippets.measure import peak_memory_bytes
from snippets.plotting import COLORS, figure
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

ANGLES_DEG = np.linspace(0, 180, 19)
COLLISION_BUCKETS = [2, 4, 8, 16]
COLLISION_ROUNDS = 2000
D = 32  # width of the shared query/key vectors in the agreement and memory demos


def _pair_at_angle(theta: float, d: int, g: torch.Generator) -> torch.Tensor:
    """Two unit vectors (2, d) at angle theta, in a random plane."""
    basis, _ = torch.linalg.qr(torch.randn(d, 2, generator=g, dtype=torch.float64))
    e1, e2 = basis.T
    return torch.stack([e1, math.cos(theta) * e1 + math.sin(theta) * e2])


def hash_sectors_figure():
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
            title=f"{nb} buckets, one rotation",
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
def _collisions() -> dict[int, list[float]]:
    g = torch.Generator().manual_seed(4)
    out: dict[int, list[float]] = {}
    pairs = [_pair_at_angle(math.radians(a), 64, g) for a in ANGLES_DEG]
    x = torch.stack(pairs)  # (angles, 2, d)
    for nb in COLLISION_BUCKETS:
        # (R, angles, 2)
        b = hash_with(x, random_rotations(64, nb, COLLISION_ROUNDS, g))
        out[nb] = (b[..., 0] == b[..., 1]).double().mean(0).tolist()
    return out


def collision_figure():
    """P(same bucket) against the angle between two vectors, measured and (2 buckets) exact."""
    coll = _collisions()
    fig, ax = figure(width=5.6, height=3.6)
    ax.plot(
        ANGLES_DEG,
        1 - ANGLES_DEG / 180,
        color=COLORS[1],
        linestyle="--",
        label=r"exact for 2 buckets: $1-\theta/\pi$",
    )
    for i, nb in enumerate(COLLISION_BUCKETS):
        ax.plot(
            ANGLES_DEG,
            coll[nb],
            "o",
            ms=4,
            color=COLORS[[0, 2, 3, 4][i]],
            label=f"{nb} buckets, measured",
        )
    ax.set(
        xlabel=r"angle $\theta$ between the two vectors (degrees)",
        ylabel="share of rounds with the same bucket",
        xticks=range(0, 181, 30),
        title=f"$d_k$ = 64, {COLLISION_ROUNDS:,} random rotations per point",
    )
    ax.legend()
    return fig


def collision_numbers() -> dict[str, str]:
    coll = _collisions()
    i60 = int(np.argmin(abs(ANGLES_DEG - 60)))
    i90 = int(np.argmin(abs(ANGLES_DEG - 90)))
    return {
        "p2_60": f"{coll[2][i60]:.3f}",
        "p2_60_exact": f"{1 - 60 / 180:.3f}",
        "p16_60": f"{coll[16][i60]:.3f}",
        "p16_90": f"{coll[16][i90]:.3f}",
        "rounds": f"{COLLISION_ROUNDS:,}",
    }


def clustered(
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


N_AGREE, CHUNK_AGREE = 256, 16
# The paper's rule (Kitaev et al. 2020, section 2): chunk = 2 N / n_buckets, so that the
# average bucket holds half a chunk. Clusters of that average size give each query about as
# many true neighbours as the rule assumes a bucket holds.
DESIGN_BUCKETS = 2 * N_AGREE // CHUNK_AGREE
CLUSTERS = DESIGN_BUCKETS  # clusters of N / n_buckets positions on average
ROUNDS = [1, 2, 4, 8]
AGREE_BUCKETS = [8, 16, DESIGN_BUCKETS, 2 * DESIGN_BUCKETS]
SEEDS = [0, 1, 2, 3]


@functools.lru_cache
def _agreement() -> dict[int, np.ndarray]:
    """Per bucket count, rows (rounds) of: attention mass reached, output error in units of
    the values' spread, the output error relative to |O|, and the share of pairs of the
    same cluster that share a bucket in at least one round (chunks aside), averaged over
    SEEDS.

    The rounds are nested: the first r rounds of the 8-round hash, so adding rounds only
    adds keys.
    """
    sums = {nb: np.zeros((len(ROUNDS), 4)) for nb in AGREE_BUCKETS}
    for seed in SEEDS:
        g = torch.Generator().manual_seed(seed)
        qk, label = clustered(N_AGREE, CLUSTERS, D, g)
        same_cluster = (label[:, None] == label[None, :]) & ~torch.eye(
            N_AGREE, dtype=torch.bool
        )
        v = torch.randn(N_AGREE, D, generator=g, dtype=torch.float64)
        p = shared_qk_attention(qk, torch.eye(N_AGREE, dtype=torch.float64))  # weights
        exact = p @ v
        spread = (v - v.mean(dim=0)).norm()  # |V - mean value|_F
        for nb in AGREE_BUCKETS:
            all_rounds = lsh_hash(qk, nb, max(ROUNDS), g)  # (8, N)
            for i, r in enumerate(ROUNDS):
                buckets = all_rounds[:r]
                approx = lsh_attention_with_buckets(qk, v, buckets, CHUNK_AGREE)
                mass = (p * lsh_key_sets(buckets, CHUNK_AGREE)).sum(-1).mean().item()
                err = (approx - exact).norm()
                together = (buckets[:, :, None] == buckets[:, None, :]).any(0)
                sums[nb][i] += (
                    mass,
                    (err / spread).item(),
                    (err / exact.norm()).item(),
                    together[same_cluster].double().mean().item(),
                )
    return {nb: sums[nb] / len(SEEDS) for nb in AGREE_BUCKETS}


def agreement_figure():
    """Mass of full attention inside the LSH key sets, and the output error, vs rounds."""
    agree = _agreement()
    fig, axes = figure(ncols=2, width=8.4, height=3.4)
    for i, nb in enumerate(AGREE_BUCKETS):
        label = f"{nb} buckets" + (" (paper's rule)" if nb == DESIGN_BUCKETS else "")
        style = dict(
            color=COLORS[i], label=label, lw=2.4 if nb == DESIGN_BUCKETS else 1.4
        )
        axes[0].plot(ROUNDS, agree[nb][:, 0], "o-", **style)
        axes[1].plot(ROUNDS, agree[nb][:, 1], "o-", **style)
    axes[0].set(ylabel="full-attention mass reached", ylim=(0, 1.02))
    axes[1].set(ylabel=r"$\|\hat O - O\|_F \,/\, \|V - \bar v\|_F$", ylim=(0, None))
    for ax in axes:
        ax.set(
            xscale="log",
            xlabel="hash rounds",
            xticks=ROUNDS,
            xticklabels=ROUNDS,
            title=f"N = {N_AGREE}, chunk {CHUNK_AGREE}",
        )
        ax.minorticks_off()
    axes[0].legend(fontsize=8)
    return fig


def agreement_numbers() -> dict[str, str]:
    agree = _agreement()
    design, few = agree[DESIGN_BUCKETS], agree[AGREE_BUCKETS[0]]
    return {
        "n": str(N_AGREE),
        "chunk": str(CHUNK_AGREE),
        "d": str(D),
        "seeds": str(len(SEEDS)),
        "clusters": str(CLUSTERS),
        "cluster_size": str(N_AGREE // CLUSTERS),
        "buckets": ", ".join(str(nb) for nb in AGREE_BUCKETS),
        "design": str(DESIGN_BUCKETS),
        "few": str(AGREE_BUCKETS[0]),
        "few_bucket_size": str(N_AGREE // AGREE_BUCKETS[0]),
        "many": str(AGREE_BUCKETS[-1]),
        "mass_design_1": f"{design[0, 0]:.2f}",
        "mass_design_8": f"{design[-1, 0]:.2f}",
        "err_design_1": f"{design[0, 1]:.2f}",
        "err_design_8": f"{design[-1, 1]:.3f}",
        "old_err_design_8": f"{design[-1, 2]:.2f}",
        "mass_few_1": f"{few[0, 0]:.2f}",
        "mass_few_8": f"{few[-1, 0]:.2f}",
        "err_few_8": f"{few[-1, 1]:.3f}",
        "mass_many_8": f"{agree[AGREE_BUCKETS[-1]][-1, 0]:.2f}",
        "split_few_1": f"{1 - few[0, 3]:.2f}",
        "split_many_1": f"{1 - agree[AGREE_BUCKETS[-1]][0, 3]:.2f}",
        "split_design_8": f"{1 - design[-1, 3]:.3f}",
        "err_many_8": f"{agree[AGREE_BUCKETS[-1]][-1, 1]:.3f}",
    }


def key_sets_figure():
    """Full attention weights next to the key sets of 1 and 4 rounds, on a short sequence."""
    g = torch.Generator().manual_seed(5)
    n, chunk = 64, 8
    qk, label = clustered(n, 6, D, g)
    p = shared_qk_attention(qk, torch.eye(n, dtype=torch.float64))
    buckets = lsh_hash(qk, 8, 4, g)
    show = label.argsort(stable=True)  # display order: grouped by cluster
    panels = [
        (p, "full attention weights"),
        (lsh_key_sets(buckets[:1], chunk).double(), "keys reached, 1 round"),
        (lsh_key_sets(buckets, chunk).double(), "keys reached, 4 rounds"),
    ]
    fig, axes = figure(ncols=3, width=9.6, height=3.4)
    for ax, (img, title) in zip(axes, panels, strict=True):
        img = img[show][:, show].numpy()
        ax.imshow(img, cmap="viridis", vmin=0, vmax=img.max(), interpolation="nearest")
        ax.set(title=title, xlabel="key (grouped by cluster)", xticks=[], yticks=[])
        ax.grid(False)
    axes[0].set_ylabel("query (grouped by cluster)")
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
                torch.ones(48, 48, dtype=torch.bool, device=qk.device).tril()
                if c
                else None,
            )
        )
        .abs()
        .max()
        .item()
        for c in (False, True)
    )
    return (
        f"With one bucket and one chunk of 48 positions (a batch of 2 × 4 heads, width 16, "
        f"float32, on `{device()}`), LSH attention and the dense computation differ by at "
        f"most **{err:.1e}**, with and without the causal mask."
    )


MEMORY_N = [256, 512, 1024, 2048, 4096]
MEM_ROUNDS, MEM_CHUNK = 2, 32


def _mem_buckets(n: int) -> int:
    """The paper's rule, chunk = 2 N / n_buckets: the bucket count grows with N."""
    return 2 * n // MEM_CHUNK


@functools.lru_cache
def _memory() -> dict[str, list[int]]:
    g = torch.Generator().manual_seed(7)
    out: dict[str, list[int]] = {"lsh": [], "dense": [], "hash": []}
    for n in MEMORY_N:
        qk, v = (torch.randn(1, n, D, generator=g).to(device()) for _ in range(2))
        out["hash"].append(  # the hashing step alone
            peak_memory_bytes(
                lambda qk=qk, n=n: lsh_hash(
                    qk, _mem_buckets(n), MEM_ROUNDS, torch.Generator().manual_seed(0)
                )
            )
        )
        out["lsh"].append(
            peak_memory_bytes(
                lambda qk=qk, v=v, n=n: lsh_attention(
                    qk,
                    v,
                    _mem_buckets(n),
                    MEM_ROUNDS,
                    MEM_CHUNK,
                    generator=torch.Generator().manual_seed(0),
                )
            )
        )
        out["dense"].append(
            peak_memory_bytes(lambda qk=qk, v=v: shared_qk_attention(qk, v))
        )
    return out


def _slope(x: list[float], y: list[float]) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def memory_figure():
    """Peak memory of one attention call vs N: dense grows like N^2, LSH like N."""
    mem = _memory()
    fig, ax = figure(width=5.6, height=3.6)
    for key, color, label in (
        ("dense", COLORS[3], "dense shared-QK attention"),
        (
            "lsh",
            COLORS[0],
            f"LSH attention (2N/{MEM_CHUNK} buckets, {MEM_ROUNDS} rounds, chunk {MEM_CHUNK})",
        ),
        ("hash", COLORS[2], "its hashing step alone"),
    ):
        ax.plot(
            MEMORY_N,
            [b / 2**20 for b in mem[key]],
            "o:" if key == "hash" else "o-",
            color=color,
            label=f"{label}: slope {_slope(MEMORY_N, mem[key]):.2f}",
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="sequence length N",
        ylabel="peak memory (MiB)",
        title=f"one head, $d_k$ = {D}, float32, {device().type}",
    )
    ax.set_xticks(MEMORY_N, [str(n) for n in MEMORY_N])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return fig


def memory_numbers() -> dict[str, str]:
    mem = _memory()
    return {
        "slope_lsh": f"{_slope(MEMORY_N, mem['lsh']):.2f}",
        "slope_dense": f"{_slope(MEMORY_N, mem['dense']):.2f}",
        "n_max": f"{MEMORY_N[-1]:,}",
        "ratio_max": f"{mem['dense'][-1] / mem['lsh'][-1]:.1f}",
        "lsh_max_mib": f"{mem['lsh'][-1] / 2**20:.1f}",
        "dense_max_mib": f"{mem['dense'][-1] / 2**20:.1f}",
        "short": (
            f"at $N = {MEMORY_N[0]}$ the two are {mem['lsh'][0] / 2**20:.2f} and "
            f"{mem['dense'][0] / 2**20:.2f} MiB, "
            + (
                "so for short sequences the bookkeeping of the rounds costs more than it saves"
                if mem["lsh"][0] > mem["dense"][0]
                else "so LSH attention saves memory even at this length"
            )
        ),
        "buckets_min": str(_mem_buckets(MEMORY_N[0])),
        "buckets_max": str(_mem_buckets(MEMORY_N[-1])),
        "n_min": f"{MEMORY_N[0]:,}",
        "n_before_max": f"{MEMORY_N[-2]:,}",
        "slope_lsh_before_max": f"{_slope(MEMORY_N[:-1], mem['lsh'][:-1]):.2f}",
        "growth_last": f"{mem['lsh'][-1] / mem['lsh'][-2]:.2f}",
        "hash_max_mib": f"{mem['hash'][-1] / 2**20:.1f}",
        "slope_hash": f"{_slope(MEMORY_N, mem['hash']):.2f}",
        "rounds": str(MEM_ROUNDS),
        "chunk": str(MEM_CHUNK),
        "d": str(D),
    }


DEPTHS = [1, 2, 4, 8]
WIDTH, TOKENS = 64, 1024


def _blocks(depth: int) -> list[ReversibleBlock]:
    torch.manual_seed(8)

    def mlp() -> nn.Module:
        return nn.Sequential(
            nn.Linear(WIDTH, 4 * WIDTH), nn.GELU(), nn.Linear(4 * WIDTH, WIDTH)
        )

    return [ReversibleBlock(mlp(), mlp()).to(device()) for _ in range(depth)]


@functools.lru_cache
def _reversible_memory() -> dict[str, list[int]]:
    out: dict[str, list[int]] = {"standard": [], "reversible": []}
    g = torch.Generator().manual_seed(9)
    x1, x2 = (torch.randn(TOKENS, WIDTH, generator=g).to(device()) for _ in range(2))
    for depth in DEPTHS:
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
            out[name].append(peak_memory_bytes(fn))
    return out


def reversible_figure():
    """Peak memory of forward + backward vs depth, ordinary vs reversible residual blocks."""
    mem = _reversible_memory()
    fig, ax = figure(width=5.6, height=3.6)
    for key, color in (("standard", COLORS[3]), ("reversible", COLORS[0])):
        ax.plot(DEPTHS, [b / 2**20 for b in mem[key]], "o-", color=color, label=key)
    ax.set(
        xlabel="number of blocks",
        ylabel="peak memory, forward + backward (MiB)",
        xticks=DEPTHS,
        ylim=(0, None),
        title=f"{TOKENS:,} tokens × width {WIDTH}, float32, {device().type}",
    )
    ax.legend()
    return fig


def reversible_numbers() -> dict[str, str]:
    mem = _reversible_memory()
    return {
        "std_1": f"{mem['standard'][0] / 2**20:.1f}",
        "std_8": f"{mem['standard'][-1] / 2**20:.1f}",
        "rev_1": f"{mem['reversible'][0] / 2**20:.1f}",
        "rev_8": f"{mem['reversible'][-1] / 2**20:.1f}",
        "depth_max": str(DEPTHS[-1]),
        "tokens": f"{TOKENS:,}",
        "width": str(WIDTH),
    }
