from __future__ import annotations

import random
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError

from labeling import services
from labeling.datasets import FASHION_MNIST_CLASSES, fashion_mnist_read
from labeling.models import Image


class Command(BaseCommand):
    help = "Create a demo project from Fashion-MNIST (Debian package dataset-fashion-mnist)."

    def add_arguments(self, parser):
        parser.add_argument("--images", type=int, default=1000, help="how many images (N)")
        parser.add_argument(
            "--labeled-fraction",
            type=float,
            default=0.0,
            help="fraction of the images imported with their true label (0 to 1)",
        )
        parser.add_argument("--name", default="Fashion-MNIST demo")
        parser.add_argument("--owner", help="username of the owner (default: first superuser)")
        parser.add_argument("--split", choices=["train", "test"], default="train")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--data-dir", default=settings.LABELING["FASHION_MNIST_DIR"])

    def handle(self, *args, **options):
        if options["images"] < 1:
            raise CommandError("--images must be at least 1.")
        if not 0.0 <= options["labeled_fraction"] <= 1.0:
            raise CommandError("--labeled-fraction must be between 0 and 1.")
        owner = self._owner(options["owner"])
        try:
            data = fashion_mnist_read(Path(options["data_dir"]), options["split"])
        except (FileNotFoundError, ValueError) as error:
            raise CommandError(str(error)) from None
        count = min(options["images"], data.count)
        rng = random.Random(options["seed"])
        indices = rng.sample(range(data.count), count)
        labeled = set(indices[: round(count * options["labeled_fraction"])])

        project = services.project_create(
            name=options["name"],
            description=f"{count} Fashion-MNIST {options['split']} images.",
            user=owner,
        )
        classes = [
            services.label_class_create(project=project, name=n) for n in FASHION_MNIST_CLASSES
        ]
        created = duplicates = 0
        for done, index in enumerate(indices, start=1):
            upload = SimpleUploadedFile(
                f"fmnist-{options['split']}-{index:05d}.png", data.png(index)
            )
            [result] = services.images_ingest(
                project=project,
                files=[upload],
                user=owner,
                source=Image.Source.IMPORT,
                label_class=classes[data.labels[index]] if index in labeled else None,
            )
            created += result.status == "created"
            duplicates += result.status == "duplicate"
            if done % 500 == 0:
                self.stdout.write(f"  {done}/{count}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Project #{project.pk} {project.name!r}: {created} images "
                f"({len(labeled)} labeled), {duplicates} exact duplicates skipped."
            )
        )

    def _owner(self, username: str | None):
        users = get_user_model().objects
        if username:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(f"No user named {username!r}.")
            return user
        user = users.filter(is_superuser=True).order_by("id").first()
        if user is None:
            raise CommandError("No superuser yet: run `make run` once, or pass --owner.")
        return user
