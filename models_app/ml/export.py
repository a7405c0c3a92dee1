"""A trained version as one network from image to probabilities, for use outside the app:
ONNX (run by onnxruntime anywhere) and TorchScript (run by libtorch or torch.jit.load).

The graph takes the batch `preprocess` makes (float32 (N, 3, size, size), normalised) and
returns calibrated probabilities: softmax(logits / T) for a single-label version,
sigmoid(logit / T_tag) per tag for a multi-label one. Between backbone and head it does
what the app does to a stored embedding: a head trained on embeddings sees them rounded
to float16 (the precision they are stored at), then L2-normalised and standardised. A
fine-tuned version is the network the app scores image files with, already whole.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from models_app.ml.backbone import Backbone
from models_app.ml.finetune import FineTuned, FineTuneNet
from models_app.ml.head import TrainedHead, restore_module
from models_app.ml.multilabel import TrainedTagHead

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


class _EmbeddingHead(nn.Module):
    """Backbone -> pooled features -> float16 and back (as stored) -> the head's input
    (L2-normalised, standardised) -> logits."""

    def __init__(self, backbone: nn.Module, head: nn.Module, mean, scale):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)
        features = features.to(torch.float16).to(torch.float32)
        unit = features / features.norm(dim=1, keepdim=True).clamp_min(1e-6)
        return self.head((unit - self.mean) / self.scale)


class Calibrated(nn.Module):
    """Logits -> calibrated probabilities: softmax over classes, or sigmoid per tag."""

    def __init__(self, logits: nn.Module, temperature, *, multi_label: bool):
        super().__init__()
        self.logits = logits
        self.multi_label = multi_label
        t = np.asarray(temperature, np.float32).reshape(-1)
        self.register_buffer("temperature", torch.as_tensor(t)[None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.logits(x) / self.temperature
        return torch.sigmoid(z) if self.multi_label else torch.softmax(z, dim=1)


def single_label_network(backbone: Backbone, head: TrainedHead) -> Calibrated:
    trunk = _EmbeddingHead(
        backbone.model, restore_module(head), head.feature_mean, head.feature_scale
    )
    return Calibrated(trunk, head.temperature, multi_label=False).cpu().eval()


def tag_network(backbone: Backbone, head: TrainedTagHead) -> Calibrated:
    linear = nn.Linear(head.dim, head.n_tags)
    linear.load_state_dict(head.state)
    trunk = _EmbeddingHead(backbone.model, linear, head.feature_mean, head.feature_scale)
    return Calibrated(trunk, head.temperatures, multi_label=True).cpu().eval()


def finetuned_network(backbone: Backbone, tuned: FineTuned, probe: TrainedHead) -> Calibrated:
    """The fine-tuned network; `backbone` is changed (its weights become the tuned ones),
    so pass a copy of its own, as `load_backbone` gives."""
    net = FineTuneNet(
        backbone.model, restore_module(probe), probe.feature_mean, probe.feature_scale
    )
    net.load_state_dict(tuned.state)
    return Calibrated(net, tuned.temperature, multi_label=False).cpu().eval()


@dataclass(frozen=True)
class Exported:
    onnx: bytes
    torchscript: bytes
    opset: int


def _example(size: int) -> torch.Tensor:
    return torch.zeros((2, 3, size, size), dtype=torch.float32)


@contextlib.contextmanager
def _quiet(*names: str):
    """The exporter's libraries log every optimisation pass at INFO: hundreds of lines
    in a worker's log for one export."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def to_onnx(network: nn.Module, size: int) -> bytes:
    """The network as one self-contained ONNX model (weights inside), any batch size.

    Through torch.export (`dynamo=True`), the exporter torch maintains; the older
    TorchScript-based one warns that it will be removed."""
    batch = torch.export.Dim("batch", min=1, max=65536)
    with warnings.catch_warnings(), _quiet("onnx_ir", "onnxscript", "torch.onnx"):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            network,
            (_example(size),),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"x": {0: batch}},
            external_data=False,
            optimize=True,
            verbose=False,
        )
    return program.model_proto.SerializeToString()


def onnx_opset(data: bytes) -> int:
    """The default (ai.onnx) opset an ONNX model needs of its runtime."""
    model = onnx.load_from_string(data)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def to_torchscript(network: nn.Module, size: int) -> bytes:
    """The network traced to TorchScript (`torch.jit.load` or libtorch's
    `torch::jit::load` run it). torch calls TorchScript deprecated but still runs it;
    it is what C++ deployments without onnxruntime load."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(network, _example(size), check_trace=False)
        torch.jit.save(traced, buffer)
    return buffer.getvalue()


def export_network(network: nn.Module, size: int) -> Exported:
    onnx_bytes = to_onnx(network, size)
    return Exported(
        onnx=onnx_bytes, torchscript=to_torchscript(network, size), opset=onnx_opset(onnx_bytes)
    )


@torch.inference_mode()
def network_proba(network: nn.Module, batch: np.ndarray) -> np.ndarray:
    """The network's probabilities for a preprocessed batch, float32 (N, outputs)."""
    return network(torch.from_numpy(np.ascontiguousarray(batch, np.float32))).numpy()


def torchscript_proba(data: bytes, batch: np.ndarray) -> np.ndarray:
    """Run a TorchScript export on a preprocessed batch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    with torch.inference_mode():
        return module(torch.from_numpy(np.ascontiguousarray(batch, np.float32))).numpy()


def onnx_proba(data: bytes, batch: np.ndarray) -> np.ndarray:
    """Run an ONNX export with onnxruntime on a preprocessed batch."""
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: np.ascontiguousarray(batch, np.float32)})[0]
