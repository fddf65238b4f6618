"""Argument checks: the short line at the top of the course's public functions.

A bad call fails at once, with a message that names the argument, says what was
expected and what was given: `ValueError` for a wrong value, size or shape,
`TypeError` for a wrong type or dtype. The checks read sizes, shapes and dtypes,
never the values in a tensor: they cost no device synchronisation and run no
operator that a FLOP or memory counter would see. (`indices` is the exception: a
negative index would silently wrap around, so it reads them; it serves set-up code
such as mask builders, not a timed path.)

Shapes are written as in the course's comments, `"(B, N, d)"`; a leading `...`
stands for any number of batch dimensions, as in `"(..., N, d)"`, and a number is a
size that must match exactly, as the 1s in `"(B, 1, 1, n)"`.
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
    "boolean",
    "divisible_by",
    "even",
    "floating",
    "indices",
    "int_between",
    "integer",
    "non_negative_ints",
    "one_of",
    "positive_ints",
    "positive_number",
    "same_shape",
    "self_attention_inputs",
    "shape",
    "tensor",
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


def positive_number(name: str, value: object) -> None:
    """`value` must be a real number (a bool is not one) > 0: a temperature, a scale."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        got = f"{type(value).__name__} {value!r}"
        raise TypeError(f"{name} must be a positive number, got {got}")
    if not value > 0:  # also refuses NaN
        raise ValueError(f"{name} must be a positive number, got {value}")


def even(name: str, value: int) -> None:
    """The int `value` must be even: `even("x's last dimension d", x.size(-1))`."""
    if value % 2:
        raise ValueError(f"{name} must be even, got {value}")


def indices(name: str, values: object, n: int) -> None:
    """Each of `values` (ints, or an integer tensor) must be an index in [0, n).

    Python would read a negative index from the end; refused here instead. Unlike
    the other checks, this one reads the values of a tensor.
    """
    if isinstance(values, Tensor):
        _tensors("integer", "(...)", {name: values})
        values = values.flatten().tolist()
    try:
        values = list(values)
    except TypeError:  # one index
        values = [values]
    for i, value in enumerate(values):
        int_between(f"{name}[{i}]", value, 0, n - 1)


def one_of(name: str, value: object, allowed: Sequence[object]) -> None:
    """`value` must be one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def _broadcast(*shapes: Sequence[int]) -> tuple[int, ...] | None:
    """The shape that `shapes` broadcast to, or None if they do not.

    Written out: `torch.broadcast_shapes` takes tens of microseconds, several times
    as long.
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
    a name repeats: "(..., N, d)" gives (True, ("N", "d"), False). A number, as the
    1 in "(B, 1, n)", is a dimension of that fixed size."""
    names = tuple(n.strip() for n in pattern.strip("()").split(",") if n.strip())
    any_batch = names[:1] == ("...",)
    names = names[1:] if any_batch else names
    return any_batch, names, len(set(names)) < len(names)


def _is(kind: str, dtype: torch.dtype) -> bool:
    """Whether `dtype` is of `kind`: "floating", "integer", "bool" or "any"."""
    if kind == "floating":
        return dtype.is_floating_point
    if kind == "bool":
        return dtype == torch.bool
    if kind == "any":
        return True
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def _tensors(kind: str, pattern: str, named: dict[str, object]) -> None:
    """The tensors in `named` must have a `kind` dtype and the shape `pattern`.

    A name used twice in `pattern` means equal sizes within each tensor, as in
    "(B, H, N, N)"; an int in `named` under the name of a dimension pins that
    dimension's size in every tensor, as does a number in `pattern`.
    """
    any_batch, dims, repeats = _dims(pattern)
    pins = {n: v for n, v in named.items() if not isinstance(v, Tensor) and n in dims}
    fixed = {n: int(n) for n in dims if n.isdigit()}  # "(B, 1, n)": a size of 1
    for name, x in named.items():
        if name in pins:
            continue
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not _is(kind, x.dtype):
            article = "an" if kind == "integer" else "a"  # kind is not "any" here
            raise TypeError(f"{name} must have {article} {kind} dtype, got {x.dtype}")
        fits = x.dim() >= len(dims) if any_batch else x.dim() == len(dims)
        if fits and (pins or fixed or repeats):  # named dimensions: the last ones
            sizes = {**pins, **fixed}
            for n, size in zip(dims, x.shape[x.dim() - len(dims) :], strict=True):
                fits = fits and sizes.setdefault(n, size) == size
        if not fits:
            pinned = "".join(f", {n}={v}" for n, v in pins.items())
            got = tuple(x.shape)
            raise ValueError(f"{name} must have shape {pattern}{pinned}, got {got}")


def floating(pattern: str, /, **named: Tensor | int) -> None:
    """Each tensor must have a floating dtype and the shape `pattern`; an int pins
    the dimension of its name: `floating("(B, N, d)", x=x, d=512)`.

    The names in `pattern` are matched within one tensor only: in
    `floating("(B, n, d)", query=query, key=key, d=512)` query and key may differ
    in B and n. Only the pinned ints (here d) hold across the tensors.
    """
    _tensors("floating", pattern, named)


def integer(pattern: str, /, **named: Tensor | int) -> None:
    """As `floating`, for tensors of an integer dtype: token ids, lengths."""
    _tensors("integer", pattern, named)


def boolean(pattern: str, /, **named: Tensor | int) -> None:
    """As `floating`, for bool tensors: a mask that must be given, of one layout."""
    _tensors("bool", pattern, named)


def tensor(pattern: str, /, **named: Tensor | int) -> None:
    """As `floating`, for tensors of any dtype: code that only moves entries."""
    _tensors("any", pattern, named)


def same_shape(**named: Tensor) -> None:
    """Each tensor must have the shape of the first: `same_shape(q=q, k=k, v=v)`.

    Call it after a check of their type, such as `floating`.
    """
    (first, x0), *others = named.items()
    for name, x in others:
        if x.shape != x0.shape:
            got = f"{tuple(x.shape)} and {first} {tuple(x0.shape)}"
            raise ValueError(f"{name} must have the shape of {first}, got {got}")


def shape(name: str, x: object, expected: Sequence[int], what: str = "") -> None:
    """`x` must be a tensor of exactly the shape `expected`; `what`, in brackets,
    names those sizes and says whose: `shape("positions", p, (n,), "(N of x)")`
    reads "positions must have shape (5,) (N of x), got (4,)"."""
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


def attention_inputs(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: object = None,
    *,
    same_length: bool = False,
    same_batch: bool = False,
) -> None:
    """q (..., n_q, d_k), k (..., n_k, d_k) and v (..., n_k, d_v) floating, with batch
    dimensions that broadcast; `mask` None, or as `bool_mask` wants it for the
    scores (..., n_q, n_k).

    `same_length`: n_q == n_k, for attention within one sequence (causal attention
    with a position-by-position rule). `same_batch`: q, k and v have the very same
    batch dimensions, for code that indexes or fills along them.
    """
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
    shapes = f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)}"
    if same_length and q.size(-2) != k.size(-2):
        raise ValueError(
            "q and k must have the same length (dimension -2): this attention "
            f"relates the positions of one sequence, got {shapes}"
        )
    if same_batch and not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        raise ValueError(
            "the batch dimensions (...) of q, k and v must be the same, not merely "
            f"broadcast, got {shapes}"
        )
    batch = _broadcast(q.shape[:-2], k.shape[:-2])  # of the scores
    if batch is None or _broadcast(batch, v.shape[:-2]) is None:
        raise ValueError(
            f"the batch dimensions (...) of q, k and v must broadcast, got {shapes}"
        )
    bool_mask(mask, (*batch, q.size(-2), k.size(-2)))


def self_attention_inputs(
    q: Tensor, k: Tensor, v: Tensor, mask: object = None, *, same_batch: bool = False
) -> None:
    """As `attention_inputs` for attention within one sequence: q (..., N, d_k),
    k (..., N, d_k) and v (..., N, d_v), n_q == n_k == N."""
    attention_inputs(q, k, v, mask, same_length=True, same_batch=same_batch)
