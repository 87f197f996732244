"""Tiny ONNX models with the inputs and outputs of rembg's real model files, for tests.

rembg feeds its first input a ``1x3xSxS float32`` normalised photo (S = 320 for u2net, 1024 for
ISNet and BiRefNet) and reads channel 0 of its first output, ``1x1xSxS``: a probability for u2net
and ISNet, a logit for BiRefNet (rembg applies the sigmoid). u2net has seven side outputs.

The tiny net is a fixed, image-adaptive darkness detector: it sums the channels, rescales that sum
to 0..1 over the image (ReduceMin/ReduceMax) and calls pixels darker than the middle product. On a
dark product on a light backdrop it is a usable segmenter, which lets tests check the real session
code end to end (rembg's preprocessing, onnxruntime, rembg's resize back) against exact truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# session name -> (input name, input size, output names, whether the output is a logit)
LAYOUTS = {
    "u2net": ("input.1", 320, [f"d{i}" for i in range(7)], False),
    "u2netp": ("input.1", 320, [f"d{i}" for i in range(7)], False),
    "isnet-general-use": ("input_image", 1024, ["output"], False),
    "birefnet-general": ("input_image", 1024, ["output_image"], True),
    "birefnet-general-lite": ("input_image", 1024, ["output_image"], True),
}
SHARPNESS = 20.0


def tiny_rembg_model(name: str) -> bytes:
    """The serialised tiny model for rembg session ``name`` (see :data:`LAYOUTS`)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    input_name, size, outputs, logit = LAYOUTS[name]
    consts = [
        numpy_helper.from_array(np.array([1], np.int64), "channel_axis"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
        numpy_helper.from_array(np.array(0.5, np.float32), "middle"),
        numpy_helper.from_array(np.array(SHARPNESS, np.float32), "sharpness"),
    ]
    nodes = [
        helper.make_node("ReduceSum", [input_name, "channel_axis"], ["brightness"], keepdims=1),
        helper.make_node("ReduceMin", ["brightness"], ["darkest"], keepdims=1),
        helper.make_node("ReduceMax", ["brightness"], ["lightest"], keepdims=1),
        helper.make_node("Sub", ["brightness", "darkest"], ["above_darkest"]),
        helper.make_node("Sub", ["lightest", "darkest"], ["span"]),
        helper.make_node("Add", ["span", "eps"], ["span_safe"]),
        helper.make_node("Div", ["above_darkest", "span_safe"], ["lightness"]),
        helper.make_node("Sub", ["middle", "lightness"], ["darker_than_middle"]),
        helper.make_node("Mul", ["darker_than_middle", "sharpness"], ["logit"]),
    ]
    final = "logit"
    if not logit:
        nodes.append(helper.make_node("Sigmoid", ["logit"], ["probability"]))
        final = "probability"
    nodes += [helper.make_node("Identity", [final], [out]) for out in outputs]
    graph = helper.make_graph(
        nodes, f"tiny-{name}",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 1, size, size]) for out in outputs],
        initializer=consts,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime rembg supports
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_tiny_rembg_model(folder: Path, name: str, layout: str = "flat") -> Path:
    """Save the tiny model where rembg looks: ``folder/<name>.onnx`` (flat) or rembg's
    ``folder/models/<name>/<name>.onnx`` (nested)."""
    target = folder / f"{name}.onnx" if layout == "flat" else folder / "models" / name / f"{name}.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(tiny_rembg_model(name))
    return target
