"""ONNX export of a fitted torch model, int8 quantisation, and inference with onnxruntime.

`export_onnx` writes the trained net with its output head (and pixel scaling) as one ONNX
graph; `onnx_predict` runs it with onnxruntime on the same inputs `predict_output` takes,
for parity and speed checks; `quantize_onnx` makes an int8 (dynamic quantisation) copy.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from pipelines.models.torch_adapter import TorchModel


def export_onnx(model: TorchModel, path) -> Path:
    """Write the fitted model's graph (scaling -> net -> head) to `path`, batch size dynamic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = model.exportable()
    example = torch.as_tensor(model.onnx_inputs_like(2))
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript (not a dependency here); it still exports these nets exactly
        # (and the tracer's notes that shapes become constants: the batch axis stays dynamic)
        for category in (DeprecationWarning, FutureWarning, UserWarning, torch.jit.TracerWarning):
            warnings.simplefilter("ignore", category)
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            opset_version=17,
        )
    return path


def quantize_onnx(path, out=None) -> Path:
    """An int8 copy (dynamic quantisation of MatMul/Gemm weights) for faster CPU inference."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    out = Path(out) if out is not None else path.with_name(path.stem + ".int8.onnx")
    # Conv is left in float: ConvInteger kernels are missing or slow on many CPU builds
    quantize_dynamic(path, out, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    return out


def onnx_session(path, threads: int = 1):
    """An onnxruntime CPU session for an exported graph (build once, run many times)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_predict(model: TorchModel, X, path, *, threads: int | None = None) -> np.ndarray:
    """Run an exported graph on `X` (as `predict_output` takes it) with onnxruntime.

    `path` is the graph's file, or a session from `onnx_session` (what speed checks reuse)."""
    session = path if hasattr(path, "run") else onnx_session(path, threads or model.ctx.threads)
    return session.run(None, {"input": model.onnx_inputs(X)})[0].astype(np.float64)
