from __future__ import annotations

from django.core.management.base import BaseCommand

from models_app.ticks import ticks_arm_stale


class Command(BaseCommand):
    help = "Arm again the periodic ticks whose last run was lost (see models_app.ticks)."

    def handle(self, *args, **options):
        armed = ticks_arm_stale()
        self.stdout.write(f"{armed} tick(s) armed again." if armed else "Ticks armed.")
