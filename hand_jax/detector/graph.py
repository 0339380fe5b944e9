"""A TFLite graph of float ops, run in jax.numpy: the executor of the ported MediaPipe models.

A ``Graph`` is the op list of a converted TFLite model (``hand_jax.detector.convert``): each
``Op`` reads named tensors (the activations of earlier ops, the graph input, or weights) and
writes one. Layout is TFLite's: activations NHWC float32, convolution kernels OHWI, depthwise
kernels [1, kh, kw, C], fully connected weights [out, in]. The graph is static (Python data,
hashable, so it can be a ``jit`` static argument); the weights are a dict of arrays.

Only the ops the hand models use are supported; ``check_graph`` refuses anything else, so a
foreign graph fails at load with the op named instead of computing something else.

Padding follows TensorFlow's SAME rule (the extra pixel of an odd total goes after), which is
``lax``'s ``"SAME"``. RESIZE_BILINEAR supports half-pixel centres (the hand models' setting)
and the legacy corner-aligned-off mode, with TFLite's clamping at the borders.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["OPS", "Graph", "GraphError", "Op", "check_graph", "run_graph", "run_graph_chunked"]

ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6")


class GraphError(ValueError):
    """A graph or its weights are not what the executor runs."""


class Op(NamedTuple):
    """One op: ``kind`` (an ``OPS`` key), tensor names in and out, options as sorted pairs."""

    kind: str
    inputs: tuple[str, ...]
    output: str
    options: tuple[tuple[str, object], ...] = ()

    def option(self, name: str):
        return dict(self.options)[name]


class Graph(NamedTuple):
    """A converted model: its input tensor and shape [H, W, C], ops in order, named outputs."""

    input: str
    input_shape: tuple[int, int, int]
    ops: tuple[Op, ...]
    outputs: tuple[tuple[str, str], ...]  # (model output name, tensor name)


def _activation(x, name: str):
    if name == "NONE":
        return x
    if name == "RELU":
        return jax.nn.relu(x)
    if name == "RELU6":
        return jnp.clip(x, 0.0, 6.0)
    return jnp.clip(x, -1.0, 1.0)


def _conv(op, x, w, b=None):
    if w.shape[1:3] == (1, 1) and op.option("stride_h") == op.option("stride_w") == 1:
        y = jnp.einsum("bhwc,oc->bhwo", x, w[:, 0, 0, :].astype(x.dtype))  # 1.4x lax.conv on CPU
        return _activation(y if b is None else y + b.astype(x.dtype), op.option("activation"))
    stride = (op.option("stride_h"), op.option("stride_w"))
    dilation = (op.option("dilation_h"), op.option("dilation_w"))
    y = lax.conv_general_dilated(
        x, w.astype(x.dtype), stride, op.option("padding"), rhs_dilation=dilation,
        dimension_numbers=("NHWC", "OHWI", "NHWC"),
    )  # fmt: skip
    return _activation(y if b is None else y + b.astype(x.dtype), op.option("activation"))


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis: (before, after), the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _depthwise(op, x, w, b=None):
    """Depthwise convolution as a sum of kh x kw shifted, strided slices times per-channel
    weights: XLA fuses it into one loop, 6x faster on CPU than a grouped convolution."""
    _, kh, kw, _ = w.shape
    stride = (op.option("stride_h"), op.option("stride_w"))
    dilation = (op.option("dilation_h"), op.option("dilation_w"))
    if op.option("padding") == "SAME":
        pads = [_same_padding(x.shape[1 + a], (kh, kw)[a], stride[a], dilation[a]) for a in (0, 1)]
        x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    out = [(x.shape[1 + a] - ((kh, kw)[a] - 1) * dilation[a] - 1) // stride[a] + 1 for a in (0, 1)]
    w = w[0].astype(x.dtype)  # [kh, kw, C]
    y = 0.0
    for i in range(kh):
        for j in range(kw):
            start = (0, i * dilation[0], j * dilation[1], 0)
            limit = (x.shape[0], start[1] + (out[0] - 1) * stride[0] + 1,
                     start[2] + (out[1] - 1) * stride[1] + 1, x.shape[3])  # fmt: skip
            y = y + lax.slice(x, start, limit, (1, *stride, 1)) * w[i, j]
    return _activation(y if b is None else y + b.astype(x.dtype), op.option("activation"))


def _max_pool(op, x):
    window = (1, op.option("filter_h"), op.option("filter_w"), 1)
    strides = (1, op.option("stride_h"), op.option("stride_w"), 1)
    y = lax.reduce_window(x, -jnp.inf, lax.max, window, strides, op.option("padding"))
    return _activation(y, op.option("activation"))


def _resize_axis(x, axis: int, size: int, half_pixel: bool):
    """Linear resampling along one axis with TFLite's source-coordinate rule and clamping."""
    n = x.shape[axis]
    scale = n / size
    out = np.arange(size, dtype=np.float64)
    src = (out + 0.5) * scale - 0.5 if half_pixel else out * scale
    lo = np.floor(src)
    frac = (src - lo).astype(np.float32)
    i0 = np.clip(lo, 0, n - 1).astype(np.int32)
    i1 = np.clip(lo + 1, 0, n - 1).astype(np.int32)
    shape = [1] * x.ndim
    shape[axis] = size
    frac = jnp.asarray(frac.reshape(shape), x.dtype)
    a, b = jnp.take(x, i0, axis=axis), jnp.take(x, i1, axis=axis)
    return a + (b - a) * frac


def _resize_bilinear(op, x):
    if op.option("align_corners"):
        raise GraphError("RESIZE_BILINEAR with align_corners is not supported")
    height, width = op.option("size")
    half = op.option("half_pixel_centers")
    return _resize_axis(_resize_axis(x, 1, height, half), 2, width, half)


def _reshape(op, x):
    shape = tuple(op.option("shape"))
    return x.reshape((x.shape[0],) + shape[1:])  # the converted batch of 1 becomes any batch


def _mean(op, x):
    return jnp.mean(x, axis=tuple(op.option("axes")), keepdims=op.option("keep_dims"))


def _fully_connected(op, x, w, b=None):
    y = x.reshape(x.shape[0], -1) @ w.astype(x.dtype).T
    return _activation(y if b is None else y + b.astype(x.dtype), op.option("activation"))


def _pad(op, x):
    return jnp.pad(x, [tuple(p) for p in op.option("paddings")])


def _prelu(op, x, alpha):
    return jnp.where(x >= 0, x, x * alpha.astype(x.dtype))


OPS = {
    "ADD": lambda op, a, b: _activation(a + b, op.option("activation")),
    "CONCATENATION": lambda op, *xs: _activation(
        jnp.concatenate(xs, axis=op.option("axis")), op.option("activation")
    ),
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "LOGISTIC": lambda op, x: jax.nn.sigmoid(x),
    "MAX_POOL_2D": _max_pool,
    "MEAN": _mean,
    "PAD": _pad,
    "PRELU": _prelu,
    "RESHAPE": _reshape,
    "RESIZE_BILINEAR": _resize_bilinear,
}

_OPTIONS = {  # the options each kind must carry
    "ADD": {"activation"},
    "CONCATENATION": {"axis", "activation"},
    "CONV_2D": {"stride_h", "stride_w", "dilation_h", "dilation_w", "padding", "activation"},
    "DEPTHWISE_CONV_2D": {
        "stride_h",
        "stride_w",
        "dilation_h",
        "dilation_w",
        "padding",
        "activation",
    },  # fmt: skip
    "FULLY_CONNECTED": {"activation"},
    "LOGISTIC": set(),
    "MAX_POOL_2D": {"stride_h", "stride_w", "filter_h", "filter_w", "padding", "activation"},
    "MEAN": {"axes", "keep_dims"},
    "PAD": {"paddings"},
    "PRELU": set(),
    "RESHAPE": {"shape"},
    "RESIZE_BILINEAR": {"size", "align_corners", "half_pixel_centers"},
}


def _check_op(op: Op, known: set, weights: dict, where: str) -> None:
    if op.kind not in OPS:
        raise GraphError(f"{where}: op {op.kind!r} is not supported (expected one of {list(OPS)})")
    missing = _OPTIONS[op.kind] - {k for k, _ in op.options}
    if missing:
        raise GraphError(f"{where}: {op.kind} lacks options {sorted(missing)}")
    for name in op.inputs:
        if name not in known and name not in weights:
            raise GraphError(f"{where}: {op.kind} reads {name!r}, which nothing wrote")
    options = dict(op.options)
    if options.get("activation", "NONE") not in ACTIVATIONS:
        raise GraphError(f"{where}: activation {options['activation']!r} is not supported")
    if options.get("padding", "SAME") not in ("SAME", "VALID"):
        raise GraphError(f"{where}: padding {options['padding']!r} is not SAME or VALID")


def check_graph(graph: Graph, weights: dict, *, where: str = "graph") -> None:
    """Raise ``GraphError`` naming the op unless every op is supported and wired.

    Args:
      graph: the ``Graph``.
      weights: name -> array, the tensors no op writes.
      where: the file the graph came from, for the messages.
    """
    known = {graph.input}
    for i, op in enumerate(graph.ops):
        _check_op(op, known, weights, f"{where}: op {i}")
        known.add(op.output)
    for name, tensor in graph.outputs:
        if tensor not in known:
            raise GraphError(f"{where}: output {name!r} reads {tensor!r}, which nothing wrote")
    if len(graph.input_shape) != 3 or not all(
        isinstance(n, int) and 0 < n <= 4096 for n in graph.input_shape
    ):
        raise GraphError(f"{where}: input shape {graph.input_shape} is not [H, W, C] of sizes")
    if sum(math.prod(np.shape(w)) for w in weights.values()) > 64 * 2**20:
        raise GraphError(f"{where}: more than 64 M weights; not a hand model")


def run_graph(graph: Graph, weights: dict, images):
    """Run the graph on a batch.

    Args:
      graph: the ``Graph`` (static).
      weights: name -> array (any float dtype; computed in the images' dtype).
      images: [B, H, W, C] float, the model's input range.

    Returns:
      dict model output name -> [B, ...] array.
    """
    tensors = dict(weights)
    tensors[graph.input] = images
    for op in graph.ops:
        tensors[op.output] = OPS[op.kind](op, *(tensors[name] for name in op.inputs))
    return {name: tensors[tensor] for name, tensor in graph.outputs}


def default_micro_batch() -> int | None:
    """Images per step of ``run_graph_chunked`` on this backend: 2 on CPU (measured: 127 against
    99 images/s for the landmark network as one batch of 16, the activations of a few images
    staying in cache), None elsewhere (one batch: accelerators want large batches)."""
    return 2 if jax.default_backend() == "cpu" else None


def run_graph_chunked(graph: Graph, weights: dict, images, *, micro_batch: int | None = None):
    """``run_graph`` over the batch in steps of ``micro_batch`` images (``jax.lax.map``).

    Args:
      graph, weights, images: as for ``run_graph``.
      micro_batch: images per step (None: the whole batch at once).

    Returns:
      dict model output name -> [B, ...] array, equal to ``run_graph``'s.
    """
    if micro_batch is None or micro_batch >= images.shape[0]:
        return run_graph(graph, weights, images)

    def one(image):
        return {k: v[0] for k, v in run_graph(graph, weights, image[None]).items()}

    return jax.lax.map(one, images, batch_size=micro_batch)
