"""The JAX port of MediaPipe Hands' networks equals the LiteRT interpreter on the same inputs.

The reference is Google's own TFLite runtime (``ai-edge-litert``) running the committed
``.tflite`` files; the port runs the converted npz. Inputs: the shipped rendered samples and
procedural images (noise, gradients, stripes), in the networks' [0, 1] range.
"""

import functools
import glob
import os

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from hand_jax.detector import convert, crops, graph, shipped

litert = pytest.importorskip("ai_edge_litert.interpreter")

SAMPLES = sorted(glob.glob(os.path.join(shipped.MODEL_DIR, "..", "..", "samples", "*.png")))


def _procedural(size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    gradient = np.stack([x, y, 1 - x * y], -1)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * np.stack([6 * x, 9 * y, 4 * (x + y)], -1))
    return [rng.uniform(0, 1, (size, size, 3)), gradient, stripes]


def _inputs(size: int) -> np.ndarray:
    rendered = []
    for path in SAMPLES[:3]:
        image = iio.imread(path)[..., :3]
        scale = image.shape[0] / size
        A = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])
        rendered.append(crops.warp_affine(image, A, size=size))
    return np.stack(rendered + _procedural(size)).astype(np.float32)


def _litert(name: str, images: np.ndarray) -> dict:
    interpreter = litert.Interpreter(
        model_path=os.path.join(shipped.MODEL_DIR, f"{name}_full.tflite")
    )
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    outputs = []
    for image in images:
        interpreter.set_tensor(index, image[None])
        interpreter.invoke()
        details = interpreter.get_output_details()
        outputs.append({d["name"]: interpreter.get_tensor(d["index"])[0] for d in details})
    return {k: np.stack([o[k] for o in outputs]) for k in outputs[0]}


@functools.cache
def _port(name: str, batch_size: int):
    g, weights = shipped.load_network(name)
    images = _inputs(g.input_shape[0])[:batch_size]
    out = jax.jit(functools.partial(graph.run_graph, g))(weights, images)
    return images, {k: np.asarray(v) for k, v in out.items()}


def test_landmark_network_equals_litert():
    images, port = _port("hand_landmark", 6)
    ref = _litert("hand_landmark", images)
    assert SAMPLES, "the shipped samples are missing"
    np.testing.assert_allclose(port["Identity"], ref["Identity"], atol=0.5)  # crop pixels
    np.testing.assert_allclose(port["Identity_3"], ref["Identity_3"], atol=1e-3)  # metres
    for score in ("Identity_1", "Identity_2"):  # presence, handedness (sigmoid outputs)
        np.testing.assert_allclose(port[score], ref[score], atol=1e-3)
    # The rendered hands are found; noise is not (the comparison saw both kinds of input).
    assert np.all(ref["Identity_1"][:3, 0] > 0.5) and np.all(ref["Identity_1"][3, 0] < 0.5)


def test_palm_network_equals_litert():
    images, port = _port("palm_detection", 6)
    ref = _litert("palm_detection", images)
    np.testing.assert_allclose(port["Identity"], ref["Identity"], atol=0.5)  # detector pixels
    sigmoid = lambda z: 1 / (1 + np.exp(-np.clip(z, -100, 100)))  # noqa: E731
    np.testing.assert_allclose(sigmoid(port["Identity_1"]), sigmoid(ref["Identity_1"]), atol=1e-3)
    assert sigmoid(ref["Identity_1"][:3]).max() > 0.5  # some anchor fires on the rendered hands


@pytest.mark.parametrize("name", list(shipped.NETWORKS))
def test_conversion_reproduces_the_committed_npz(tmp_path, name):
    committed = os.path.join(shipped.MODEL_DIR, f"{name}_full.npz")
    source = os.path.join(shipped.MODEL_DIR, f"{name}_full.tflite")
    with open(source, "rb") as f:
        g, weights = convert.from_tflite(f.read())
    convert.write_model(str(tmp_path / "m.npz"), g, weights)
    with open(committed, "rb") as a, open(tmp_path / "m.npz", "rb") as b:
        assert a.read() == b.read(), f"{committed} is not what the conversion writes"


def test_batch_equals_one_at_a_time():
    images, port = _port("hand_landmark", 6)
    g, weights = shipped.load_network("hand_landmark")
    one = jax.jit(functools.partial(graph.run_graph, g))(weights, images[4:5])
    np.testing.assert_allclose(one["Identity"][0], port["Identity"][4], atol=1e-3)
