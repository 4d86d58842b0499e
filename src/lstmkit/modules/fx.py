"""torch.fx sees every lstmkit module as a leaf, as it sees torch.nn's recurrent modules.

fx's default ``Tracer.is_leaf_module`` keeps modules from ``torch.nn`` whole (one ``call_module`` node) and traces
through every other module's ``forward``, with :class:`torch.fx.Proxy` objects in place of tensors. A recurrent
module's forward cannot be traced that way: its argument checks, input forms and engine choice read the values
and shapes of its inputs. So a forward that receives a Proxy records itself as one ``call_module`` node, which is
what ``is_leaf_module`` would have produced, and the traced graph calls the module on real tensors.

The alternative, a Tracer subclass whose ``is_leaf_module`` knows lstmkit, would make every user of
``torch.fx.symbolic_trace`` (and of the libraries built on it) pass a custom tracer.
"""

from __future__ import annotations

from torch import fx, nn

from ..errors import InputTypeError


def is_proxy(*args) -> bool:
    """Whether torch.fx is tracing this call: any argument (or element of a tuple argument) is a Proxy."""
    for a in args:
        if isinstance(a, fx.Proxy) or (isinstance(a, tuple | list) and any(isinstance(b, fx.Proxy) for b in a)):
            return True
    return False


def leaf_call(module: nn.Module, *args, interventions=None):
    """Records ``module(*args)`` as one ``call_module`` node of the graph being traced and returns its Proxy.

    ``interventions`` (the forward's keyword) cannot be recorded in the graph: they are Python objects, not values
    fx can hold in a node. Passed, they are refused rather than dropped; ``with module.intervene(...)`` around the
    traced graph's call applies them, since the graph calls the module itself."""
    proxy = next(p for a in args for p in (a if isinstance(a, tuple | list) else (a,)) if isinstance(p, fx.Proxy))
    tracer = proxy.tracer
    if not isinstance(tracer, fx.Tracer):
        raise InputTypeError(f"{type(module).__name__} met a Proxy of {type(tracer).__name__}, which is not a "
                             "torch.fx.Tracer: it can record lstmkit modules only as torch.fx's tracer does, as leaves")
    if module is tracer.root:
        raise InputTypeError(f"torch.fx traces {type(module).__name__} as a leaf (as torch.nn's recurrent modules); "
                             "symbolic_trace a model that holds it, not the module itself")
    if interventions is not None:
        raise InputTypeError(f"torch.fx cannot record interventions= in the call of {type(module).__name__} (they "
                             "are Python objects, not graph values); trace without them and run the traced graph "
                             "inside `with module.intervene(...)`, which reaches the module the graph calls")
    return tracer.create_proxy("call_module", tracer.path_of_module(module), args, {})
