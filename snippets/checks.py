"""Argument checks: the short line at the top of the course's public functions.

A bad call fails at once, with a message that names the argument, says what was
expected and what was given: `ValueError` for a wrong value, size or shape,
`TypeError` for a wrong type or dtype. The checks read sizes, shapes and dtypes,
never the values in a tensor: they cost no device synchronisation and run no
operator that a FLOP or memory counter would see.

Shapes are written as in the course's comments, `"(B, N, d)"`; a leading `...`
stands for any number of batch dimensions, as in `"(..., N, d)"`.
"""

from __future__ import annotations

import functools
import itertools
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "attention_inputs",
    "bool_mask",
    "divisible_by",
    "floating",
    "int_between",
    "integer",
    "non_negative_ints",
    "one_of",
    "positive_ints",
    "shape",
]

_AT_LEAST = {0: "a non-negative int", 1: "a positive int"}


def int_between(name: str, value: object, low: int, high: int | None = None) -> None:
    """`value` must be an int (a bool is not one) with low <= value <= high.

    No upper bound when `high` is None.
    """
    if high is None:
        wanted = _AT_LEAST.get(low, f"an int >= {low}")
    else:
        wanted = f"an int in [{low}, {high}]"
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        got = f"{type(value).__name__} {value!r}"
        raise TypeError(f"{name} must be {wanted}, got {got}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {wanted}, got {value}")


def positive_ints(**sizes: int | None) -> None:
    """Each size must be an int >= 1. None passes: an optional size left unset."""
    for name, value in sizes.items():
        if value is not None:
            int_between(name, value, 1)


def non_negative_ints(**sizes: int) -> None:
    """Each size must be an int >= 0."""
    for name, value in sizes.items():
        int_between(name, value, 0)


def divisible_by(by: str, divisor: int, **values: int) -> None:
    """`divisor` (called `by`) and each value must be positive ints, and each value
    a multiple of `divisor`: `divisible_by("num_heads", 8, d_model=512)`."""
    positive_ints(**{by: divisor}, **values)
    for name, value in values.items():
        if value % divisor:
            got = f"{name}={value} and {by}={divisor}"
            raise ValueError(f"{name} must be divisible by {by}, got {got}")


def one_of(name: str, value: object, allowed: Sequence[object]) -> None:
    """`value` must be one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def _broadcast(*shapes: Sequence[int]) -> tuple[int, ...] | None:
    """The shape that `shapes` broadcast to, or None if they do not.

    Written out: `torch.broadcast_shapes` takes hundreds of microseconds.
    """
    if all(s == shapes[0] for s in shapes[1:]):
        return tuple(shapes[0])
    out: list[int] = []
    for sizes in itertools.zip_longest(*(reversed(s) for s in shapes), fillvalue=1):
        big = {n for n in sizes if n != 1}
        if len(big) > 1:
            return None
        out.append(big.pop() if big else 1)
    return tuple(reversed(out))


@functools.lru_cache
def _dims(pattern: str) -> tuple[bool, tuple[str, ...], bool]:
    """Whether `pattern` allows leading dimensions, its named dimensions, and whether
    a name repeats: "(..., N, d)" gives (True, ("N", "d"), False)."""
    names = tuple(n.strip() for n in pattern.strip("()").split(",") if n.strip())
    any_batch = names[:1] == ("...",)
    names = names[1:] if any_batch else names
    return any_batch, names, len(set(names)) < len(names)


def _is(kind: str, dtype: torch.dtype) -> bool:
    """Whether `dtype` is of `kind`: "floating" or "integer"."""
    if kind == "floating":
        return dtype.is_floating_point
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def _tensors(kind: str, pattern: str, named: dict[str, object]) -> None:
    """The tensors in `named` must have a `kind` dtype and the shape `pattern`.

    A name used twice in `pattern` means equal sizes, as in "(B, H, N, N)"; an int in
    `named` under the name of a dimension pins that dimension's size.
    """
    any_batch, dims, repeats = _dims(pattern)
    pins = {n: v for n, v in named.items() if not isinstance(v, Tensor) and n in dims}
    for name, x in named.items():
        if name in pins:
            continue
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not _is(kind, x.dtype):
            article = "an" if kind == "integer" else "a"
            raise TypeError(f"{name} must have {article} {kind} dtype, got {x.dtype}")
        fits = x.dim() >= len(dims) if any_batch else x.dim() == len(dims)
        if fits and (pins or repeats):  # the named dimensions are the last ones
            sizes = dict(pins)
            for n, size in zip(dims, x.shape[x.dim() - len(dims) :], strict=True):
                fits = fits and sizes.setdefault(n, size) == size
        if not fits:
            pinned = "".join(f", {n}={v}" for n, v in pins.items())
            got = tuple(x.shape)
            raise ValueError(f"{name} must have shape {pattern}{pinned}, got {got}")


def floating(pattern: str, /, **named: Tensor | int) -> None:
    """Each tensor must have a floating dtype and the shape `pattern`; an int pins
    the dimension of its name: `floating("(B, N, d)", x=x, d=512)`."""
    _tensors("floating", pattern, named)


def integer(pattern: str, /, **named: Tensor | int) -> None:
    """As `floating`, for tensors of an integer dtype: token ids, lengths."""
    _tensors("integer", pattern, named)


def shape(name: str, x: object, expected: Sequence[int], what: str = "") -> None:
    """`x` must be a tensor of exactly the shape `expected`; `what` says whose."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.shape != tuple(expected):
        wanted = f"{tuple(expected)} {what}".rstrip()
        raise ValueError(f"{name} must have shape {wanted}, got {tuple(x.shape)}")


def bool_mask(
    mask: object, scores_shape: Sequence[int] | None = None, name: str = "mask"
) -> None:
    """`mask` must be a bool tensor (True = may attend) and, if `scores_shape` is
    given, broadcast to it without enlarging it: a mask selects scores, it adds no
    batch or head dimensions to them. None, no mask, passes."""
    if mask is None:
        return
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"{name} must be a bool tensor (True = may attend), got {got}")
    if scores_shape is None:
        return
    scores_shape = tuple(scores_shape)
    if _broadcast(mask.shape, scores_shape) != scores_shape:
        raise ValueError(
            f"{name} must broadcast to the scores' shape (..., n_q, n_k) = "
            f"{scores_shape} without enlarging it, got {tuple(mask.shape)}"
        )


def attention_inputs(q: Tensor, k: Tensor, v: Tensor, mask: object = None) -> None:
    """q (..., n_q, d_k), k (..., n_k, d_k) and v (..., n_k, d_v) floating, with batch
    dimensions that broadcast; `mask` None, or as `bool_mask` wants it for the
    scores (..., n_q, n_k)."""
    _tensors("floating", "(..., n_q, d_k)", {"q": q})
    _tensors("floating", "(..., n_k, d_k)", {"k": k})
    _tensors("floating", "(..., n_k, d_v)", {"v": v})
    if q.size(-1) != k.size(-1):
        raise ValueError(
            "q and k must have the same last dimension d_k, "
            f"got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if k.size(-2) != v.size(-2):
        raise ValueError(
            "k and v must have the same number of keys n_k (dimension -2), "
            f"got k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    batch = _broadcast(q.shape[:-2], k.shape[:-2])  # of the scores
    if batch is None or _broadcast(batch, v.shape[:-2]) is None:
        raise ValueError(
            "the batch dimensions (...) of q, k and v must broadcast, got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    bool_mask(mask, (*batch, q.size(-2), k.size(-2)))
