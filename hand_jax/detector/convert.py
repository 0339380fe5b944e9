"""Convert a TFLite model of float ops into a ``Graph`` and its weights, and write/read them.

Conversion reads the flatbuffer with the pure-Python ``tflite`` package (needed only here, at
conversion time; the converted npz runs without it). Constant float16 tensors and their
DEQUANTIZE ops fold into weights stored as float16 (the conversion to float32 at run time is
exact); integer constants (reshape shapes, paddings, axes, resize sizes) become op options.

The npz holds ``graph`` (the graph as UTF-8 JSON in a uint8 array) and one member per weight,
named ``t<tensor index>``. ``write_model`` is deterministic (sorted members, fixed timestamps),
so converting the same ``.tflite`` twice gives the same bytes.
"""

import io
import json
import os
import tempfile
import zipfile

import numpy as np

from hand_jax import safe_npz
from hand_jax.detector.graph import Graph, GraphError, Op, check_graph

__all__ = ["from_tflite", "graph_from_json", "graph_to_json", "read_model", "write_model"]

_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATION = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
_DTYPES = {"float16": np.float16, "float32": np.float32}
MAX_GRAPH_BYTES = 1 << 20


def _builtin_names(tflite) -> dict:
    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def _options(tflite, op, cls):
    table = op.BuiltinOptions()
    options = getattr(tflite, cls)()
    if table is not None:
        options.Init(table.Bytes, table.Pos)
    return options


def _conv_options(o, kind: str) -> dict:
    out = {
        "stride_h": o.StrideH(), "stride_w": o.StrideW(), "padding": _PADDING[o.Padding()],
        "dilation_h": o.DilationHFactor(), "dilation_w": o.DilationWFactor(),
        "activation": _ACTIVATION[o.FusedActivationFunction()],
    }  # fmt: skip
    if kind == "DEPTHWISE_CONV_2D" and o.DepthMultiplier() not in (0, 1):
        raise GraphError(f"depth multiplier {o.DepthMultiplier()} is not supported")
    return out


def _op_options(tflite, kind: str, op, consts: list) -> dict:
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        cls = "Conv2DOptions" if kind == "CONV_2D" else "DepthwiseConv2DOptions"
        return _conv_options(_options(tflite, op, cls), kind)
    if kind == "MAX_POOL_2D":
        o = _options(tflite, op, "Pool2DOptions")
        return {
            "stride_h": o.StrideH(), "stride_w": o.StrideW(), "filter_h": o.FilterHeight(),
            "filter_w": o.FilterWidth(), "padding": _PADDING[o.Padding()],
            "activation": _ACTIVATION[o.FusedActivationFunction()],
        }  # fmt: skip
    if kind == "ADD":
        o = _options(tflite, op, "AddOptions")
        return {"activation": _ACTIVATION[o.FusedActivationFunction()]}
    if kind == "CONCATENATION":
        o = _options(tflite, op, "ConcatenationOptions")
        return {"axis": o.Axis(), "activation": _ACTIVATION[o.FusedActivationFunction()]}
    if kind == "FULLY_CONNECTED":
        o = _options(tflite, op, "FullyConnectedOptions")
        return {"activation": _ACTIVATION[o.FusedActivationFunction()]}
    if kind == "RESIZE_BILINEAR":
        o = _options(tflite, op, "ResizeBilinearOptions")
        return {
            "size": consts[0].tolist(), "align_corners": bool(o.AlignCorners()),
            "half_pixel_centers": bool(o.HalfPixelCenters()),
        }  # fmt: skip
    if kind == "MEAN":
        o = _options(tflite, op, "ReducerOptions")
        return {"axes": consts[0].tolist(), "keep_dims": bool(o.KeepDims())}
    if kind == "PAD":
        return {"paddings": consts[0].reshape(-1, 2).tolist()}
    if kind == "RESHAPE":
        return {"shape": consts[0].tolist()}
    return {}


def _frozen(value):
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def _tensor_array(tflite, model, tensor):
    data = model.Buffers(tensor.Buffer()).DataAsNumpy()
    if isinstance(data, int) or data.size == 0:
        return None
    dtype = {tflite.TensorType.FLOAT16: np.float16, tflite.TensorType.FLOAT32: np.float32,
             tflite.TensorType.INT32: np.int32}.get(tensor.Type())  # fmt: skip
    if dtype is None:
        raise GraphError(f"tensor {tensor.Name()!r}: type {tensor.Type()} is not supported")
    shape = tuple(int(n) for n in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    return np.frombuffer(data.tobytes(), dtype).reshape(shape)


def from_tflite(buffer: bytes):
    """Convert a TFLite flatbuffer (first subgraph) into ``(Graph, weights)``.

    Args:
      buffer: the ``.tflite`` file's bytes.

    Returns:
      ``Graph`` and dict ``t<index>`` -> float16/float32 numpy weight.

    Raises:
      GraphError: for an op, option or tensor type the executor does not run.
    """
    import tflite  # conversion-time only

    model = tflite.Model.GetRootAsModel(buffer, 0)
    sub, names = model.Subgraphs(0), _builtin_names(tflite)
    weights, ops = {}, []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        inputs = [int(j) for j in op.InputsAsNumpy() if j >= 0]
        out = int(op.OutputsAsNumpy()[0])
        consts = {j: _tensor_array(tflite, model, sub.Tensors(j)) for j in inputs}
        if kind == "DEQUANTIZE" and consts[inputs[0]] is not None:
            weights[f"t{out}"] = consts[inputs[0]]
            continue
        ints = [a for a in consts.values() if a is not None and a.dtype == np.int32]
        for j, a in consts.items():
            if a is not None and a.dtype != np.int32:
                weights[f"t{j}"] = a
        tensors = tuple(f"t{j}" for j in inputs if consts[j] is None or consts[j].dtype != np.int32)
        options = _op_options(tflite, kind, op, ints)
        options = tuple(sorted((k, _frozen(v)) for k, v in options.items()))
        ops.append(Op(kind, tensors, f"t{out}", options))
    (inp,) = [int(j) for j in sub.InputsAsNumpy()]
    shape = tuple(int(n) for n in sub.Tensors(inp).ShapeAsNumpy()[1:])
    outputs = tuple(
        (sub.Tensors(int(j)).Name().decode(), f"t{int(j)}") for j in sub.OutputsAsNumpy()
    )
    graph = Graph(f"t{inp}", shape, tuple(ops), outputs)
    check_graph(graph, weights, where="tflite")
    return graph, weights


def graph_to_json(graph: Graph, weights: dict) -> str:
    """The graph and its weights' dtypes and shapes as canonical JSON."""
    return json.dumps({
        "input": graph.input, "input_shape": list(graph.input_shape),
        "ops": [[op.kind, list(op.inputs), op.output, dict(op.options)] for op in graph.ops],
        "outputs": [list(pair) for pair in graph.outputs],
        "weights": {k: [str(w.dtype), list(w.shape)] for k, w in sorted(weights.items())},
    }, sort_keys=True, separators=(",", ":"))  # fmt: skip


def graph_from_json(text: str, *, where: str) -> tuple[Graph, dict]:
    """Parse ``graph_to_json``'s text: ``(Graph, {weight: (dtype, shape)})``; GraphError if bad."""
    try:
        d = json.loads(text)
        ops = tuple(
            Op(str(kind), tuple(map(str, ins)), str(out),
               tuple(sorted((str(k), _frozen(v)) for k, v in opts.items())))
            for kind, ins, out, opts in d["ops"]
        )  # fmt: skip
        graph = Graph(
            str(d["input"]), tuple(d["input_shape"]), ops,
            tuple((str(a), str(b)) for a, b in d["outputs"]),
        )  # fmt: skip
        specs = {
            str(k): (_DTYPES[dt], tuple(int(n) for n in s)) for k, (dt, s) in d["weights"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise GraphError(f"{where}: 'graph' is not a converted model graph ({err})") from err
    return graph, specs


def write_model(path: str, graph: Graph, weights: dict) -> None:
    """Write the graph and weights to an npz, deterministically and atomically."""
    members = {"graph": np.frombuffer(graph_to_json(graph, weights).encode(), np.uint8)}
    members.update(weights)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp.npz")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for key in sorted(members):
                data = io.BytesIO()
                np.lib.format.write_array(data, np.ascontiguousarray(members[key]))
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
                archive.writestr(info, data.getvalue())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_model(path: str) -> tuple[Graph, dict]:
    """Read ``write_model``'s npz: the graph is parsed and checked before any weight is read.

    Raises:
      GraphError: naming the file, for a graph that does not parse or check, or a weight whose
        dtype or shape differs from the graph's declaration.
    """
    head = safe_npz.read_npz(
        path, error=GraphError, what="a converted model",
        expected={"graph": (np.uint8, (None,))}, budget_bytes=MAX_GRAPH_BYTES,
    )  # fmt: skip
    if "graph" not in head:
        raise GraphError(f"{path}: has no 'graph' member; not a converted model")
    graph, specs = graph_from_json(head["graph"].tobytes().decode("utf-8", "replace"), where=path)
    weights = safe_npz.read_npz(path, error=GraphError, what="a converted model", expected=specs)
    missing = sorted(set(specs) - set(weights))
    if missing:
        raise GraphError(f"{path}: weights {missing[:3]} declared by the graph are missing")
    for key, w in weights.items():
        if not np.all(np.isfinite(w)):
            raise GraphError(f"{path}: weight {key!r} holds non-finite values")
    check_graph(graph, weights, where=path)
    return graph, weights
