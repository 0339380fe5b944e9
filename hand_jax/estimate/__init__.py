"""Estimation: the network and test-time refinement on its own evidence (the paper's test time).

``core`` (the jit-compiled batch function ``make_estimate_fn`` and its ``Estimate``), ``photos``
(reading a user's images, crops, left hands), ``dataset`` (scoring a split with and without
refinement), ``job`` (the ``launch.estimate`` command: pictures, meshes, parameters), ``viz``
(its pictures).
"""

from hand_jax.estimate.core import (
    Estimate,
    Network,
    load_network,
    make_estimate_fn,
    network_evidence,
)

__all__ = ["Estimate", "Network", "load_network", "make_estimate_fn", "network_evidence"]
