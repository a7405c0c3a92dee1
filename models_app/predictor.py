"""Run a model exported from labelloop on a folder of images, without the app.

    python -m models_app.predictor MODEL.onnx FOLDER --out predictions.csv --top-k 3

Needs onnxruntime, Pillow and numpy only: neither Django nor a database nor torch.
The JSON written beside the model at export (MODEL.json, or `--manifest`) says what the
outputs are (classes or tags, with their thresholds) and how images are prepared; the
images are prepared by the app's own `models_app.ml.preprocess`, so a picture reads the
same here as in the app. A file that does not decode (cut short, not an image) is
reported and skipped; the others are predicted.

Exit status: 0 when every image was predicted or some were skipped, 1 when the model or
its JSON cannot be used or no image could be read, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image

from labeling.csv_cells import csv_writer
from models_app.ml.preprocess import InputConfig, preprocess

MANIFEST_FORMAT = "labelloop-model"
# What a file that is not a good image raises while decoding.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class ModelFileError(Exception):
    """The model or its JSON is missing, unreadable, or they do not belong together."""


@dataclass(frozen=True)
class Manifest:
    """The JSON the export writes beside the model, as the predictor needs it."""

    kind: str  # "single" (one class per image) or "multi" (tags)
    class_ids: list[int]
    class_names: list[str]
    input: InputConfig
    input_name: str
    thresholds: list[float]
    version: int | None
    raw: dict = field(repr=False)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        if not path.is_file():
            raise ModelFileError(
                f"{path}: no such file. The model's JSON comes with it from the export "
                "(the same name ending in .json); pass it with --manifest if it lies elsewhere."
            )
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("format") != MANIFEST_FORMAT:
                raise ModelFileError(f"{path} is not the JSON of a labelloop model export.")
            spec = raw["input"]
            classes = raw["classes"]
            if raw["kind"] not in ("single", "multi"):
                raise ValueError(f"kind {raw['kind']!r}")
            if raw["kind"] == "multi" and len(raw.get("thresholds") or []) != len(classes):
                raise ValueError("a threshold for every tag")
            return cls(
                kind=raw["kind"],
                class_ids=[int(c["id"]) for c in classes],
                class_names=[str(c["name"]) for c in classes],
                input=InputConfig(
                    size=int(spec["size"]),
                    crop_pct=float(spec["crop_pct"]),
                    mean=tuple(float(v) for v in spec["mean"]),
                    std=tuple(float(v) for v in spec["std"]),
                ),
                input_name=str(spec.get("name", "image")),
                thresholds=[float(t) for t in raw.get("thresholds") or []],
                version=raw.get("version"),
                raw=raw,
            )
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelFileError(f"{path} cannot be read as JSON: {error}") from None
        except (KeyError, TypeError, ValueError) as error:
            message = f"{path} lacks what a model export's JSON holds: {error!r}"
            raise ModelFileError(message) from None


@dataclass
class Prediction:
    file: str
    proba: np.ndarray


@dataclass
class Skipped:
    file: str
    error: str


class ExportedModel:
    """An exported ONNX model and its JSON, ready to predict images."""

    def __init__(self, model: str | Path, manifest: str | Path | None = None, threads: int = 0):
        model = Path(model)
        if not model.is_file():
            raise ModelFileError(f"{model}: no such model file.")
        self.manifest = Manifest.read(Path(manifest) if manifest else model.with_suffix(".json"))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(
                str(model), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types
            message = f"{model} is not an ONNX model onnxruntime can run: {error}"
            raise ModelFileError(message) from None
        self._check(model)

    def _check(self, model: Path) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        size, classes = self.manifest.input.size, len(self.manifest.class_ids)
        if (
            len(inputs) != 1
            or inputs[0].name != self.manifest.input_name
            or list(inputs[0].shape[1:]) != [3, size, size]
            or outputs[0].shape[-1] != classes
        ):
            raise ModelFileError(
                f"{model} and its JSON do not belong together: the model takes "
                f"{inputs[0].shape} and gives {outputs[0].shape}; the JSON says "
                f"(N, 3, {size}, {size}) and {classes} outputs."
            )

    def proba(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a batch prepared by `preprocess`: float32 (N, outputs)."""
        feed = {self.manifest.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        return self.session.run(None, feed)[0]

    def predict_files(
        self, files: Sequence[Path], *, root: Path | None = None, batch_size: int = 32
    ) -> tuple[list[Prediction], list[Skipped]]:
        """Each file decoded and prepared by the app's rule, then predicted in batches;
        a file that does not decode is skipped with its reason."""
        done: list[Prediction] = []
        skipped: list[Skipped] = []
        names: list[str] = []
        arrays: list[np.ndarray] = []

        def flush() -> None:
            if arrays:
                for name, row in zip(names, self.proba(np.stack(arrays)), strict=True):
                    done.append(Prediction(name, row))
                names.clear()
                arrays.clear()

        for path in files:
            name = str(path.relative_to(root)) if root else str(path)
            try:
                arrays.append(prepare(path, self.manifest))
            except DECODE_ERRORS as error:
                skipped.append(Skipped(name, f"not a readable image: {error}"))
                continue
            names.append(name)
            if len(arrays) == batch_size:
                flush()
        flush()
        return done, skipped


def prepare(path: Path, manifest: Manifest) -> np.ndarray:
    """The model's input for one image file: the app's own preprocessing, configured by
    the model's JSON. Raises one of DECODE_ERRORS for a file that does not decode."""
    return preprocess(path, manifest.input)


def image_files(folder: Path) -> list[Path]:
    """Every file under `folder` (recursively, hidden ones left out), in name order."""
    if not folder.is_dir():
        raise ModelFileError(f"{folder}: no such folder.")
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def records(manifest: Manifest, predictions: list[Prediction], top_k: int) -> list[dict]:
    """One JSON-ready dict per image: its class and confidence and the `top_k` likeliest
    classes; for tags, the tags at or above their thresholds and every tag's probability."""
    out = []
    names, ids = manifest.class_names, manifest.class_ids
    for p in predictions:
        order = np.argsort(-p.proba, kind="stable")
        top = [
            {"class": names[j], "class_id": ids[j], "probability": round(float(p.proba[j]), 6)}
            for j in order[:top_k]
        ]
        if manifest.kind == "multi":
            present = [
                {"tag": names[j], "tag_id": ids[j], "probability": round(float(p.proba[j]), 6)}
                for j in order
                if p.proba[j] >= manifest.thresholds[j]
            ]
            out.append(
                {
                    "file": p.file,
                    "tags": present,
                    "probabilities": {
                        n: round(float(v), 6) for n, v in zip(names, p.proba, strict=True)
                    },
                    "top_k": top,
                }
            )
        else:
            best = int(order[0])
            out.append(
                {
                    "file": p.file,
                    "class": names[best],
                    "class_id": ids[best],
                    "confidence": round(float(p.proba[best]), 6),
                    "top_k": top,
                }
            )
    return out


def write_json(
    path: Path, manifest: Manifest, rows: list[dict], skipped: list[Skipped], seconds: float
) -> None:
    report = {
        "version": manifest.version,
        "kind": manifest.kind,
        "seconds": round(seconds, 3),
        "predictions": rows,
        "skipped": [{"file": s.file, "error": s.error} for s in skipped],
    }
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_csv(path: Path, manifest: Manifest, rows: list[dict], skipped: list[Skipped]) -> None:
    """Single-label: file, class, class_id, confidence, top_k ("name:p;name:p"), error.
    Tags: file, tags (those present, ";"-joined), one probability column per tag, error."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv_writer(out)  # names a spreadsheet would run as formulas are quoted
        if manifest.kind == "multi":
            writer.writerow(["file", "tags", *manifest.class_names, "error"])
            for row in rows:
                present = ";".join(t["tag"] for t in row["tags"])
                values = [f"{row['probabilities'][n]:.6f}" for n in manifest.class_names]
                writer.writerow([row["file"], present, *values, ""])
            blanks = [""] * (len(manifest.class_names) + 1)
        else:
            writer.writerow(["file", "class", "class_id", "confidence", "top_k", "error"])
            for row in rows:
                top = ";".join(f"{t['class']}:{t['probability']:.6f}" for t in row["top_k"])
                confidence = f"{row['confidence']:.6f}"
                writer.writerow([row["file"], row["class"], row["class_id"], confidence, top, ""])
            blanks = [""] * 4
        for s in skipped:
            writer.writerow([s.file, *blanks, s.error])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models_app.predictor",
        description="Predict a folder of images with a model exported from labelloop.",
    )
    parser.add_argument("model", type=Path, help="the exported .onnx file")
    parser.add_argument("folder", type=Path, help="a folder of images (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="where to write: .csv or .json")
    parser.add_argument("--top-k", type=int, default=3, help="likeliest classes listed (3)")
    parser.add_argument("--manifest", type=Path, help="the model's JSON (default: MODEL.json)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all)")
    args = parser.parse_args(argv)
    if args.out.suffix.lower() not in (".csv", ".json"):
        parser.error("--out must end in .csv or .json")
    if args.top_k < 1 or args.batch_size < 1:
        parser.error("--top-k and --batch-size are at least 1")
    if not args.out.parent.is_dir():
        parser.error(f"--out: no folder {args.out.parent} to write into")
    started = time.perf_counter()
    try:
        model = ExportedModel(args.model, args.manifest, threads=args.threads)
        files = image_files(args.folder)
    except ModelFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    predictions, skipped = model.predict_files(files, root=args.folder, batch_size=args.batch_size)
    for s in skipped:
        print(f"skipped {s.file}: {s.error}", file=sys.stderr)
    rows = records(model.manifest, predictions, args.top_k)
    seconds = time.perf_counter() - started  # the model loaded, every image predicted
    if args.out.suffix.lower() == ".json":
        write_json(args.out, model.manifest, rows, skipped, seconds)
    else:
        write_csv(args.out, model.manifest, rows, skipped)
    print(
        f"{len(predictions)} image(s) predicted, {len(skipped)} skipped, in {seconds:.1f} s: "
        f"{args.out}",
        file=sys.stderr,
    )
    if not predictions:
        print(f"error: no image in {args.folder} could be read", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
