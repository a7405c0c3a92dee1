"""Does an exported model answer what the app answers? On Fashion-MNIST, through the app.

A temporary project gets `--images` real Fashion-MNIST images (the ten classes) through
the upload service; `--labeled-fraction` of them are labeled with their true class
(their splits drawn as the app draws them); the worker's tasks, run here as a worker
runs them, embed them, train a version and build its export. The exported ONNX model
and its JSON then go through the standalone predictor (`python -m models_app.predictor`,
a process of its own without Django or torch) over the image files the app stored, and
its probabilities are compared with the app's own for the same images (the active
model's, from the stored embeddings, as the app serves them).

Timing, per image, on the same number of threads: `onnx_ms_per_image` is the predictor's
run (loading the model, decoding, preprocessing, onnxruntime) over all the images;
`torch_ms_per_image` the app's own path from the files (decoding and preprocessing in
its pipeline, the backbone, the head).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from labeling import services as labeling_services
from labeling.datasets import FASHION_MNIST_CLASSES, fashion_mnist_read
from labeling.models import Image
from models_app import services
from models_app.benchmarks import fashion_ingest, project_delete, run_facts, synchronous_tasks
from models_app.ml.embed import compute_threads, embed_all
from models_app.ml.head import head_from_bytes, predict_proba
from models_app.models import ModelVersion
from models_app.services.exports import export_file_name, export_file_open, model_export_request

TARGETS = {"top1_agreement": 0.995, "max_prob_diff": 1e-3}


class Command(BaseCommand):
    help = "Export a trained Fashion-MNIST version and compare it with the app (see the docstring)."

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="json_path", required=True)
        parser.add_argument("--images", type=int, default=1000)
        parser.add_argument("--labeled-fraction", type=float, default=0.5)
        parser.add_argument("--split", choices=("train", "test"), default="test")
        parser.add_argument("--data-dir", default=settings.LABELING["FASHION_MNIST_DIR"])

    def handle(self, *args, **options):
        started = time.monotonic()
        if not 0 < options["labeled_fraction"] <= 1:
            raise CommandError("--labeled-fraction is above 0 and at most 1.")
        try:
            data = fashion_mnist_read(Path(options["data_dir"]), options["split"])
        except (FileNotFoundError, ValueError) as error:
            raise CommandError(str(error)) from None
        if not 40 <= options["images"] <= data.count:
            raise CommandError(f"--images is between 40 and {data.count}.")
        user, _ = get_user_model().objects.get_or_create(username="bench-export")
        project = labeling_services.project_create(name="bench_export (temporary)", user=user)
        work = Path(tempfile.mkdtemp(prefix="bench_export-"))
        try:
            with synchronous_tasks():
                report = self._run(project, user, data, options, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            for folder in (f"models/{project.pk}", f"exports/{project.pk}"):
                shutil.rmtree(default_storage.path(folder), ignore_errors=True)
            project_delete(project)
        device = str(services.backbone_load().device)
        report.update(run_facts(self, "bench_export", options, started, device))
        Path(options["json_path"]).write_text(json.dumps(report, indent=2) + "\n")
        self.stdout.write(
            f"{report['images']} images: top-1 agreement {report['top1_agreement']:.4f}, "
            f"max probability difference {report['max_prob_diff']:.2e}; "
            f"onnx {report['onnx_ms_per_image']:.1f} ms/image, "
            f"torch {report['torch_ms_per_image']:.1f} ms/image; "
            f"targets {'met' if report['targets_met'] else 'NOT met'} "
            f"({report['seconds']:.0f} s)"
        )

    def _run(self, project, user, data, options, work: Path) -> dict:
        classes = {
            i: labeling_services.label_class_create(project=project, name=name)
            for i, name in enumerate(FASHION_MNIST_CLASSES)
        }
        ids, truth = self._ingest(project, user, data, options["images"])
        labeled = ids[: max(20, int(round(len(ids) * options["labeled_fraction"])))]
        for image in Image.objects.filter(pk__in=labeled):
            labeling_services.annotation_create(
                image=image, label_class=classes[truth[image.pk]], annotator=user
            )
        step = time.monotonic()
        version = services.model_version_request(project=project, trigger="api", user=user)
        version.refresh_from_db()
        if version.status != ModelVersion.Status.SUCCEEDED:
            raise CommandError(f"training failed: {version.error}")
        self.stdout.write(f"v{version.number} trained in {time.monotonic() - step:.0f} s")
        step = time.monotonic()
        export = model_export_request(version=version, user=user)
        export.refresh_from_db()
        if export.status != "succeeded":
            raise CommandError(f"export failed: {export.error}")
        export_seconds = time.monotonic() - step
        self.stdout.write(f"exported in {export_seconds:.0f} s")

        files = self._files(export, ids, work)
        threads = compute_threads()
        onnx, onnx_seconds = self._predictor(files, work, threads, ids)
        app = services.active_model(project=project).proba(ids)
        torch_proba, torch_seconds = self._torch_path(version, ids)
        agree = onnx.argmax(axis=1) == app.argmax(axis=1)
        diff = np.abs(onnx - app)
        report = {
            "images": len(ids),
            "labeled": len(labeled),
            "classes": len(version.class_ids),
            "version": version.number,
            "test_accuracy": (version.metrics.get("test") or {}).get("accuracy"),
            "top1_agreement": round(float(agree.mean()), 6),
            "top1_disagreements": int((~agree).sum()),
            "max_prob_diff": float(diff.max()),
            "mean_prob_diff": float(diff.mean()),
            # The app's own torch path from the files (embeddings in float32, not
            # stored): how far the served answers are from it, for scale.
            "max_prob_diff_app_vs_torch_from_files": float(np.abs(torch_proba - app).max()),
            "onnx_ms_per_image": round(1000 * onnx_seconds / len(ids), 2),
            "torch_ms_per_image": round(1000 * torch_seconds / len(ids), 2),
            "threads": threads,
            "export_seconds": round(export_seconds, 1),
            "onnx_bytes": export.onnx_bytes,
            "onnx_opset": export.manifest.get("onnx_opset"),
            "targets": TARGETS,
        }
        report["targets_met"] = (
            report["top1_agreement"] >= TARGETS["top1_agreement"]
            and report["max_prob_diff"] <= TARGETS["max_prob_diff"]
        )
        return report

    def _ingest(self, project, user, data, count: int) -> tuple[list[int], dict[int, int]]:
        truth = fashion_ingest(project, user, data, count)
        ids = sorted(truth)
        self.stdout.write(f"{len(ids)} images ingested ({count - len(ids)} duplicates skipped)")
        return ids, truth

    def _files(self, export, ids: list[int], work: Path) -> dict[str, Path]:
        """The export's files and the stored image files, as a user would have them."""
        files = {}
        for kind in ("onnx", "json"):
            files[kind] = work / export_file_name(export=export, kind=kind)
            with export_file_open(export=export, kind=kind) as f:
                files[kind].write_bytes(f.read())
        folder = work / "images"
        folder.mkdir()
        for image in Image.objects.filter(pk__in=ids):
            with image.file.open("rb") as f:
                (folder / f"{image.pk:08d}.png").write_bytes(f.read())
        files["images"] = folder
        return files

    def _predictor(self, files, work: Path, threads: int, ids: list[int]):
        out = work / "predictions.json"
        command = [
            sys.executable,
            "-m",
            "models_app.predictor",
            str(files["onnx"]),
            str(files["images"]),
            "--out",
            str(out),
            "--top-k",
            str(len(json.loads(files["json"].read_text())["classes"])),  # every class
            "--threads",
            str(threads),
            "--batch-size",
            str(settings.LEARNER["EMBED_BATCH"]),
        ]
        started = time.monotonic()
        done = subprocess.run(
            command, cwd=settings.BASE_DIR, capture_output=True, text=True, check=False
        )
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise CommandError(f"the predictor failed: {done.stderr.strip()}")
        report = json.loads(out.read_text())
        if report["skipped"]:
            raise CommandError(f"the predictor skipped files: {report['skipped'][:3]}")
        manifest = json.loads(files["json"].read_text())
        column = {c["id"]: c["index"] for c in manifest["classes"]}
        by_file = {p["file"]: p for p in report["predictions"]}
        proba = np.zeros((len(ids), len(column)), np.float32)
        for row, pk in enumerate(ids):
            for entry in by_file[f"{pk:08d}.png"]["top_k"]:
                proba[row, column[entry["class_id"]]] = entry["probability"]
        self.stdout.write(f"predictor: {len(ids)} images in {seconds:.1f} s")
        return proba, seconds

    def _torch_path(self, version, ids: list[int]):
        """The app's torch path from the image files: embedding pipeline, then head."""
        backbone = services.backbone_load()
        sources = services.image_sources(ids)
        with default_storage.open(version.artifact, "rb") as f:
            head = head_from_bytes(f.read())
        embed_all(backbone, sources[:32], batch_size=32)  # warm-up: first-call allocations
        started = time.monotonic()
        x = embed_all(backbone, sources, batch_size=settings.LEARNER["EMBED_BATCH"])
        proba = predict_proba(head, x, device=str(backbone.device))
        return proba, time.monotonic() - started
