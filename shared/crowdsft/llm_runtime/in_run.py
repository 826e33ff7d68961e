"""In-run valuation: what each example did to the reference loss, measured while training.

At every step, the reference answers' loss gradient `g_ref` is taken at the step's weights,
and each example's first-order effect on that loss is the step size times the example's share
of the batch times the directional derivative of its own loss along `P g_ref`. With `P = I`
(the default) this is the gradient dot product of first-order in-run data Shapley (Wang et al.
2024, "Data Shapley in One Training Run"; TracIn, Pruthi et al. 2020); with `preconditioned`,
`P` is Adam's diagonal preconditioner at that step, the direction the optimiser really moves
in (as LESS, Xia et al. 2024, weights its gradient features). Summed over the steps, the value
of a step's batch is linear in its examples to first order, so each term is that example's
Shapley value there.

The directional derivatives come from two extra forward passes per step, at the weights moved
by plus and minus one Adam-sized step along the direction (a central difference), which gives
every example's term at once without per-example gradients; the reference gradient costs one
forward and backward pass over (at most 8 of) the reference answers. The reference loss before
and after training says how far the first-order picture is from what happened: `actual`
against `predicted`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Adam's defaults as torch.optim.AdamW uses them (the training loop does not change them).
BETA2, ADAM_EPS = 0.999, 1e-8


@dataclass(frozen=True)
class InRunValues:
    """Each example's first-order effect on the reference loss (positive: lowered it), step
    by step (a row per step, 0 where the example was not in the batch)."""

    per_step: list[list[float]]
    loss_before: float  # the reference loss before training
    loss_after: float
    seconds: float  # what the valuation added to training

    @property
    def per_example(self) -> list[float]:
        return [math.fsum(column) for column in zip(*self.per_step, strict=True)]

    @property
    def actual(self) -> float:
        """How much training lowered the reference loss."""
        return self.loss_before - self.loss_after

    @property
    def predicted(self) -> float:
        """The same, as the sum of the examples' first-order terms."""
        return math.fsum(self.per_example)

    def scale(self) -> float:
        """The factor that makes the terms add up to `actual` (Shapley's efficiency); 1 where
        the two disagree in sign or either is 0, so a scale never turns a ranking over."""
        if self.predicted == 0 or self.actual == 0 or (self.predicted > 0) != (self.actual > 0):
            return 1.0
        return self.actual / self.predicted


Losses = Callable[[list[int]], Any]  # the rows' own mean token losses (a tensor)
# Reference answers whose gradient is taken at each step: a campaign may hold a thousand, and
# this pass is most of the valuation's cost. Successive steps take successive slices.
REFERENCES_PER_STEP = 8


class InRunValuation:
    """Accumulates every example's terms over the steps of one training run."""

    def __init__(
        self,
        n_examples: int,
        n_references: int,
        reference_losses: Losses,
        preconditioned: bool = False,
    ) -> None:
        self._n_examples = n_examples
        self._per_step: list[list[float]] = []
        self._references = list(range(n_references))
        self._reference_losses = reference_losses
        self._preconditioned = preconditioned
        self._seconds = 0.0
        self._steps = 0
        self._before: float | None = None
        self._direction: list[Any] = []

    def reference_gradient(self, model: Any, params: Sequence[Any]) -> None:
        """Before the step's backward pass: the reference loss and its gradient at this step's
        weights (without dropout, as the model is judged)."""
        import torch

        started = time.perf_counter()
        model.eval()
        if self._before is None:
            self._before = self._whole_reference_loss()
        loss = self._reference_losses(self._step_references()).mean()
        grads = torch.autograd.grad(loss, list(params), allow_unused=True)
        model.train()
        self._steps += 1
        self._direction = [
            torch.zeros_like(p) if g is None else g.detach()
            for p, g in zip(params, grads, strict=True)
        ]
        self._seconds += time.perf_counter() - started

    def score_step(
        self,
        model: Any,
        optimiser: Any,
        params: Sequence[Any],
        batch: list[int],
        shares: Sequence[float],
        own_losses: Losses,
    ) -> None:
        """After the step's backward pass and before `optimiser.step()`: each batch row's term,
        `shares` being each row's weight in the batch loss (they sum to 1)."""
        import torch

        started = time.perf_counter()
        terms = [0.0] * self._n_examples
        self._per_step.append(terms)
        group = optimiser.param_groups[0]
        lr = float(group["lr"])
        direction = [
            self._preconditioner(optimiser, p) * d
            for p, d in zip(params, self._direction, strict=True)
        ]
        norm = math.sqrt(sum(float((d * d).sum()) for d in direction))
        if norm > 0:
            # One Adam-sized step (about lr per weight) each way: large enough to stand out of
            # float32 rounding, small enough for the central difference to be first order.
            size = lr * math.sqrt(sum(p.numel() for p in params))
            eps = size / norm
            saved = [p.detach().clone() for p in params]
            model.eval()
            with torch.no_grad():
                for p, d in zip(params, direction, strict=True):
                    p.add_(d, alpha=eps)
                ahead = own_losses(batch)
                for p, d in zip(params, direction, strict=True):
                    p.add_(d, alpha=-2 * eps)
                behind = own_losses(batch)
                for p, kept in zip(params, saved, strict=True):
                    p.copy_(kept)
            model.train()
            derivatives = ((ahead - behind) / (2 * eps)).double().tolist()
            for row, share, derivative in zip(batch, shares, derivatives, strict=True):
                terms[row] = lr * share * derivative
        self._seconds += time.perf_counter() - started

    def finish(self, model: Any) -> InRunValues:
        """The run's values, with the reference loss after its last step."""
        started = time.perf_counter()
        model.eval()
        after = self._whole_reference_loss()
        self._seconds += time.perf_counter() - started
        before = after if self._before is None else self._before
        return InRunValues(self._per_step, before, after, self._seconds)

    def _step_references(self) -> list[int]:
        count = len(self._references)
        if count <= REFERENCES_PER_STEP:
            return self._references
        first = self._steps * REFERENCES_PER_STEP
        return [self._references[(first + k) % count] for k in range(REFERENCES_PER_STEP)]

    def _whole_reference_loss(self) -> float:
        import torch

        with torch.no_grad():
            chunks = [
                self._reference_losses(self._references[i : i + REFERENCES_PER_STEP])
                for i in range(0, len(self._references), REFERENCES_PER_STEP)
            ]
            return float(torch.cat(chunks).mean())

    def _preconditioner(self, optimiser: Any, param: Any) -> Any:
        """Adam's 1 / (sqrt(v_hat) + eps) as it will be for this step (its second moment
        updated with the gradient now in `param.grad`); 1 for plain TracIn."""
        import torch

        if not self._preconditioned or param.grad is None:
            return torch.ones_like(param)
        state = optimiser.state.get(param, {})
        steps = float(state["step"]) + 1 if "step" in state else 1.0
        second = state.get("exp_avg_sq")
        squared = param.grad.detach() ** 2
        second = squared * (1 - BETA2) if second is None else second * BETA2 + squared * (1 - BETA2)
        corrected = second / (1 - BETA2**steps)
        return 1.0 / (corrected.sqrt() + ADAM_EPS)
