"""The guard a torch.jit.trace of the reference engine carries (:func:`unrolled_steps`), as a torch custom op.

No ``from __future__ import annotations``: torch.library.custom_op reads the schema from the annotations, and
torch 2.4's reader takes evaluated types, not strings.
"""

import torch
from torch import Tensor


@torch.library.custom_op("lstmkit::unrolled_steps", mutates_args=())
def unrolled_steps(x: Tensor, steps: int) -> Tensor:
    """x (a copy), when it has ``steps`` steps; else raises. torch.jit.trace records the loop below unrolled, for the
    traced input's number of steps only: without this op in the trace, a traced module called with more steps would
    silently return that many (T=5 traced, T=9 called: 5 steps out). The other engines run a layer as one op and
    trace for every length."""
    if x.shape[0] != steps:
        raise RuntimeError(f"lstmkit: this module was traced by torch.jit.trace at T={steps} steps on the reference "
                           f"engine, whose per-step loop the trace unrolled, and was called with T={x.shape[0]}. "
                           "Trace it again at this length, or run it on an engine with one op per layer "
                           "(backend='auto' or 'fused'; the reference engine serves custom cells and traces with "
                           "gradients), or use torch.export or torch.compile, which check the length")
    return x.clone()


@unrolled_steps.register_fake
def _(x, steps):
    return torch.empty_like(x)


unrolled_steps.register_autograd(lambda ctx, grad: (grad, None), setup_context=lambda ctx, inputs, output: None)
