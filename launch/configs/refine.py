"""Test-time refinement config (``python -m launch.refine --config=launch/configs/refine.py``)."""

import ml_collections


def get_config():
    """Return the refinement config; every key is declared here."""
    c = ml_collections.ConfigDict()
    c.num_steps = 100  # Adam steps per example
    # Adam step; with ``precondition`` in normalised units (one unit moves the keypoints a few
    # pixels, hand_jax.refine.optimize), otherwise in raw parameters.
    c.learning_rate = 0.1
    c.precondition = True
    c.sigma = 1.0  # silhouette blur, pixels^2
    c.batch_size = 8  # examples per compiled call (the last batch is padded)
    c.num_animations = 2  # GIFs for the first examples
    c.weights = ml_collections.ConfigDict(
        {
            "keypoints": 1.0,  # confidence-weighted 2D reprojection
            "silhouette": 1.0,  # the paper's mu
            "shape": 1e-3,
            "pose": 1e-3,
            "proximity": 1e-3,
        }
    )
    # Synthetic self-check input (--input=synthetic): problems drawn as in the tests.
    c.synthetic = ml_collections.ConfigDict(
        {"num": 8, "image_size": 64, "pose_std": 0.3, "betas_std": 0.5, "cam_rel": 0.05}
    )
    c.seed = 0
    return c
