"""Device meshes and shardings shared by training, estimation and refinement.

One 1D mesh over every device of every process with the axis ``data``: batch arrays are split
on their leading axis over it, everything else (parameters, step constants, the hand model) is
replicated. No pmap anywhere (``shared/STYLE.md``).
"""

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh() -> jax.sharding.Mesh:
    """A 1D mesh over every device of every process, axis ``data``."""
    return jax.make_mesh(
        (jax.device_count(),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,)
    )


def replicated(mesh, tree=None):
    """A replicated ``NamedSharding`` on ``mesh``, or a tree of them matching ``tree``."""
    sharding = NamedSharding(mesh, P())
    return sharding if tree is None else jax.tree.map(lambda _: sharding, tree)


def batch_sharding(mesh) -> NamedSharding:
    """The sharding of batch arrays: leading axis split over the ``data`` mesh axis."""
    return NamedSharding(mesh, P(DATA_AXIS))
