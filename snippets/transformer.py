"""The Transformer of Vaswani et al. (2017), assembled from the course's own modules.

Attention comes from `snippets.multihead` (chapter 5, itself built on chapter 3), masks from
`snippets.masks` (chapter 4) and positions from `snippets.positional` (chapter 6). This module
adds what is left: the position-wise feed-forward network, residual connections with
LayerNorm in either placement (post-LN as in the paper, pre-LN as in most later models), the
encoder and decoder layers and stacks, and the encoder-decoder with tied embeddings.

Batch-first throughout: activations are (B, N, d_model), token ids (B, N). Masks are boolean,
True = may attend, broadcastable to the per-head scores (B, H, n_q, n_k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snippets import checks
from snippets.attention import scaled_dot_product_attention
from snippets.masks import causal_mask
from snippets.multihead import MultiHeadAttention, count_parameters
from snippets.positional import sinusoidal_encoding

__all__ = [
    "Decoder",
    "DecoderLayer",
    "Encoder",
    "EncoderLayer",
    "FeedForward",
    "KVCache",
    "Transformer",
    "TransformerConfig",
    "count_parameters",
    "decoder_layer_from_torch",
    "encoder_layer_from_torch",
    "final_norm",
    "greedy_decode",
    "label_smoothed_loss",
    "paper_optimizer",
    "warmup_lr",
]


# --8<-- [start:config]
@dataclass
class TransformerConfig:
    """Hyperparameters. The defaults are the paper's base model (Table 3)."""

    d_model: int = 512  # width of every token vector
    num_heads: int = 8  # d_model / num_heads = 64 per head
    d_ff: int = 2048  # inner width of the feed-forward network
    num_layers: int = 6  # N: encoder layers, and as many decoder layers
    vocab_size: int = 37000  # shared source/target BPE vocabulary (EN-DE)
    max_len: int = 512  # rows of the positional table
    dropout: float = 0.0  # the paper trains with 0.1; 0 makes runs deterministic
    norm_first: bool = False  # False: post-LN (the paper); True: pre-LN
    tie_embeddings: bool = True  # one matrix: source, target, output projection
    activation: str = "relu"  # "relu" (the paper) or "gelu" (BERT, GPT, ViT)
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        checks.one_of("activation", self.activation, ("relu", "gelu"))
        checks.divisible_by("num_heads", self.num_heads, d_model=self.d_model)


# --8<-- [end:config]


# --8<-- [start:feedforward]
class FeedForward(nn.Module):
    """FFN(x) = max(0, x W1 + b1) W2 + b2, applied to every position separately.

    Widens each token vector from d_model to d_ff, applies the nonlinearity,
    narrows back.
    No token sees another here: all mixing between positions happens in attention.
    """

    def __init__(
        self, d_model: int, d_ff: int, activation: str = "relu", dropout: float = 0.0
    ) -> None:
        super().__init__()
        checks.one_of("activation", activation, ("relu", "gelu"))
        self.linear1 = nn.Linear(d_model, d_ff)  # W1 and b1
        self.linear2 = nn.Linear(d_ff, d_model)  # W2 and b2
        self.activation = F.relu if activation == "relu" else F.gelu
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, N, d_model)
        hidden = self.activation(self.linear1(x))  # (B, N, d_ff)
        return self.linear2(self.dropout(hidden))  # (B, N, d_model)


# --8<-- [end:feedforward]


# --8<-- [start:encoder_layer]
class EncoderLayer(nn.Module):
    """Self-attention, then the feed-forward network, each with residual + LayerNorm.

    Post-LN (the paper): x = LayerNorm(x + Sublayer(x)).
    Pre-LN (norm_first):  x = x + Sublayer(LayerNorm(x)).
    The last self-attention weights are kept in `attn_weights` (B, H, N, N).
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        c = config
        self.norm_first = c.norm_first
        self.self_attn = MultiHeadAttention(c.d_model, c.num_heads)
        self.ff = FeedForward(c.d_model, c.d_ff, c.activation, c.dropout)
        self.norm1 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.norm2 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        # on each sublayer's output, before the sum
        self.dropout = nn.Dropout(c.dropout)
        self.attn_weights: Tensor | None = None

    def _self_attention(self, x: Tensor, mask: Tensor | None) -> Tensor:
        out, weights = self.self_attn(x, x, x, mask)  # (B, N, d), (B, H, N, N)
        self.attn_weights = weights.detach()
        return self.dropout(out)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        # x: (B, N, d); mask: bool, broadcastable to (B, H, N, N)
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), mask)
            x = x + self.dropout(self.ff(self.norm2(x)))
        else:
            x = self.norm1(x + self._self_attention(x, mask))
            x = self.norm2(x + self.dropout(self.ff(x)))
        return x  # (B, N, d)


# --8<-- [end:encoder_layer]


# --8<-- [start:decoder_layer]
class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the encoder's output, feed-forward.

    Cross-attention takes its queries from the decoder, keys and values from `memory`.
    `self_mask` is normally causal (chapter 4); `memory_mask` hides source padding.
    Weights are kept in `self_weights` (B, H, N_t, N_t) and `cross_weights`
    (B, H, N_t, N_s).
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        c = config
        self.norm_first = c.norm_first
        self.self_attn = MultiHeadAttention(c.d_model, c.num_heads)
        self.cross_attn = MultiHeadAttention(c.d_model, c.num_heads)
        self.ff = FeedForward(c.d_model, c.d_ff, c.activation, c.dropout)
        self.norm1 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.norm2 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.norm3 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)
        self.self_weights: Tensor | None = None
        self.cross_weights: Tensor | None = None

    def _self_attention(self, x: Tensor, mask: Tensor | None) -> Tensor:
        out, weights = self.self_attn(x, x, x, mask)  # weights (B, H, N_t, N_t)
        self.self_weights = weights.detach()
        return self.dropout(out)

    def _cross_attention(
        self, x: Tensor, memory: Tensor, mask: Tensor | None
    ) -> Tensor:
        # (B, H, N_t, N_s) weights
        out, weights = self.cross_attn(x, memory, memory, mask)
        self.cross_weights = weights.detach()
        return self.dropout(out)

    def forward(
        self,
        x: Tensor,  # (B, N_t, d): the target so far
        memory: Tensor,  # (B, N_s, d): the encoder's output
        self_mask: Tensor | None = None,  # broadcastable to (B, H, N_t, N_t)
        memory_mask: Tensor | None = None,  # broadcastable to (B, H, N_t, N_s)
    ) -> Tensor:
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), self_mask)
            x = x + self._cross_attention(self.norm2(x), memory, memory_mask)
            x = x + self.dropout(self.ff(self.norm3(x)))
        else:
            x = self.norm1(x + self._self_attention(x, self_mask))
            x = self.norm2(x + self._cross_attention(x, memory, memory_mask))
            x = self.norm3(x + self.dropout(self.ff(x)))
        return x  # (B, N_t, d)


# --8<-- [end:decoder_layer]


def _config_of_torch_layer(
    m: nn.TransformerEncoderLayer | nn.TransformerDecoderLayer,
) -> TransformerConfig:
    """The TransformerConfig that describes one of PyTorch's layers."""
    act = m.activation
    if act is F.relu or isinstance(act, nn.ReLU):
        activation = "relu"
    elif act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        activation = "gelu"
    else:
        raise ValueError(f"unsupported activation {act!r}")
    return TransformerConfig(
        d_model=m.self_attn.embed_dim,
        num_heads=m.self_attn.num_heads,
        d_ff=m.linear1.out_features,
        num_layers=1,
        norm_first=m.norm_first,
        activation=activation,
        layer_norm_eps=m.norm1.eps,
    )


def _copy_feedforward_and_norms(ours: nn.Module, m: nn.Module, norms: int) -> None:
    ours.ff.linear1.load_state_dict(m.linear1.state_dict())
    ours.ff.linear2.load_state_dict(m.linear2.state_dict())
    for i in range(1, norms + 1):
        getattr(ours, f"norm{i}").load_state_dict(getattr(m, f"norm{i}").state_dict())


def encoder_layer_from_torch(m: nn.TransformerEncoderLayer) -> EncoderLayer:
    """Our EncoderLayer holding a copy of the weights of PyTorch's (any batch_first setting).

    Dropout is not copied: the two agree when m's dropout is 0 or both are in eval mode.
    """
    ours = EncoderLayer(_config_of_torch_layer(m)).to(m.linear1.weight)
    ours.self_attn = MultiHeadAttention.from_torch(m.self_attn)
    _copy_feedforward_and_norms(ours, m, norms=2)
    return ours


def decoder_layer_from_torch(m: nn.TransformerDecoderLayer) -> DecoderLayer:
    """Our DecoderLayer holding a copy of the weights of PyTorch's; its `multihead_attn` is
    our `cross_attn`."""
    ours = DecoderLayer(_config_of_torch_layer(m)).to(m.linear1.weight)
    ours.self_attn = MultiHeadAttention.from_torch(m.self_attn)
    ours.cross_attn = MultiHeadAttention.from_torch(m.multihead_attn)
    _copy_feedforward_and_norms(ours, m, norms=3)
    return ours


# --8<-- [start:stacks]
def final_norm(config: TransformerConfig) -> nn.Module:
    """The LayerNorm after the last pre-LN layer; nothing for post-LN."""
    if config.norm_first:
        return nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
    return nn.Identity()


class Encoder(nn.Module):
    """num_layers encoder layers. Pre-LN adds a final LayerNorm: its residual stream
    is never normalised otherwise. Post-LN needs none: every layer ends with one."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(config) for _ in range(config.num_layers)
        )
        self.norm = final_norm(config)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:  # x: (B, N, d)
            x = layer(x, mask)
        return self.norm(x)


class Decoder(nn.Module):
    """num_layers decoder layers, each attending to the same encoder output."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(config) for _ in range(config.num_layers)
        )
        self.norm = final_norm(config)

    def forward(
        self,
        x: Tensor,  # (B, N_t, d)
        memory: Tensor,  # (B, N_s, d)
        self_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
    ) -> Tensor:
        for layer in self.layers:
            x = layer(x, memory, self_mask, memory_mask)
        return self.norm(x)


# --8<-- [end:stacks]


# --8<-- [start:transformer]
class Transformer(nn.Module):
    """Encoder-decoder Transformer: token ids in, next-token logits out.

    Embeddings are multiplied by sqrt(d_model), then the sinusoidal encoding is
    added (sections 3.4 and 3.5 of the paper). With `tie_embeddings`, one
    (vocab, d_model) matrix embeds source and target tokens and, transposed,
    produces the logits.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        c = self.config = config
        tied = c.tie_embeddings
        self.src_embed = nn.Embedding(c.vocab_size, c.d_model)
        if tied:  # one table for source and target tokens
            self.tgt_embed = self.src_embed
        else:
            self.tgt_embed = nn.Embedding(c.vocab_size, c.d_model)
        self.output = nn.Linear(c.d_model, c.vocab_size, bias=False)
        # A tuple, not a set: a set's order follows memory addresses, and the weights
        # must depend on the seed alone. A tied table is initialised once.
        tables = (self.src_embed,) if tied else (self.src_embed, self.tgt_embed)
        for emb in tables:
            # std 1/sqrt(d): scaled by sqrt(d), entries are of size 1, like PE
            nn.init.normal_(emb.weight, std=c.d_model**-0.5)
        if tied:
            # the same Parameter, counted once
            self.output.weight = self.tgt_embed.weight
        self.register_buffer(
            "pe", sinusoidal_encoding(c.max_len, c.d_model), persistent=False
        )
        self.dropout = nn.Dropout(c.dropout)
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)

    def embed(self, tokens: Tensor, table: nn.Embedding) -> Tensor:
        """(B, N) token ids -> (B, N, d)."""
        checks.integer("(B, N)", tokens=tokens)
        n, max_len = tokens.size(1), self.config.max_len
        if n > max_len:
            raise ValueError(f"sequence of {n} tokens, but max_len is {max_len}")
        x = table(tokens) * math.sqrt(self.config.d_model) + self.pe[:n]
        return self.dropout(x)

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        """(B, N_s) token ids -> memory (B, N_s, d).

        src_mask: e.g. padding_mask(lengths, N_s), (B, 1, 1, N_s)."""
        checks.integer("(B, N_s)", src=src)
        return self.encoder(self.embed(src, self.src_embed), src_mask)

    def decode(
        self,
        tgt: Tensor,  # (B, N_t) token ids
        memory: Tensor,  # (B, N_s, d)
        src_mask: Tensor | None = None,  # hides source padding from cross-attention
        tgt_mask: Tensor | None = None,  # None means causal
    ) -> Tensor:
        """Logits (B, N_t, vocab): row t scores the token after tgt[:, :t+1]."""
        checks.integer("(B, N_t)", tgt=tgt)
        if tgt_mask is None:
            tgt_mask = causal_mask(tgt.size(1), device=tgt.device)  # (N_t, N_t)
        x = self.embed(tgt, self.tgt_embed)  # (B, N_t, d)
        x = self.decoder(x, memory, tgt_mask, src_mask)
        return self.output(x)  # (B, N_t, vocab)

    def forward(
        self,
        src: Tensor,  # (B, N_s) token ids
        tgt: Tensor,  # (B, N_t) token ids, shifted right (teacher forcing)
        src_mask: Tensor | None = None,  # bool, broadcastable to (B, H, N_s, N_s)
        tgt_mask: Tensor | None = None,  # bool, broadcastable to (B, H, N_t, N_t)
    ) -> Tensor:
        """Logits (B, N_t, vocab). A None tgt_mask means the causal mask: the
        decoder must not see the tokens it predicts. For target padding as well,
        pass causal & padding yourself (`snippets.masks.combine`)."""
        return self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask)


# --8<-- [end:transformer]


# --8<-- [start:schedule]
def warmup_lr(step: int, d_model: int = 512, warmup: int = 4000) -> float:
    """The paper's learning rate at `step` = 1, 2, ... (section 5.3):

    lrate = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5).

    It grows linearly for `warmup` steps, then decays as 1/sqrt(step); the two branches
    meet at step = warmup, the peak, where the rate is (d_model * warmup)^-0.5.
    """
    checks.positive_ints(step=step, d_model=d_model, warmup=warmup)
    return d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def paper_optimizer(
    model: nn.Module, d_model: int = 512, warmup: int = 4000
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam with beta1 = 0.9, beta2 = 0.98, eps = 1e-9, and warmup_lr as its schedule.

    Call `schedule.step()` after each `optimizer.step()`: the k-th update then uses
    warmup_lr(k). (LambdaLR multiplies lr = 1 by the factor of its own count, from 0.)
    """
    optimizer = torch.optim.Adam(
        model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda count: warmup_lr(count + 1, d_model, warmup)
    )
    return optimizer, schedule


# --8<-- [end:schedule]


# --8<-- [start:label_smoothing]
def label_smoothed_loss(logits: Tensor, target: Tensor, eps: float = 0.1) -> Tensor:
    """Mean cross-entropy against a smoothed target (section 5.4): 1 - eps on the true
    token, plus eps spread evenly over all V tokens.

    logits (..., V), target (...) int64. Per position:
    (1 - eps) * (-log p[target]) + eps * mean over v of (-log p[v]).
    """
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must be in [0, 1], got {eps}")
    checks.integer("(...)", target=target)  # token ids, for gather
    checks.shape("target", target, logits.shape[:-1], "(logits' shape without V)")
    log_p = F.log_softmax(logits, dim=-1)  # (..., V)
    true = -log_p.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (...)
    uniform = -log_p.mean(dim=-1)  # (...)
    return ((1 - eps) * true + eps * uniform).mean()


# --8<-- [end:label_smoothing]


# --8<-- [start:decode]
def greedy_decode(
    model: Transformer,
    src: Tensor,  # (B, N_s) source token ids
    max_len: int,  # the most target tokens to generate
    bos: int,  # the token that starts every target
    eos: int | None,  # the token that ends one; None: always generate max_len tokens
    src_mask: Tensor | None = None,  # e.g. padding_mask(lengths, N_s), (B, 1, 1, N_s)
    use_cache: bool = True,  # keep each layer's keys and values between steps
) -> Tensor:
    """(B, n) generated target ids, n <= max_len, without the BOS: at each step the
    most likely next token given the source and the tokens so far. Generation stops once
    every row has produced `eos`; a finished row repeats it. The source is encoded once.

    Without the cache, every step runs the decoder over the whole prefix again; with it,
    over the newest token only (see `KVCache.next_logits`). Both give the same tokens.
    """
    checks.integer("(B, N_s)", src=src)
    checks.positive_ints(max_len=max_len)
    model.eval()
    with torch.no_grad():
        memory = model.encode(src, src_mask)  # (B, N_s, d)
        ys = src.new_full((src.size(0), 1), bos)  # (B, 1): the prefix, BOS first
        cache = KVCache(model, memory) if use_cache else None
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            if cache is None:
                logits = model.decode(ys, memory, src_mask)[:, -1]  # (B, vocab)
            else:
                logits = cache.next_logits(ys[:, -1:], src_mask)
            token = logits.argmax(dim=-1)  # (B,)
            if eos is not None:
                token = torch.where(done, eos, token)
                done |= token == eos
            ys = torch.cat([ys, token[:, None]], dim=1)
            if done.all():
                break
    return ys[:, 1:]


class KVCache:
    """What incremental decoding keeps per decoder layer: the keys and values of the
    target tokens so far (self-attention) and of the source (cross-attention, computed
    once). Each step then feeds the decoder one new token: O(N_t) attention work for
    it, instead of the whole prefix through every projection and feed-forward again."""

    def __init__(self, model: Transformer, memory: Tensor) -> None:
        self.model, self.length = model, 0
        self.self_kv: list[tuple[Tensor, Tensor] | None] = []
        self.cross_kv = []
        for layer in model.decoder.layers:
            attn = layer.cross_attn  # (B, H, N_s, d_head) keys and values of the source
            k, v = (attn.split_heads(w(memory)) for w in (attn.w_k, attn.w_v))
            self.cross_kv.append((k, v))
            self.self_kv.append(None)

    def next_logits(self, token: Tensor, src_mask: Tensor | None = None) -> Tensor:
        """(B, 1) newest token ids -> (B, vocab) logits of the token after it."""
        model, t = self.model, self.length
        if t >= model.config.max_len:
            raise ValueError(f"position {t}, but max_len is {model.config.max_len}")
        x = model.tgt_embed(token) * math.sqrt(model.config.d_model)
        x = x + model.pe[t : t + 1]  # (B, 1, d): the token at position t
        for i, layer in enumerate(model.decoder.layers):

            def self_attention(h: Tensor, i: int = i, layer=layer) -> Tensor:
                attn = layer.self_attn
                k, v = (attn.split_heads(w(h)) for w in (attn.w_k, attn.w_v))
                if self.self_kv[i] is not None:  # the earlier positions' keys, values
                    k = torch.cat([self.self_kv[i][0], k], dim=2)  # (B, H, t + 1, d_h)
                    v = torch.cat([self.self_kv[i][1], v], dim=2)
                self.self_kv[i] = (k, v)
                return _attend(attn, h, k, v)  # all t + 1 keys are in the past: no mask

            def cross_attention(h: Tensor, i: int = i, layer=layer) -> Tensor:
                return _attend(layer.cross_attn, h, *self.cross_kv[i], src_mask)

            if layer.norm_first:
                x = x + self_attention(layer.norm1(x))
                x = x + cross_attention(layer.norm2(x))
                x = x + layer.ff(layer.norm3(x))
            else:
                x = layer.norm1(x + self_attention(x))
                x = layer.norm2(x + cross_attention(x))
                x = layer.norm3(x + layer.ff(x))
        self.length += 1
        return model.output(model.decoder.norm(x))[:, -1]  # (B, vocab)


def _attend(
    attn: MultiHeadAttention,
    h: Tensor,  # (B, 1, d): the newest position
    k: Tensor,  # (B, H, n, d_head)
    v: Tensor,  # (B, H, n, d_head)
    mask: Tensor | None = None,
) -> Tensor:
    """attn's multi-head attention for new queries against given keys and values."""
    q = attn.split_heads(attn.w_q(h))  # (B, H, 1, d_head)
    heads, _ = scaled_dot_product_attention(q, k, v, mask)
    return attn.w_o(attn.merge_heads(heads))  # (B, 1, d)


# --8<-- [end:decode]
