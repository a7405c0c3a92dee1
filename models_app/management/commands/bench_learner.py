"""Measure the learner on real data in one run, so the ratios compare like with like.

- embedding: the full pipeline (read the stored file, decode, resize, forward, store in
  the database) against the backbone's raw forward pass over images already decoded
  and in memory. Two sets of `--images` distinct Fashion-MNIST test images are
  uploaded: the raw pass runs over the first before and after the pipeline (its mean is
  the yardstick), the pipeline over the second, whose files nothing has read in this
  run. The same for the photos of `--photos` (default: scikit-image's sample photos,
  when installed), larger images whose decoding costs more: the pipeline reads them
  first, then the raw pass (whose decoding is not timed) runs over the same photos.
- head training on `--train` real embeddings of Fashion-MNIST training images with
  their true classes (a tenth of them as the validation split), scoring `--score` real
  embeddings, and re-ranking a queue of those `--score` images stored in the database.
  These embeddings come from the cache `bench_active_learning` keeps (DATA_DIR/cache);
  missing ones are computed first, and that is not timed.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError

from labeling import services as labeling_services
from labeling.datasets import fashion_mnist_read
from labeling.models import Image
from models_app import services
from models_app.benchmarks import ArrayPool, embedding_cache, project_delete, run_facts
from models_app.ml.embed import compute_threads, raw_forward_throughput
from models_app.ml.head import predict_proba, train_head
from models_app.models import Embedding, LearnerSettings

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff")


def sample_photos_dir() -> str:
    """scikit-image's folder of sample photos, or "" when it is not installed."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return ""
    return str(Path(next(iter(spec.submodule_search_locations))) / "data")


class Command(BaseCommand):
    help = "Benchmark embedding, head training, scoring and re-ranking on real images."

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="json_path", help="also write the figures here")
        parser.add_argument("--images", type=int, default=256, help="images per embedding pass")
        parser.add_argument("--photos", default=sample_photos_dir(), help="'' to skip")
        parser.add_argument("--train", type=int, default=10000)
        parser.add_argument("--score", type=int, default=20000)
        parser.add_argument("--data-dir", default=settings.LABELING["FASHION_MNIST_DIR"])
        parser.add_argument("--cache-dir", default=str(settings.DATA_DIR / "cache"))

    def handle(self, *args, **options):
        started = time.monotonic()
        if options["images"] < settings.LEARNER["EMBED_BATCH"]:
            raise CommandError("--images must be at least one batch.")
        if not 100 <= options["train"] <= options["score"]:
            raise CommandError("--train is at least 100 and at most --score.")
        try:
            test = fashion_mnist_read(Path(options["data_dir"]), "test")
            train = fashion_mnist_read(Path(options["data_dir"]), "train")
        except (FileNotFoundError, ValueError) as error:
            raise CommandError(str(error)) from None
        if 2 * options["images"] > test.count or options["score"] > train.count:
            raise CommandError(
                f"--images is at most {test.count // 2}, --score at most {train.count}."
            )
        backbone = services.backbone_load()
        cache = embedding_cache(options["cache_dir"])
        real = ArrayPool.of(train, range(options["score"]), cache)
        cache.save()
        user, _ = get_user_model().objects.get_or_create(username="bench-learner")
        project = labeling_services.project_create(name="bench_learner (temporary)", user=user)
        services.learner_settings(project=project)
        try:
            figures = self._embedding(project, user, test, options["images"], backbone)
            figures.update(self._photos(project, user, options["photos"], backbone))
            figures.update(self._head(project, real, options["train"], str(backbone.device)))
        finally:
            project_delete(project)
        figures.update(
            torch_threads=compute_threads(),
            backbone=services.backbone_key(),
            **run_facts(self, "bench_learner", options, started, str(backbone.device)),
        )
        text = json.dumps(figures, indent=2)
        self.stdout.write(text)
        if options["json_path"]:
            Path(options["json_path"]).write_text(text + "\n")

    def _upload(self, project, user, files: list[tuple[str, bytes]]) -> list[int]:
        results = labeling_services.images_ingest(
            project=project,
            files=[SimpleUploadedFile(name, data) for name, data in files],
            user=user,
            request_embedding=False,  # embedded below, timed; no worker races it
        )
        return [r.image_id for r in results if r.status == "created"]

    def _pipeline(self, project, image_ids: list[int]) -> float:
        """Images a second through the app's embedding of stored files."""
        services.embeddings_claim(limit=len(image_ids), project=project)
        ids = list(
            Embedding.objects.filter(image_id__in=image_ids, vector__isnull=True).values_list(
                "id", flat=True
            )
        )
        started = time.perf_counter()
        services.embeddings_compute(embedding_ids=ids)
        return len(ids) / (time.perf_counter() - started)

    def _paths(self, image_ids: list[int]) -> list[str]:
        images = Image.objects.in_bulk(image_ids)
        return [default_storage.path(images[pk].file.name) for pk in image_ids]

    def _embedding(self, project, user, data, count: int, backbone) -> dict:
        raw_ids = self._upload(project, user, [(f"r{i}.png", data.png(i)) for i in range(count)])
        pipeline_ids = self._upload(
            project, user, [(f"p{i}.png", data.png(i)) for i in range(count, 2 * count)]
        )
        batch = settings.LEARNER["EMBED_BATCH"]
        raw_paths = self._paths(raw_ids)
        raw_before = raw_forward_throughput(backbone, raw_paths, batch_size=batch)
        pipeline = self._pipeline(project, pipeline_ids)
        raw_after = raw_forward_throughput(backbone, raw_paths, batch_size=batch)
        raw = (raw_before + raw_after) / 2
        return {
            "embed_pipeline_img_per_s": round(pipeline, 2),
            "embed_raw_img_per_s": round(raw, 2),
            "embed_ratio": round(pipeline / raw, 3),
            "embed_raw_before_after": [round(raw_before, 2), round(raw_after, 2)],
            "embed_images": [len(raw_ids), len(pipeline_ids)],
            "embed_batch": batch,
            "embed_data": "Fashion-MNIST test images (28x28 PNG): the raw pass over the "
            "first set, the pipeline over the second, files not read before in this run",
        }

    def _photos(self, project, user, folder: str, backbone) -> dict:
        paths = sorted(p for p in Path(folder).glob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
        if not folder or not paths:
            return {"photos": "skipped (no --photos folder)"}
        ids = self._upload(project, user, [(p.name, p.read_bytes()) for p in paths])
        pipeline = self._pipeline(project, ids)
        raw = raw_forward_throughput(
            backbone, self._paths(ids), batch_size=settings.LEARNER["EMBED_BATCH"]
        )
        sizes = Image.objects.filter(pk__in=ids).values_list("width", "height")
        return {
            "photos_pipeline_img_per_s": round(pipeline, 2),
            "photos_raw_img_per_s": round(raw, 2),
            "photos_ratio": round(pipeline / raw, 3),
            "photos_images": len(ids),
            "photos_median_pixels": int(np.median([w * h for w, h in sizes])),
            "photos_data": f"{folder}: the pipeline first (files not read before), then the "
            "raw pass over the same photos",
        }

    def _head(self, project, real: ArrayPool, count: int, device: str) -> dict:
        """Head training, scoring and re-ranking on real embeddings and true classes."""
        val = count // 10
        x, y = real.x[:count], real.y[:count]
        started = time.perf_counter()
        head = train_head(
            x[val:], y[val:], len(real.names), x_val=x[:val], y_val=y[:val], device=device
        )
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        proba = predict_proba(head, real.x, device=device)
        proba.argmax(axis=1), proba.max(axis=1)
        score_seconds = time.perf_counter() - started
        return {
            "train_images": count - val,
            "train_val_images": val,
            "train_s": round(train_seconds, 3),
            "train_epochs": head.epochs,
            "score_images": len(real.y),
            "score_s": round(score_seconds, 3),
            **self._rerank(project, head, real),
            "head_data": f"real embeddings of the first {len(real.y)} Fashion-MNIST training "
            "images, with their true classes",
        }

    def _rerank(self, project, head, real: ArrayPool) -> dict:
        """Re-rank a queue of the real images stored in the database, as after a
        retrain: read their embeddings, score them, rank with the strategy, write
        priorities."""
        classes = [
            labeling_services.label_class_create(project=project, name=name) for name in real.names
        ]
        Image.objects.bulk_create(
            [
                Image(
                    project=project,
                    file=f"bench/{i}.png",
                    thumbnail=f"bench/{i}.jpg",
                    original_name=f"{i}.png",
                    content_hash=f"{i:064x}",  # unique here; the files are never read
                    width=28,
                    height=28,
                )
                for i in range(len(real.y))
            ],
            batch_size=5000,
        )
        key = services.backbone_key()
        new_ids = Image.objects.filter(project=project, file__startswith="bench/").order_by("id")
        Embedding.objects.bulk_create(
            (
                Embedding(
                    image_id=pk,
                    backbone=key,
                    vector=vector.astype(np.float16).tobytes(),
                    dim=len(vector),
                )
                for pk, vector in zip(new_ids.values_list("id", flat=True), real.x, strict=True)
            ),
            batch_size=2000,
        )
        figures = {}
        for strategy in ("margin", "cluster_margin"):
            LearnerSettings.objects.filter(project=project).update(strategy=strategy)
            started = time.perf_counter()
            embeddings = services.project_embeddings(project=project)
            ranked = services.queue_rank(
                project=project,
                embeddings=embeddings,
                proba_for=lambda ids, e=embeddings: predict_proba(head, e.of(ids)),
                class_ids=[c.pk for c in classes],
                seed=0,
            )
            figures[f"rerank_{strategy}_s"] = round(time.perf_counter() - started, 3)
        figures["rerank_images"] = ranked
        return figures
