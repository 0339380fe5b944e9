"""Self-data augmentation: fitted hands re-rendered from new viewpoints and shapes.

``fit`` fits h to labelled (or unlabelled) crops with the estimator and refinement; ``texture``
colours the fitted mesh from its image; ``views`` renders new views with exact labels; ``job``
runs the whole thing over a split and writes a dataset in the synthetic format
(``launch/augment.py``).
"""

from hand_jax.augment.fit import FitConfig
from hand_jax.augment.job import Request, augment_dataset
from hand_jax.augment.views import ViewConfig

__all__ = ["FitConfig", "Request", "ViewConfig", "augment_dataset"]
