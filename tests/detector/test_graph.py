"""The graph executor's ops against plain numpy loops, and the converted-model reader's errors."""

import numpy as np
import pytest

from hand_jax.detector import convert, graph
from hand_jax.detector.graph import Graph, GraphError, Op


def _op(kind, inputs, **options):
    return Op(kind, tuple(inputs), "y", tuple(sorted(options.items())))


def _run(op, x, weights=None):
    g = Graph("x", x.shape[1:], (op,), (("out", "y"),))
    graph.check_graph(g, weights or {})
    return np.asarray(graph.run_graph(g, weights or {}, x)["out"])


def _resize_reference(x, size, half):
    """TFLite's resize_bilinear, one output pixel at a time."""
    b, h, w, c = x.shape
    out = np.zeros((b, size[0], size[1], c))
    for i in range(size[0]):
        for j in range(size[1]):
            sy = (i + 0.5) * h / size[0] - 0.5 if half else i * h / size[0]
            sx = (j + 0.5) * w / size[1] - 0.5 if half else j * w / size[1]
            y0, x0 = int(np.floor(sy)), int(np.floor(sx))
            fy, fx = sy - y0, sx - x0
            ya, yb = min(max(y0, 0), h - 1), min(max(y0 + 1, 0), h - 1)
            xa, xb = min(max(x0, 0), w - 1), min(max(x0 + 1, 0), w - 1)
            top = x[:, ya, xa] * (1 - fx) + x[:, ya, xb] * fx
            bottom = x[:, yb, xa] * (1 - fx) + x[:, yb, xb] * fx
            out[:, i, j] = top * (1 - fy) + bottom * fy
    return out


@pytest.mark.parametrize("half", [True, False])
def test_resize_bilinear_equals_tflite_rule(half):
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 2)).astype(np.float32)
    op = _op("RESIZE_BILINEAR", ["x"], size=(7, 10), align_corners=False, half_pixel_centers=half)
    np.testing.assert_allclose(_run(op, x), _resize_reference(x, (7, 10), half), atol=1e-5)


def _conv_reference(x, w, b, stride, act):
    """TensorFlow SAME padding (the odd pixel after) and an OHWI kernel, as loops."""
    _, h, wd, _ = x.shape
    o, kh, kw, _ = w.shape
    oh, ow = -(-h // stride), -(-wd // stride)
    ph = max((oh - 1) * stride + kh - h, 0)
    pw = max((ow - 1) * stride + kw - wd, 0)
    xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = np.zeros((x.shape[0], oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, i, j] = np.einsum("bhwc,ohwc->bo", patch, w) + b
    return np.clip(out, 0, 6) if act == "RELU6" else out


@pytest.mark.parametrize("stride,kernel", [(1, 3), (2, 3), (1, 1), (2, 1)])
def test_conv_same_padding_and_relu6_equal_loops(stride, kernel):
    rng = np.random.default_rng(stride)
    x = rng.normal(size=(2, 6, 7, 3)).astype(np.float32)
    w = rng.normal(size=(4, kernel, kernel, 3)).astype(np.float16)
    b = rng.normal(size=4).astype(np.float16)
    options = dict(stride_h=stride, stride_w=stride, dilation_h=1, dilation_w=1, padding="SAME")
    op = _op("CONV_2D", ["x", "w", "b"], activation="RELU6", **options)
    got = _run(op, x, {"w": w, "b": b})
    ref = _conv_reference(x, w.astype(np.float64), b.astype(np.float64), stride, "RELU6")
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_depthwise_equals_per_channel_loops():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 5, 5, 3)).astype(np.float32)
    w = rng.normal(size=(1, 3, 3, 3)).astype(np.float32)
    b = np.zeros(3, np.float32)
    options = dict(stride_h=2, stride_w=2, dilation_h=1, dilation_w=1, padding="SAME")
    got = _run(_op("DEPTHWISE_CONV_2D", ["x", "w", "b"], activation="NONE", **options), x,
               {"w": w, "b": b})  # fmt: skip
    for c in range(3):  # each channel is its own single-filter convolution
        ref = _conv_reference(x[..., c : c + 1], w[..., c][..., None], 0.0, 2, "NONE")
        np.testing.assert_allclose(got[..., c], ref[..., 0], atol=1e-5)


def test_prelu_pad_and_max_pool_equal_numpy():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1, 4, 4, 2)).astype(np.float32)
    alpha = np.array([[[0.1, 0.3]]], np.float32)
    np.testing.assert_allclose(
        _run(_op("PRELU", ["x", "a"]), x, {"a": alpha}), np.where(x >= 0, x, x * alpha), atol=0
    )
    pads = ((0, 0), (0, 0), (0, 0), (0, 2))
    np.testing.assert_array_equal(_run(_op("PAD", ["x"], paddings=pads), x), np.pad(x, pads))
    pool = _op("MAX_POOL_2D", ["x"], stride_h=2, stride_w=2, filter_h=2, filter_w=2,
               padding="VALID", activation="NONE")  # fmt: skip
    np.testing.assert_array_equal(_run(pool, x), x.reshape(1, 2, 2, 2, 2, 2).max(axis=(2, 4)))


def test_check_graph_names_what_it_cannot_run():
    g = Graph("x", (4, 4, 3), (_op("SOFTMAX", ["x"]),), (("out", "y"),))
    with pytest.raises(GraphError, match="SOFTMAX"):
        graph.check_graph(g, {})
    g = Graph("x", (4, 4, 3), (_op("ADD", ["x", "z"], activation="NONE"),), (("out", "y"),))
    with pytest.raises(GraphError, match="'z'"):
        graph.check_graph(g, {})
    g = Graph("x", (4, 4, 3), (_op("ADD", ["x", "x"], activation="TANH"),), (("out", "y"),))
    with pytest.raises(GraphError, match="TANH"):
        graph.check_graph(g, {})


def _model(tmp_path, weights=None):
    g = Graph("x", (1, 1, 2), (_op("PRELU", ["x", "a"]),), (("out", "y"),))
    path = str(tmp_path / "m.npz")
    convert.write_model(path, g, weights or {"a": np.array([0.5, 0.25], np.float16)})
    return path, g


def test_model_round_trip_and_reader_errors(tmp_path):
    path, g = _model(tmp_path)
    read, weights = convert.read_model(path)
    assert read == g and weights["a"].dtype == np.float16
    bad, _ = _model(tmp_path, {"a": np.array([np.inf, 0.0], np.float16)})
    with pytest.raises(GraphError, match="non-finite"):
        convert.read_model(bad)
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(GraphError, match="no 'graph'"):
        convert.read_model(str(tmp_path / "plain.npz"))
    np.savez(tmp_path / "junk.npz", graph=np.frombuffer(b"{not json", np.uint8))
    with pytest.raises(GraphError, match="not a converted model graph"):
        convert.read_model(str(tmp_path / "junk.npz"))


def test_reader_checks_weight_shapes_against_the_graph(tmp_path):
    path, g = _model(tmp_path)
    text = convert.graph_to_json(g, {"a": np.zeros(3, np.float16)})  # declares 3 values
    arrays = {"graph": np.frombuffer(text.encode(), np.uint8), "a": np.zeros(2, np.float16)}
    np.savez(tmp_path / "forged.npz", **arrays)
    with pytest.raises(GraphError, match="forged.npz"):
        convert.read_model(str(tmp_path / "forged.npz"))


@pytest.mark.parametrize(
    "padding,stride,dilation", [("VALID", 1, 2), ("SAME", 2, 2), ("VALID", 2, 1)]
)
def test_depthwise_equals_a_grouped_convolution(padding, stride, dilation):
    import jax

    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 9, 8, 4)).astype(np.float32)
    w = rng.normal(size=(1, 3, 3, 4)).astype(np.float32)
    options = dict(stride_h=stride, stride_w=stride, dilation_h=dilation, dilation_w=dilation)
    op = _op("DEPTHWISE_CONV_2D", ["x", "w"], activation="NONE", padding=padding, **options)
    ref = jax.lax.conv_general_dilated(
        x, w[0][:, :, None, :], (stride, stride), padding, rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=4,
    )  # fmt: skip
    np.testing.assert_allclose(_run(op, x, {"w": w}), np.asarray(ref), atol=1e-5)


def test_chunked_run_equals_one_batch():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(5, 4, 4, 2)).astype(np.float32)
    options = dict(stride_h=1, stride_w=1, dilation_h=1, dilation_w=1, padding="SAME")
    ops = (
        Op(
            "CONV_2D",
            ("x", "w", "b"),
            "y",
            tuple(sorted(dict(activation="RELU", **options).items())),
        ),
        Op("MEAN", ("y",), "z", (("axes", (1, 2)), ("keep_dims", False))),
    )
    g = Graph("x", (4, 4, 2), ops, (("out", "z"),))
    weights = {"w": rng.normal(size=(3, 1, 1, 2)).astype(np.float32), "b": np.ones(3, np.float32)}
    whole = graph.run_graph(g, weights, x)["out"]
    for micro in (1, 2, 5, None):  # 2 leaves a remainder of one image
        part = graph.run_graph_chunked(g, weights, x, micro_batch=micro)["out"]
        np.testing.assert_allclose(np.asarray(part), np.asarray(whole), atol=1e-5)
