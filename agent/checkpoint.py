"""An MXNet checkpoint's parameters: what mx.nd.load gives for a .params file, as the (arg, aux) dicts a bound
graph takes. Its own module because the FP32 loader (agent.predict), the INT8 cache (agent.int8_cache), the bench
and the tests all read checkpoints, and none of them should import another for it. Valid Python 2.7 and 3.6+.
"""
from __future__ import print_function, division, absolute_import


def split_params(saved, symbol):
    """(arg_params, aux_params) from mx.nd.load output, with or without arg:/aux: prefixes."""
    aux_names = set(symbol.list_auxiliary_states())
    arg_params, aux_params = {}, {}
    for key, value in saved.items():
        kind, _, name = key.partition(":") if ":" in key else ("", "", key)
        if kind == "aux" or (not kind and name in aux_names):
            aux_params[name] = value
        else:
            arg_params[name] = value
    return arg_params, aux_params
