"""hand_jax: dense 3D hand pose and shape estimation via neural rendering, in JAX."""

__version__ = "0.1.0"
