"""ResNet backbones (10/18/34/50) returning the feature pyramid.

Layout: images NHWC, float in [0, 1] (normalised inside with ImageNet statistics). The backbone
returns one feature map per stage at strides 4, 8, 16 and 32 of the input. Parameters are float32;
``dtype`` sets the compute dtype (``jnp.bfloat16`` on TPU). Batch normalisation statistics live in
the ``batch_stats`` collection; under ``jax.jit`` with a batch sharded over devices the statistics
are those of the global batch, so the result does not depend on the device count.
"""

from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

# (blocks per stage, bottleneck?) for each supported depth.
RESNET_SPECS = {
    10: ((1, 1, 1, 1), False),  # for tests and tiny CPU runs
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
}
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or projected) shortcut."""

    features: int
    strides: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        conv = partial(nn.Conv, use_bias=False, dtype=self.dtype)
        norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, dtype=self.dtype)
        y = conv(self.features, (3, 3), strides=self.strides)(x)
        y = nn.relu(norm()(y))
        y = conv(self.features, (3, 3))(y)
        y = norm(scale_init=nn.initializers.zeros)(y)
        if x.shape[-1] != self.features or self.strides != 1:
            x = conv(self.features, (1, 1), strides=self.strides, name="proj")(x)
            x = norm(name="proj_norm")(x)
        return nn.relu(x + y)


class BottleneckBlock(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a shortcut."""

    features: int
    strides: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        conv = partial(nn.Conv, use_bias=False, dtype=self.dtype)
        norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, dtype=self.dtype)
        y = nn.relu(norm()(conv(self.features, (1, 1))(x)))
        y = nn.relu(norm()(conv(self.features, (3, 3), strides=self.strides)(y)))
        y = conv(self.features * 4, (1, 1))(y)
        y = norm(scale_init=nn.initializers.zeros)(y)
        if x.shape[-1] != self.features * 4 or self.strides != 1:
            x = conv(self.features * 4, (1, 1), strides=self.strides, name="proj")(x)
            x = norm(name="proj_norm")(x)
        return nn.relu(x + y)


class ResNet(nn.Module):
    """A ResNet feature extractor.

    Attributes:
      depth: 10, 18, 34 or 50.
      width: channels of the first stage (64 in the standard nets); stage i has width * 2**i
        (times 4 for the bottleneck nets).
      dtype: compute dtype.
    """

    depth: int = 18
    width: int = 64
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, *, train: bool) -> Sequence[jnp.ndarray]:
        """Return the stage outputs.

        Args:
          images: [B, H, W, 3] RGB in [0, 1]; H and W multiples of 32.
          train: batch statistics (True) or running averages (False) in batch norm.

        Returns:
          A list of 4 feature maps [B, H / s, W / s, C_s] for s = 4, 8, 16, 32.
        """
        if self.depth not in RESNET_SPECS:
            raise ValueError(f"ResNet depth={self.depth}: expected one of {sorted(RESNET_SPECS)}")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images: expected [B, H, W, 3], got shape {images.shape}")
        if images.shape[1] % 32 or images.shape[2] % 32:
            raise ValueError(f"images: H and W must be multiples of 32, got {images.shape[1:3]}")
        blocks, bottleneck = RESNET_SPECS[self.depth]
        block_cls = BottleneckBlock if bottleneck else BasicBlock
        x = (images - jnp.asarray(_MEAN)) / jnp.asarray(_STD)
        x = x.astype(self.dtype)
        x = nn.Conv(self.width, (7, 7), strides=2, use_bias=False, dtype=self.dtype, name="stem")(x)
        x = nn.BatchNorm(
            use_running_average=not train, momentum=0.9, dtype=self.dtype, name="stem_norm"
        )(x)
        x = nn.max_pool(nn.relu(x), (3, 3), strides=(2, 2), padding="SAME")
        outputs = []
        for i, num_blocks in enumerate(blocks):
            for j in range(num_blocks):
                strides = 2 if (i > 0 and j == 0) else 1
                x = block_cls(self.width * 2**i, strides=strides, dtype=self.dtype)(x, train=train)
            outputs.append(x)
        return outputs
