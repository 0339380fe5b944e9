"""Evaluation: benchmark metrics, published numbers, tables, PCK plots and the evaluate job.

``metrics`` (pure numpy) is layer 4 and imports nothing heavy; ``published``, ``tables``,
``plots`` (matplotlib) and ``evaluate`` are layer 7. Import the submodule you need, e.g.
``from hand_jax.eval import metrics``.
"""
