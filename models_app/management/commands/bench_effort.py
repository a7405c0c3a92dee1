"""How long a person takes to label a whole pool of Fashion-MNIST images: one by one, or
checking pages of the model's suggestions (see models_app/benchmarks/effort.py)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from labeling import services as labeling_services
from labeling.datasets import fashion_mnist_read
from models_app import services
from models_app.benchmarks import Pool, embedding_cache, project_delete, run_facts
from models_app.benchmarks.effort import Annotator, TimeModel
from models_app.benchmarks.through_app import synchronous_tasks

HELP = """Label a pool of Fashion-MNIST training images twice through the app's services,
with a simulated annotator, and report each run's time: `one_by_one` (the queue, one
key per image, a retrain asked for every --retrain-every labels, trained while the
person labels on) and `assisted` (--first labels one by one for a first model, then
pages of --page-size suggestions, the class with most waiting first: a glance at each
thumbnail, a click on each wrong one, one key to accept the page; a retrain, waited
for, whenever the labels have doubled; rejected images get their next class at the
next retrain, and what is left after --passes such retrains is labeled one by one).
Time model (round figures of ours, of the orders of magnitude these sources measured):
choosing a class 2.0 s plus its key 0.5 s; glancing at a thumbnail 0.4 s; any click or
key 0.5 s; a retrain the assisted person waits for, its real duration here. Sources:
Papadopoulos et al., "We don't need no bounding-boxes", CVPR 2016 (verifying is several
times faster than drawing); Krishna et al., "Embracing error to enable rapid
crowdsourcing", CHI 2016 (yes/no judgements in a fraction of a second an image); Card,
Moran and Newell's keystroke-level model (about 0.2-1.2 s an action). Errors: a
wrong class (uniformly among the others) for 2% of the images labeled one by one; 5%
of wrong suggestions left ticked on a page."""


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="json_path", required=True)
        parser.add_argument("--pool", type=int, default=5000)
        parser.add_argument("--retrain-every", type=int, default=100)
        parser.add_argument("--first", type=int, default=50)
        parser.add_argument("--page-size", type=int, default=48)
        parser.add_argument("--passes", type=int, default=2)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--data-dir", default=settings.LABELING["FASHION_MNIST_DIR"])
        parser.add_argument("--cache-dir", default=str(settings.DATA_DIR / "cache"))

    def handle(self, *args, **options):
        started = time.monotonic()
        if options["first"] < 2 or options["page_size"] < 1 or options["passes"] < 0:
            raise CommandError("--first is at least 2, --page-size at least 1, --passes >= 0.")
        if not 1 <= options["page_size"] <= labeling_services.VERIFY_MAX:
            raise CommandError(f"--page-size is at most {labeling_services.VERIFY_MAX}.")
        try:
            data = fashion_mnist_read(Path(options["data_dir"]), "train")
        except (FileNotFoundError, ValueError) as error:
            raise CommandError(str(error)) from None
        if not 100 <= options["pool"] <= data.count:
            raise CommandError(f"--pool is between 100 and {data.count}.")
        times = TimeModel()
        cache = embedding_cache(options["cache_dir"])
        user, _ = get_user_model().objects.get_or_create(username="bench-effort")
        project = labeling_services.project_create(name="bench_effort (temporary)", user=user)
        runs = {}
        try:
            pool = Pool.build(self.stdout.write, project, user, data, options["pool"], cache)
            cache.save()
            with synchronous_tasks():
                for name in ("one_by_one", "assisted"):
                    pool.reset("auto", options["retrain_every"])
                    services.queue_rank(project=project, seed=options["seed"])  # cold start
                    person = Annotator(pool, times, options["seed"])
                    run_started = time.monotonic()
                    if name == "one_by_one":
                        person.one_by_one(retrain_every=options["retrain_every"])
                    else:
                        person.assisted(
                            first=options["first"],
                            page_size=options["page_size"],
                            passes=options["passes"],
                        )
                    runs[name] = person.effort.report(pool)
                    runs[name]["simulated_in_seconds"] = round(time.monotonic() - run_started, 1)
                    self.stdout.write(f"{name}: {json.dumps(runs[name])}")
        finally:
            project_delete(project)
        report = {
            "pool": pool.size,
            "time_model": asdict(times),
            **runs,
            "speedup": runs["one_by_one"]["seconds"] / runs["assisted"]["seconds"],
            **run_facts(
                self, "bench_effort", options, started, str(services.backbone_load().device)
            ),
        }
        Path(options["json_path"]).write_text(json.dumps(report, indent=2) + "\n")
        self.stdout.write(
            f"one by one {runs['one_by_one']['seconds']:.0f} s, assisted "
            f"{runs['assisted']['seconds']:.0f} s: {report['speedup']:.2f}x; label accuracy "
            f"{runs['one_by_one']['label_accuracy']:.3f} and "
            f"{runs['assisted']['label_accuracy']:.3f}"
        )
