"""Chapter 7, the Transformer: agreement with PyTorch, shapes, the paper's parameter count
and its training recipe."""

from __future__ import annotations

import math

import torch
from matplotlib.text import Text
from torch import nn

from snippets.bilingual import Say, join, say
from snippets.masks import causal_mask, combine, padding_mask
from snippets.plotting import COLORS, Figure, figure, markdown_table
from snippets.runtime import device
from snippets.transformer import (
    Transformer,
    TransformerConfig,
    count_parameters,
    decoder_layer_from_torch,
    encoder_layer_from_torch,
    label_smoothed_loss,
    warmup_lr,
)

_BASE = TransformerConfig()  # the defaults are the paper's base model
_BIG = TransformerConfig(d_model=1024, num_heads=16, d_ff=4096)
_PAPER = {"base": 65e6, "big": 213e6}  # Vaswani et al. 2017, Table 3, "params x 10^6"


def _ids(en: str, zh: str) -> Say:
    """A text about token ids: the Chinese pages too call them "id" (词元 id)."""
    return Say(en, zh, {"id"})


def agreement_with_torch() -> str:
    """Our layers against torch.nn.Transformer{Encoder,Decoder}Layer with copied weights."""
    g = torch.Generator().manual_seed(0)
    dev = device()
    b, n_t, n_s, d = 2, 6, 9, 64
    x = torch.randn(b, n_t, d, generator=g).to(dev)
    memory = torch.randn(b, n_s, d, generator=g).to(dev)
    tgt_len, src_len = (
        torch.tensor([6, 4], device=dev),
        torch.tensor([9, 5], device=dev),
    )
    self_mask = combine(causal_mask(n_t, dev), padding_mask(tgt_len, n_t))
    memory_mask = padding_mask(src_len, n_s)
    rows = []
    for norm_first in (False, True):
        kw = dict(dropout=0.0, batch_first=True, norm_first=norm_first)
        torch.manual_seed(1)
        enc = nn.TransformerEncoderLayer(d, 4, 256, **kw).to(dev)
        dec = nn.TransformerDecoderLayer(d, 4, 256, **kw).to(dev)
        with torch.no_grad():
            e_ours = encoder_layer_from_torch(enc)(x, self_mask)
            e_theirs = enc(
                x,
                src_mask=~causal_mask(n_t, dev),
                src_key_padding_mask=~self_mask[:, 0, -1],
            )
            d_ours = decoder_layer_from_torch(dec)(x, memory, self_mask, memory_mask)
            d_theirs = dec(
                x,
                memory,
                tgt_mask=~causal_mask(n_t, dev),
                tgt_key_padding_mask=~self_mask[:, 0, -1],
                memory_key_padding_mask=~memory_mask[:, 0, 0],
            )
        name = "pre-LN" if norm_first else "post-LN"
        for layer, ours, theirs in (
            (say("encoder layer", "编码器层"), e_ours, e_theirs),
            (say("decoder layer", "解码器层"), d_ours, d_theirs),
        ):
            err = (ours - theirs).abs().max().item()
            rows.append([layer, name, f"{err:.1e}"])
    header = [
        say("layer", "层"),
        say("placement", "放置方式"),
        say("largest difference from PyTorch", "与 PyTorch 的最大差异"),
    ]
    intro = say(
        f"Run on `{dev}` in float32, batch of {b}, {n_t} target and {n_s} source "
        f"positions, d_model = {d}, causal and padding masks:",
        f"在 `{dev}` 上以 float32 运行，批量大小为 {b}，{n_t} 个目标位置和 {n_s} 个源位置，"
        f"d_model = {d}，使用因果掩码和填充掩码：",
    )
    return join("\n", [intro, "", markdown_table(header, rows, "llr")])


def shape_trace() -> str:
    """The shape of every intermediate tensor of one forward pass of a small model."""
    c = TransformerConfig(
        d_model=32, num_heads=4, d_ff=64, num_layers=2, vocab_size=100, max_len=64
    )
    g = torch.Generator().manual_seed(0)
    model = Transformer(c).eval()
    src = torch.randint(0, c.vocab_size, (2, 7), generator=g)
    tgt = torch.randint(0, c.vocab_size, (2, 5), generator=g)
    src_mask = padding_mask(torch.tensor([7, 4]), 7)
    with torch.no_grad():
        src_x = model.embed(src, model.src_embed)
        memory = model.encode(src, src_mask)
        logits = model(src, tgt, src_mask)
    enc_w = model.encoder.layers[0].attn_weights
    dec = model.decoder.layers[0]

    def shape(t: torch.Tensor) -> str:
        return "(" + ", ".join(map(str, t.shape)) + ")"

    rows = [
        (_ids("`src`, source token ids", "`src`，源词元 id"), src, "(B, N_s)"),
        (
            _ids(
                "`tgt`, target token ids, shifted right", "`tgt`，右移后的目标词元 id"
            ),
            tgt,
            "(B, N_t)",
        ),
        ("`src_mask = padding_mask(lengths, N_s)`", src_mask, "(B, 1, 1, N_s)"),
        (
            say("source embeddings × √d_model + PE", "源嵌入 × √d_model + 位置编码"),
            src_x,
            "(B, N_s, d_model)",
        ),
        (
            say(
                "encoder self-attention weights, one layer",
                "编码器自注意力权重（一层）",
            ),
            enc_w,
            "(B, H, N_s, N_s)",
        ),
        (
            say("`memory`, the encoder's output", "`memory`，编码器的输出"),
            memory,
            "(B, N_s, d_model)",
        ),
        (
            say(
                "decoder self-attention weights (causal)", "解码器自注意力权重（因果）"
            ),
            dec.self_weights,
            "(B, H, N_t, N_t)",
        ),
        (
            say("decoder cross-attention weights", "解码器交叉注意力权重"),
            dec.cross_weights,
            "(B, H, N_t, N_s)",
        ),
        ("logits", logits, say("(B, N_t, vocab)", "(B, N_t, 词表大小)")),
    ]
    table = markdown_table(
        [say("tensor", "张量"), say("shape", "形状"), say("named", "记作")],
        [[what, f"`{shape(t)}`", named] for what, t, named in rows],
    )
    return (
        say(
            f"B = 2, N_s = 7, N_t = 5, d_model = {c.d_model}, H = {c.num_heads}, "
            f"vocab = {c.vocab_size}, {c.num_layers} layers each:\n\n",
            f"B = 2，N_s = 7，N_t = 5，d_model = {c.d_model}，H = {c.num_heads}，"
            f"词表大小 = {c.vocab_size}，编码器和解码器各 {c.num_layers} 层：\n\n",
        )
        + table
    )


# --- the parameter count of the paper's models --------------------------------------------------


def _model(config: TransformerConfig) -> Transformer:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        return Transformer(config)


_EMBEDDING = "shared embedding = output projection"
_COMPONENT_NAMES = {  # component -> its name in the table and the figure
    _EMBEDDING: say(_EMBEDDING, "共享嵌入 = 输出投影"),
    "encoder self-attention": say("encoder self-attention", "编码器自注意力"),
    "encoder feed-forward": say("encoder feed-forward", "编码器前馈网络"),
    "encoder LayerNorms": say("encoder LayerNorms", "编码器 LayerNorm"),
    "decoder masked self-attention": say(
        "decoder masked self-attention", "解码器掩蔽自注意力"
    ),
    "decoder cross-attention": say("decoder cross-attention", "解码器交叉注意力"),
    "decoder feed-forward": say("decoder feed-forward", "解码器前馈网络"),
    "decoder LayerNorms": say("decoder LayerNorms", "解码器 LayerNorm"),
}
_FORMULAS = {  # component -> its count of parameters, as a formula
    _EMBEDDING: "$V d$",
    "encoder self-attention": r"$N \cdot 4(d^2 + d)$",
    "encoder feed-forward": r"$N (2 d\, d_{ff} + d_{ff} + d)$",
    "encoder LayerNorms": r"$N \cdot 2 \cdot 2d$",
    "decoder masked self-attention": r"$N \cdot 4(d^2 + d)$",
    "decoder cross-attention": r"$N \cdot 4(d^2 + d)$",
    "decoder feed-forward": r"$N (2 d\, d_{ff} + d_{ff} + d)$",
    "decoder LayerNorms": r"$N \cdot 3 \cdot 2d$",
}


def _components(model: Transformer) -> dict[str, int]:
    """component -> its parameters, for every part of the model, counted from its modules."""
    enc, dec = model.encoder.layers, model.decoder.layers

    def total(modules) -> int:
        return sum(count_parameters(m) for m in modules)

    def norms(layers, k) -> int:
        return total(
            getattr(layer, f"norm{i}") for layer in layers for i in range(1, k + 1)
        )

    counts = {
        _EMBEDDING: count_parameters(model.src_embed),
        "encoder self-attention": total(layer.self_attn for layer in enc),
        "encoder feed-forward": total(layer.ff for layer in enc),
        "encoder LayerNorms": norms(enc, 2),
        "decoder masked self-attention": total(layer.self_attn for layer in dec),
        "decoder cross-attention": total(layer.cross_attn for layer in dec),
        "decoder feed-forward": total(layer.ff for layer in dec),
        "decoder LayerNorms": norms(dec, 3),
    }
    assert counts.keys() == _FORMULAS.keys()
    return counts


def param_table() -> str:
    base, big = _model(_BASE), _model(_BIG)
    counts_base, counts_big = _components(base), _components(big)
    rows = [
        [
            _COMPONENT_NAMES[name],
            formula,
            f"{counts_base[name]:,}",
            f"{counts_big[name]:,}",
        ]
        for name, formula in _FORMULAS.items()
    ]
    assert sum(counts_base.values()) == count_parameters(base)  # nothing left out
    rows.append(
        [
            say(
                "**total, `count_parameters(model)`**",
                "**总计，`count_parameters(model)`**",
            ),
            "",
            f"**{count_parameters(base):,}**",
            f"**{count_parameters(big):,}**",
        ]
    )
    rows.append(
        [
            say("the paper, Table 3", "论文，表 3"),
            "",
            *(
                say(
                    f"{_PAPER[name] / 1e6:.0f} million",
                    f"{_PAPER[name] / 1e6:.0f} 百万",
                )
                for name in ("base", "big")
            ),
        ]
    )
    header = [
        say("component", "组成部分"),
        say("parameters", "参数量"),
        say("base", "基础模型"),
        say("big", "大模型"),
    ]
    return markdown_table(header, rows, "llrr")


def param_numbers() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, config in (("base", _BASE), ("big", _BIG)):
        model = _model(config)
        total = count_parameters(model)
        embedding = config.vocab_size * config.d_model
        rest = total - embedding
        d = config.d_model
        # vocabularies for which our count rounds to the paper's figure (± 0.5 million)
        low, high = ((_PAPER[name] + s * 0.5e6 - rest) / d for s in (-1, 1))
        untied = count_parameters(
            _model(TransformerConfig(**{**vars(config), "tie_embeddings": False}))
        )
        small = sum(
            p.numel()
            for n, p in model.named_parameters()
            if n.endswith("bias") or ".norm" in n
        )
        out |= {
            f"{name}_total": f"{total:,}",
            f"{name}_millions": f"{total / 1e6:.1f}",
            f"{name}_gap": f"{(_PAPER[name] - total) / 1e6:+.1f}",
            f"{name}_untied_millions": f"{untied / 1e6:.1f}",
            # whole vocabularies V with low <= V < high
            f"{name}_vocab_low": f"{math.ceil(low):,}",
            f"{name}_vocab_high": f"{math.ceil(high) - 1:,}",
            f"{name}_small": f"{small:,}",
            f"{name}_embedding_share": f"{100 * embedding / total:.0f}",
        }
    with torch.device("meta"):
        theirs = nn.Transformer(512, 8, 6, 6, 2048, batch_first=True)
    out["torch_layers"] = f"{sum(p.numel() for p in theirs.parameters()):,}"
    return out


def param_figure() -> Figure:
    components = _components(_model(_BASE))
    fig, ax = figure(width=7.2, height=3.4)
    names = list(components)[::-1]
    counts = [components[name] / 1e6 for name in names]
    part = {"encoder": COLORS[2], "decoder": COLORS[1]}  # the embedding: COLORS[0]
    colors = [part.get(name.split()[0], COLORS[0]) for name in names]
    ax.barh([_COMPONENT_NAMES[name] for name in names], counts, color=colors)
    for y, value in enumerate(counts):
        ax.text(value + 0.2, y, f"{value:.2f} M", va="center", fontsize=9)
    ax.set(
        xlabel=say("parameters (millions)", "参数量（百万）"),
        title=say("base model, V = 37,000", "基础模型，V = 37,000"),
        xlim=(0, max(counts) * 1.18),
    )
    ax.grid(axis="y", visible=False)
    return fig


# The paper's recipe (section 5): base model trained for 100,000 steps, warm-up 4000 steps,
# label smoothing 0.1, Adam's beta2 = 0.98 (PyTorch's default is 0.999).
_TRAIN_STEPS, _WARMUP, _SMOOTHING, _BETA2, _BETA2_DEFAULT = (
    100_000,
    4000,
    0.1,
    0.98,
    0.999,
)
_SURE = 0.999  # a confident model's probability of the right token


def _sci(x: float) -> str:
    """6.99e-04 as LaTeX without dollars: 6.99 \\times 10^{-4}."""
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa} \\times 10^{{{int(exponent)}}}"


def _smoothed_loss_at(confidence: float, vocab: int) -> float:
    """label_smoothed_loss of a model that gives the right token `confidence` and shares
    the rest evenly among the other vocab - 1 tokens (float64)."""
    probs = torch.full((1, vocab), (1 - confidence) / (vocab - 1), dtype=torch.float64)
    probs[0, 0] = confidence  # token 0 is the right one
    target = torch.zeros(1, dtype=torch.long)
    return label_smoothed_loss(probs.log(), target, _SMOOTHING).item()


def training_numbers() -> dict[str, str]:
    """The schedule's peak found by scanning every step, beside its closed form; the
    confidence that label smoothing rewards, found by scanning; Adam's memory."""
    d, v = _BASE.d_model, _BASE.vocab_size
    rates = torch.tensor(
        [warmup_lr(s, d, _WARMUP) for s in range(1, _TRAIN_STEPS + 1)],
        dtype=torch.float64,
    )
    peak_step = int(rates.argmax()) + 1
    closed_form = (d * _WARMUP) ** -0.5
    # Scan 0.5 to 0.99 in steps of 0.01, then around the best in steps of 0.001, 0.0001.
    best, step = 0.75, 0.25
    for width in (0.01, 0.001, 0.0001):
        grid = [
            best + width * i for i in range(-int(step / width), int(step / width) + 1)
        ]
        grid = [c for c in grid if 0 < c < 1]
        losses = [_smoothed_loss_at(c, v) for c in grid]
        i = min(range(len(grid)), key=losses.__getitem__)
        assert 0 < i < len(grid) - 1, "the minimum lies inside the scanned range"
        best, step, min_loss = grid[i], width, losses[i]
    return {
        "peak_step": f"{peak_step:,}",
        "peak_lr": _sci(rates.max().item()),
        "closed_form_lr": _sci(closed_form),
        "end_lr": _sci(rates[-1].item()),
        "end_ratio": f"{rates.max().item() / rates[-1].item():.1f}",
        "train_steps": f"{_TRAIN_STEPS:,}",
        "best_confidence": f"{best:.4f}",
        "smoothed_target": f"{1 - _SMOOTHING + _SMOOTHING / v:.6f}",
        "min_loss": f"{min_loss:.2f}",
        "loss_if_sure": f"{_smoothed_loss_at(_SURE, v):.2f}",
        "sure_percent": f"{100 * _SURE:.1f}",
        "adam_memory": f"{1 / (1 - _BETA2):.0f}",
        "adam_memory_default": f"{1 / (1 - _BETA2_DEFAULT):.0f}",
    }


def schedule_figure() -> Figure:
    """The paper's learning rate over the base model's 100,000 steps, for both widths."""
    steps = torch.arange(1, _TRAIN_STEPS + 1, 50)
    fig, ax = figure(width=6.4, height=3.2)
    models = ((say("base", "基础模型"), _BASE), (say("big", "大模型"), _BIG))
    for (name, config), color in zip(models, COLORS, strict=False):
        d = config.d_model
        rates = [warmup_lr(int(s), d, _WARMUP) * 1e4 for s in steps]
        # in Chinese all in math: the CJK font's narrow space runs "=" into the number
        width = say(f"$d_\\mathrm{{model}}$ = {d}", f"$d_\\mathrm{{model}} = {d}$")
        ax.plot(steps, rates, color=color, label=name + say(", ", "，") + width)
        peak = warmup_lr(_WARMUP, d, _WARMUP) * 1e4
        ax.plot([_WARMUP], [peak], "o", color=color, ms=4)
    ax.axvline(_WARMUP, color="#808080", ls=":", lw=1)
    # in Chinese the names of the schedule's formula are math, as on the page
    where = say(
        f"step = warmup = {_WARMUP}",
        f"$\\mathrm{{step}} = \\mathrm{{warmup}} = {_WARMUP}$",
    )
    ax.text(_WARMUP * 1.3, 0.2, where, fontsize=8)
    ax.set(
        xlabel=say("training step", "训练步数"),
        ylabel=say("learning rate ($\\times 10^{-4}$)", "学习率（$\\times 10^{-4}$）"),
        xlim=(0, _TRAIN_STEPS),
        ylim=(0, None),
    )
    ax.legend()
    return fig


def data_flow_figure() -> Figure:
    """The encoder-decoder at a glance: what flows from the token ids to the logits.

    Every text is 11 pt, the size `legible` gives the labels with subscripts.
    """
    n = _BASE.num_layers
    fig, ax = figure(width=6.8, height=5.0)
    ax.set(xlim=(0, 10), ylim=(0, 10))
    ax.axis("off")
    box = {"boxstyle": "round,pad=0.4", "fc": "none", "ec": COLORS[0], "lw": 1.2}
    stack = {**box, "ec": COLORS[2], "lw": 1.6}

    def node(x: float, y: float, text: str, style: dict = box) -> Text:
        return ax.text(x, y, text, ha="center", va="center", fontsize=11, bbox=style)

    def arrow(start: Text, end: Text, y: float | None = None) -> None:
        """From box to box, down or (at height y) across. The ends are given in the
        boxes' own coordinates and cut at their borders when drawn, so an arrow meets
        its box in either language, whatever the width of the words inside."""
        if y is None:
            tail, head = ((0.5, 0), start), ((0.5, 1), end)
        else:
            tail, head = ((1, y), (start, "data")), ((0, y), (end, "data"))
        ax.annotate(
            "",
            head[0],
            tail[0],
            xycoords=head[1],
            textcoords=tail[1],
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#808080",
                "lw": 1.2,
                "patchA": start.get_bbox_patch(),
                "patchB": end.get_bbox_patch(),
            },
        )

    # √ as a character: a mathtext root, kept as SVG text, would lose its bar in a browser
    # (in Chinese, PE in math: the page's symbol for the positional encoding)
    embed = r"$E[\mathrm{%s}]$ × √$d_\mathrm{model}$ + PE"
    embed_zh = r"$E[\mathrm{%s}] \times$ √$d_\mathrm{model} + \mathrm{PE}$"
    src_ids = node(
        2.2, 9.5, _ids("source token ids\n$(B, N_s)$", "源词元 id\n$(B, N_s)$")
    )
    tgt_ids = node(
        7.75,
        9.5,
        _ids(
            "target token ids, shifted right\n$(B, N_t)$",
            "右移后的目标词元 id\n$(B, N_t)$",
        ),
    )
    src_embed = node(2.2, 7.9, say(embed % "src", embed_zh % "src"))
    tgt_embed = node(7.75, 7.9, say(embed % "tgt", embed_zh % "tgt"))
    encoder = node(
        2.2,
        5.2,
        say(
            f"Encoder, $N = {n}$ layers, each:\nself-attention, add & LayerNorm,\n"
            "feed-forward, add & LayerNorm",
            f"编码器，$N = {n}$ 层，每层：\n自注意力，残差连接与 LayerNorm，\n"
            "前馈网络，残差连接与 LayerNorm",
        ),
        stack,
    )
    decoder = node(
        7.75,
        5.2,
        say(
            f"Decoder, $N = {n}$ layers, each:\nmasked self-attention, add & LayerNorm,\n"
            "cross-attention, add & LayerNorm,\nfeed-forward, add & LayerNorm",
            f"解码器，$N = {n}$ 层，每层：\n掩蔽自注意力，残差连接与 LayerNorm，\n"
            "交叉注意力，残差连接与 LayerNorm，\n前馈网络，残差连接与 LayerNorm",
        ),
        stack,
    )
    unembed = node(7.75, 2.5, say(r"multiply by $E^\top$", r"乘以 $E^\top$"))
    logits = node(7.75, 0.8, r"logits $(B, N_t, V)$")
    for start, end in (
        (src_ids, src_embed),
        (tgt_ids, tgt_embed),
        (src_embed, encoder),
        (tgt_embed, decoder),
        (decoder, unembed),
        (unembed, logits),
    ):
        arrow(start, end)
    arrow(encoder, decoder, y=5.05)  # into the decoder, at its cross-attention line
    memory = say(
        "memory $(B, N_s, d_\\mathrm{model})$:\nsource of the keys and\n"
        "values of every cross-attention",
        "记忆 $(B, N_s, d_\\mathrm{model})$：\n为每个交叉注意力\n提供键和值",
    )
    ax.text(2.2, 4.45, memory, ha="center", va="top", fontsize=11)
    shape = r" $(B, N_t, d_\mathrm{model})$"
    ax.text(7.75, 3.4, shape, fontsize=11, ha="left", va="center")
    return fig
