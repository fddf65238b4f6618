"""Chapter 12's code exercises; the answers come from closed forms, a Monte Carlo
estimate written here, masked softmax over the union of key sets, and autograd."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from snippets.exercises import Case, Exercise, close


def _collision_cases() -> list[Case]:
    """Closed forms where they exist: 1 at theta = 0 and 0 at theta = pi for any even
    number of buckets (h(-x) = h(x) + n_b/2 mod n_b), 1 - theta/pi for two buckets
    (Charikar, 2002). For four and eight buckets, a Monte Carlo estimate written here,
    from its own generator. The four-bucket case at 135 degrees tells the chapter's hash
    from an argmax over n_b independent columns without the negated half, which
    collides there in about 4.5% of the rotations against 6.2%. A sampled rate has
    binomial standard error sqrt(p (1 - p) / n)
    (and the difference of two independent ones the root of the summed variances); a
    case passes within 6 of them, a chance of failing a correct solution of about
    2e-9 per case."""

    def monte_carlo(theta: float, d: int, nb: int, n: int) -> float:
        g = torch.Generator().manual_seed(12)
        r = torch.randn(n, d, nb // 2, generator=g, dtype=torch.float64)
        x = torch.zeros(d, dtype=torch.float64)
        y = torch.zeros(d, dtype=torch.float64)
        x[0], y[0], y[1] = 1.0, math.cos(theta), math.sin(theta)
        bx = torch.cat([x @ r, -(x @ r)], dim=-1).argmax(dim=-1)  # (n,)
        by = torch.cat([y @ r, -(y @ r)], dim=-1).argmax(dim=-1)
        return (bx == by).double().mean().item()

    def case(
        theta: float, d: int, nb: int, n: int, truth: float, n_truth: float
    ) -> Case:
        # n_truth: the samples behind `truth` (inf for a closed form)
        error = math.sqrt(truth * (1 - truth) * (1 / n + 1 / n_truth))

        def judge(got: object) -> str | None:
            if not isinstance(got, float | int) or isinstance(got, bool):
                return f"expected a float, got {type(got).__name__}"
            if abs(got - truth) > 6 * error + 1e-12:
                return f"{got:.4g} is more than 6 standard errors from {truth:.4g}"
            return None

        inputs = (
            f"theta={theta:.4g} rad ({math.degrees(theta):.0f} degrees), d={d}, "
            f"num_buckets={nb}, num_samples={n}, a seeded generator"
        )
        args = (theta, d, nb, n, torch.Generator().manual_seed(0))
        return Case(inputs, args, judge=judge)

    mc, mc4 = 40_000, 100_000
    return [
        case(0.0, 8, 16, 2_000, 1.0, math.inf),
        case(math.pi, 8, 8, 2_000, 0.0, math.inf),
        case(math.pi / 3, 16, 2, 20_000, 1 - 1 / 3, math.inf),
        case(math.pi / 2, 4, 2, 20_000, 0.5, math.inf),
        case(math.pi / 3, 16, 8, 20_000, monte_carlo(math.pi / 3, 16, 8, mc), mc),
        case(
            3 * math.pi / 4, 4, 4, 50_000, monte_carlo(3 * math.pi / 4, 4, 4, mc4), mc4
        ),
    ]


def _combine_cases() -> list[Case]:
    """Reference: softmax over the union of the rounds' key sets, as a masked softmax."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for batch, n, m, d_v, rounds, p in (
        ((), 5, 7, 3, 1, 0.4),
        ((), 6, 9, 4, 3, 0.5),
        ((2, 3), 4, 6, 2, 4, 0.6),
    ):
        s = 2 * torch.randn(*batch, n, m, generator=g, dtype=torch.float64)
        v = torch.randn(*batch, m, d_v, generator=g, dtype=torch.float64)
        reached = torch.rand(rounds, *batch, n, m, generator=g) < p
        # every round reaches at least one key of every query (key i mod m)
        reached[..., torch.arange(n), torch.arange(n) % m] = True
        union = reached.any(dim=0)
        expected = torch.softmax(s.masked_fill(~union, float("-inf")), dim=-1) @ v
        inputs = (
            f"scores s {(*batch, n, m)}, values v {(*batch, m, d_v)}, reached "
            f"{(rounds, *batch, n, m)} (about {p:.0%} of the pairs per round, "
            f"overlapping)"
        )
        cases.append(Case(inputs, (s, v, reached), expected, atol=1e-10, rtol=1e-8))
    return cases


def _reversible_cases() -> list[Case]:
    """Reference: autograd through the forward pass y1 = x1 + f(x2), y2 = x2 + g(y1),
    written here. The judge also counts the calls of f and g: one each."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for shape in ((4, 6), (2, 5, 8)):
        d = shape[-1]
        w_f = torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
        w_g = torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
        x1, x2, dy1, dy2 = (
            torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(4)
        )
        calls = {"f": 0, "g": 0}

        def f(x: torch.Tensor, w: torch.Tensor = w_f, calls: dict = calls):
            calls["f"] += 1
            return torch.tanh(x @ w)

        def g_fn(x: torch.Tensor, w: torch.Tensor = w_g, calls: dict = calls):
            calls["g"] += 1
            # self-attention of the rows of x, with a nonlinearity after it
            return F.gelu(F.scaled_dot_product_attention(x, x @ w, x))

        a1, a2 = x1.clone().requires_grad_(), x2.clone().requires_grad_()
        y1 = a1 + torch.tanh(a2 @ w_f)
        y2 = a2 + F.gelu(F.scaled_dot_product_attention(y1, y1 @ w_g, y1))
        dx1, dx2 = torch.autograd.grad((y1, y2), (a1, a2), (dy1, dy2))
        expected = (x1, x2, dx1, dx2)
        y1, y2 = y1.detach(), y2.detach()

        def judge(got: object, expected: tuple = expected, calls: dict = calls):
            problem = close(got, expected, atol=1e-10, rtol=1e-8)
            if problem:
                return problem + " (results: x1, x2, dx1, dx2)"
            if calls["f"] != 1 or calls["g"] != 1:
                return (
                    f"f ran {calls['f']} times and g {calls['g']} times; "
                    "the exercise asks for once each"
                )
            return None

        inputs = (
            f"outputs y1, y2 and their gradients dy1, dy2, each {shape}; "
            "f(x) = tanh(x W_f); g(x) = gelu(attention with queries and values x, "
            "keys x W_g)"
        )
        cases.append(Case(inputs, (y1, y2, dy1, dy2, f, g_fn), judge=judge))
    return cases


EXERCISES = [
    Exercise("12.2", "collision_rate", "Two buckets, one hyperplane", _collision_cases),
    Exercise("12.3", "combine_rounds", "Counting a key once", _combine_cases),
    Exercise(
        "12.4", "reversible_backward", "The reversible backward pass", _reversible_cases
    ),
]
