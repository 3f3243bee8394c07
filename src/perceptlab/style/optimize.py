"""Style transfer by optimisation (Gatys et al. 2016): find the image whose VGG features fit both targets.

The pixels are not optimised directly but through an unconstrained
parametrisation, ``image = sigmoid(z)``:

- the image stays inside (0, 1) at every step without clamping, so the loss
  always sees the image that is returned;
- L-BFGS keeps a valid model of the objective: clamping between its steps
  would move the iterate behind its back and spoil its curvature pairs, and
  PyTorch's L-BFGS has no bounds (no L-BFGS-B);
- no step can throw the pixels out of range.

The price: a pixel near 0 or 1 moves slowly under L-BFGS, as the sigmoid's
slope there is small (at 1/255, the starting value of a black content pixel,
it is 1/64 of its slope at 0.5). Adam normalises each coordinate's step and
does not notice.

L-BFGS is PyTorch's ``torch.optim.LBFGS`` with a strong-Wolfe line search.
Johnson's neural-style runs L-BFGS with a fixed step, one evaluation per
iteration; through the sigmoid that diverged on us (pytorch/examples'
``amber.jpg`` at 512 px, starry-night style: PyTorch scales the first step
to 1/|g|_1, which shrinks with the image size, ten tiny steps fed L-BFGS bad
curvature pairs, and the eleventh step threw most pixels into saturation,
the loss going from 97 to 22 000 and staying there). The line search costs
a few extra evaluations in the first iterations (5 for the first at 512 px)
and about one per iteration after that; the log has one row per evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from perceptlab._checks import check_image
from perceptlab.style.losses import StyleTransferLoss

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
# Step sizes on z: L-BFGS takes whole quasi-Newton steps; for Adam, 0.05 in z is at most ~0.013 in pixels.
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.05}
# 20 pairs of image-sized vectors: 480 MB per megapixel of image (PyTorch's default, 100, is 2.4 GB).
LBFGS_HISTORY = 20
# Initial images are clamped to [1/255, 254/255]: sigmoid never reaches 0 or 1.
_INIT_MARGIN = 1.0 / 255.0


def _initial_image(init: str | torch.Tensor, content: torch.Tensor, seed: int) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        check_image(init, "init", channels=3)
        if init.shape != content.shape:
            raise ValueError(f"init must have the content's shape {tuple(content.shape)}, got {tuple(init.shape)}")
        return init.detach().to(content)
    if init == "content":
        return content.detach().clone()
    if init == "noise":
        generator = torch.Generator().manual_seed(seed)
        return torch.rand(content.shape, generator=generator).to(content)
    raise ValueError(f"init must be one of {INITS} or an image tensor, got {init!r}")


def stylize_optimize(
    content: torch.Tensor,
    style: torch.Tensor | None = None,
    iterations: int = 100,
    *,
    optimizer: str = "lbfgs",
    init: str | torch.Tensor = "content",
    lr: float | None = None,
    loss: StyleTransferLoss | None = None,
    callback: Callable[[dict], None] | None = None,
    seed: int = 0,
    **loss_options,
) -> tuple[torch.Tensor, list[dict]]:
    """Stylise ``content`` by optimising its pixels against a :class:`StyleTransferLoss`.

    Args:
        content: the content image, (1, 3, H, W) in [0, 1].
        style: the style image, (1, 3, H', W') in [0, 1]; or give ``loss``.
        iterations: optimiser iterations (0 returns the initial image and its loss).
        optimizer: ``"lbfgs"`` (L-BFGS with a strong-Wolfe line search) or ``"adam"``.
        init: ``"content"``, ``"noise"`` (uniform white noise, seeded by
            ``seed``), or an image of the content's shape (a feed-forward
            stylisation, say).
        lr: step size on the parametrisation ``z``; default 1 for L-BFGS,
            0.05 for Adam (:data:`DEFAULT_LR`).
        loss: a ready :class:`StyleTransferLoss` (its style image is used and
            ``style`` must be ``None``).
        callback: called with each log row as it is made (a progress bar).
        seed: seed of the noise initialisation.
        **loss_options: passed to :class:`StyleTransferLoss` when it is built
            here (``content_weight``, ``style_weight``, ``tv_weight``,
            ``style_size``, ``vgg_weights``, ...).

    Returns:
        ``(image, rows)``: the result, (1, 3, H, W) in (0, 1), and one row
        per loss evaluation, the first (iteration 0) for the initial image,
        the last for the returned image::

            {"iteration": k, "evals": loss evaluations so far, "seconds": since the start,
             "iter_seconds": since the previous row, "loss": ..., "content": ..., "style": ..., "tv": ...}

        With Adam, row k is the image after k iterations: ``iterations``
        iterations take ``iterations + 1`` evaluations, all but the last with
        a backward pass. With L-BFGS, the rows of iteration k are the points
        its line search tried (one, mostly; several in the first
        iterations); the last row re-evaluates the returned image, without a
        backward pass. L-BFGS stops after ``iterations`` iterations or
        ``2 * iterations + 10`` evaluations, whichever comes first.

    Raises:
        ValueError: bad arguments; both or neither of ``style`` and ``loss``.
        FloatingPointError: the loss became NaN or infinite.

    Example:
        >>> image, rows = stylize_optimize(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), 3,
        ...                                optimizer="adam", vgg_weights=None)
        >>> [row["iteration"] for row in rows]
        [0, 1, 2, 3]

    Reference:
        Gatys, Ecker and Bethge, "Image style transfer using convolutional
        neural networks", CVPR 2016.
    """
    check_image(content, "content", channels=3)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be a non-negative int, got {iterations!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if (style is None) == (loss is None):
        raise ValueError("give either a style image or a ready StyleTransferLoss (loss=...), not both or neither")
    if loss is None:
        loss = StyleTransferLoss(style, **loss_options)
    elif loss_options:
        raise ValueError(f"loss options {sorted(loss_options)} apply only when the loss is built here")
    lr = DEFAULT_LR[optimizer] if lr is None else lr
    targets = loss.content_targets(content)
    start = _initial_image(init, content, seed).clamp(_INIT_MARGIN, 1.0 - _INIT_MARGIN)
    # Contiguous: an init in another memory layout (a channels-last network output) would give z,
    # and its gradient, strides that L-BFGS's flattening cannot view.
    z = torch.logit(start).contiguous().requires_grad_(True)

    lbfgs = None
    if optimizer == "lbfgs" and iterations:
        lbfgs = torch.optim.LBFGS(
            [z], lr=lr, max_iter=iterations, max_eval=2 * iterations + 10, history_size=LBFGS_HISTORY,
            tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe",
        )  # fmt: skip
    rows: list[dict] = []
    evals = 0
    started = last = time.perf_counter()

    def evaluate(backward: bool = True) -> torch.Tensor:
        nonlocal evals, last
        with torch.set_grad_enabled(backward):
            parts = loss(torch.sigmoid(z), targets)
        if backward:
            z.grad = None
            parts["loss"].backward()
        evals += 1
        now = time.perf_counter()
        iteration = lbfgs.state[z].get("n_iter", 0) if lbfgs is not None else len(rows)
        row = {"iteration": iteration, "evals": evals, "seconds": now - started, "iter_seconds": now - last}
        row |= {k: float(v.detach()) for k, v in parts.items()}
        last = now
        if not math.isfinite(row["loss"]):
            raise FloatingPointError(f"the loss became {row['loss']} at iteration {row['iteration']} (lower lr)")
        rows.append(row)
        if callback is not None:
            callback(row)
        return parts["loss"]

    if lbfgs is not None:
        # One step() runs every iteration; evaluations during iteration k are its line search's trials.
        lbfgs.step(evaluate)
        # The line search may end on a point other than its last trial: evaluate what is returned.
        evaluate(backward=False)
    else:
        adam = torch.optim.Adam([z], lr=lr) if iterations else None
        for iteration in range(iterations + 1):
            evaluate(backward=iteration < iterations)
            if iteration < iterations:
                adam.step()
    return torch.sigmoid(z).detach(), rows
