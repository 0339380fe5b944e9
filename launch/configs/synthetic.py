"""Training on the embedded synthetic dataset, with presets.

Use as ``--config=launch/configs/synthetic.py:<preset>``:
  cpu        the shipped model: a narrow ResNet-18 at 64 px, trained in under an hour on a
             2-core CPU (BUILD.md has its learning curve);
  cpu_small  a narrower net at 64 px, 2000 steps: trains on a 2-core CPU in minutes;
  tpu        paper scale: ResNet-50 at 256 px, batch 256, bfloat16 compute;
  (none)     the defaults of ``default.py`` on the synthetic set.
"""

from launch.configs import default


def _cpu_small(c):
    c.model.width = 16
    c.model.head_width = 32
    c.model.hidden = 128
    c.model.conv_width = 32
    c.data.image_size = 64
    c.loss.silhouette_size = 32
    # Render only the last fE3D iteration (the rasterizer dominates a CPU step); the gate
    # opens on the 3D loss or, at the latest, 300 steps into the joint stage.
    c.loss.silhouette_start_step = 1200
    c.loss.silhouette_last_only = True
    c.optim.learning_rate = 2e-3
    c.optim.warmup_steps = 50
    c.train.global_batch_size = 16
    c.train.num_steps = 2000
    c.train.e2d_steps = 600
    c.train.e3d_steps = 300
    c.train.log_every = 50
    c.train.eval_every = 500
    c.train.eval_examples = 32
    c.checkpoint.every = 500


def _cpu(c):
    _cpu_small(c)
    c.model.width = 24
    c.model.head_width = 48
    c.model.hidden = 256
    c.model.conv_width = 48
    # Free finger twists barely move keypoints; a firmer prior keeps the articulation anatomical.
    c.loss.pose_prior = 0.1
    c.loss.silhouette_start_step = 11_000  # deadline: 2,000 steps into the joint stage
    c.optim.learning_rate = 2e-3
    c.optim.warmup_steps = 200
    c.train.global_batch_size = 32
    c.train.num_steps = 14_000
    c.train.e2d_steps = 7000
    c.train.e3d_steps = 2000
    c.train.log_every = 100
    c.train.eval_every = 1000
    c.train.eval_examples = 512
    c.checkpoint.every = 1000


def _tpu(c):
    c.model.depth = 50
    c.model.width = 64
    c.model.head_width = 256
    c.model.hidden = 1024
    c.model.conv_width = 256
    c.model.dtype = "bfloat16"
    c.data.image_size = 256
    c.data.num_workers = 8
    c.loss.silhouette_size = 128
    c.optim.learning_rate = 1e-3
    c.train.global_batch_size = 256
    c.train.num_steps = 200_000
    c.train.e2d_steps = 20_000
    c.train.e3d_steps = 20_000
    c.loss.silhouette_start_step = 50_000  # deadline: 10,000 steps into the joint stage
    c.train.eval_examples = 1024
    c.checkpoint.every = 2000


_PRESETS = {"cpu": _cpu, "cpu_small": _cpu_small, "tpu": _tpu}


def get_config(preset: str = ""):
    """Return the synthetic-data config, with an optional preset applied."""
    c = default.get_config()
    c.data.name = "synthetic"
    if preset:
        if preset not in _PRESETS:
            raise ValueError(f"unknown preset {preset!r} in {__file__}: expected one of {_PRESETS}")
        c.lock()
        _PRESETS[preset](c)
        c.unlock()
    return c
