"""Measure the learner on real data in one run, so the ratios compare like with like.

- embedding: the full pipeline (read the stored file, decode, resize, forward, store in
  the database) against the backbone's raw forward pass over the same images, already
  decoded and in memory;
- head training on 10,000 labeled embeddings and scoring 100,000.
"""

from __future__ import annotations

import json
import shutil
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
from models_app.ml.embed import compute_threads, raw_forward_throughput
from models_app.ml.head import predict_proba, train_head
from models_app.models import Embedding, LearnerSettings


class Command(BaseCommand):
    help = "Benchmark embedding, head training and scoring on Fashion-MNIST."

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="json_path", help="also write the figures here")
        parser.add_argument("--images", type=int, default=320, help="images to embed")
        parser.add_argument("--data-dir", default=settings.LABELING["FASHION_MNIST_DIR"])

    def handle(self, *args, json_path=None, images=320, data_dir=None, **options):
        if images < settings.LEARNER["EMBED_BATCH"]:
            raise CommandError("--images must be at least one batch.")
        try:
            data = fashion_mnist_read(Path(data_dir), "test")
        except (FileNotFoundError, ValueError) as error:
            raise CommandError(str(error)) from None
        backbone = services.backbone_load()
        user, _ = get_user_model().objects.get_or_create(username="bench-learner")
        project = labeling_services.project_create(name="bench_learner (temporary)", user=user)
        services.learner_settings(project=project)
        try:
            figures = self._measure(project, user, data, images, backbone)
        finally:
            folder = Path(default_storage.path(f"projects/{project.pk}"))
            project.delete()
            shutil.rmtree(folder, ignore_errors=True)
        text = json.dumps(figures, indent=2)
        self.stdout.write(text)
        if json_path:
            Path(json_path).write_text(text + "\n")

    def _measure(self, project, user, data, count, backbone) -> dict:
        uploads = [SimpleUploadedFile(f"b{i}.png", data.png(i)) for i in range(count)]
        # Embedded below, timed; no worker should race the measurement.
        results = labeling_services.images_ingest(
            project=project, files=uploads, user=user, request_embedding=False
        )
        image_ids = [r.image_id for r in results if r.status == "created"]
        labels = np.array([data.labels[i] for i, r in enumerate(results) if r.status == "created"])
        batch = settings.LEARNER["EMBED_BATCH"]

        # Raw forward: the same images, preprocessed beforehand, in the same batch size.
        paths = [default_storage.path(p.file.name) for p in project.images.order_by("id")]

        def raw() -> float:
            return raw_forward_throughput(backbone, paths, batch_size=batch)

        raw_before = raw()
        services.embeddings_claim(limit=len(image_ids), project=project)
        ids = list(Embedding.objects.filter(image__project=project).values_list("id", flat=True))
        started = time.perf_counter()
        services.embeddings_compute(embedding_ids=ids)
        pipeline = len(ids) / (time.perf_counter() - started)
        raw_after = raw()
        raw_rate = (raw_before + raw_after) / 2

        # Head training and scoring on real embeddings, repeated with small noise to the
        # sizes the targets name (10,000 and 100,000 vectors).
        vectors = services.project_embeddings(project=project).of(image_ids)
        rng = np.random.default_rng(0)
        spread = vectors.std(axis=0, keepdims=True) * 0.1

        def jittered(n: int) -> tuple[np.ndarray, np.ndarray]:
            pick = rng.integers(0, len(vectors), n)
            noise = rng.standard_normal((n, vectors.shape[1])).astype(np.float32) * spread
            return vectors[pick] + noise, labels[pick]

        x, y = jittered(10_000)
        started = time.perf_counter()
        head = train_head(x[:9000], y[:9000], 10, x_val=x[9000:], y_val=y[9000:])
        train_seconds = time.perf_counter() - started
        x_score, _ = jittered(100_000)
        started = time.perf_counter()
        proba = predict_proba(head, x_score)
        proba.argmax(axis=1), proba.max(axis=1)
        score_seconds = time.perf_counter() - started

        rerank = self._rerank(project, head, jittered(100_000)[0])

        return {
            **rerank,
            "embed_pipeline_img_per_s": round(pipeline, 2),
            "embed_raw_img_per_s": round(raw_rate, 2),
            "embed_ratio": round(pipeline / raw_rate, 3),
            "embed_raw_before_after": [round(raw_before, 2), round(raw_after, 2)],
            "embed_images": len(ids),
            "embed_batch": batch,
            "train_10k_s": round(train_seconds, 3),
            "train_10k_epochs": head.epochs,
            "score_100k_s": round(score_seconds, 3),
            "device": str(backbone.device),
            "torch_threads": compute_threads(),
            "backbone": services.backbone_key(),
            "data": f"{len(ids)} Fashion-MNIST test images (28x28 PNG); training, "
            "scoring and re-ranking reuse their embeddings with 10% noise to reach 10,000 "
            "and 100,000",
        }

    def _rerank(self, project, head, vectors: np.ndarray) -> dict:
        """Re-rank a queue of 100,000 images stored in the database, as after a retrain:
        read their embeddings, score them, rank with the strategy, write priorities."""
        classes = [
            labeling_services.label_class_create(project=project, name=f"class {i}")
            for i in range(head.n_classes)
        ]
        Image.objects.bulk_create(
            [
                Image(
                    project=project,
                    file=f"bench/{i}.png",
                    thumbnail=f"bench/{i}.jpg",
                    original_name=f"{i}.png",
                    content_hash=f"{i:064x}",
                    width=28,
                    height=28,
                )
                for i in range(len(vectors))
            ],
            batch_size=5000,
        )
        key = services.backbone_key()
        new_ids = Image.objects.filter(project=project, file__startswith="bench/").values_list(
            "id", flat=True
        )
        Embedding.objects.bulk_create(
            (
                Embedding(
                    image_id=pk, backbone=key, vector=v.astype(np.float16).tobytes(), dim=len(v)
                )
                for pk, v in zip(new_ids.order_by("id"), vectors, strict=True)
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
            figures[f"rerank_100k_{strategy}_s"] = round(time.perf_counter() - started, 3)
        figures["rerank_images"] = ranked
        return figures
