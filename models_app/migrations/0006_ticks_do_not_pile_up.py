"""The periodic schedules become one-shot ticks that the hook arms again after each run
(models_app.ticks), so a busy worker never finds dozens of them queued."""

from django.db import migrations

NAMES = ("labelloop: embed new images", "labelloop: retrain after new labels")
HOOK = "models_app.ticks.tick_rearm"


def forward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=NAMES).update(
        schedule_type="O", repeats=1, hook=HOOK
    )


def backward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=NAMES).update(
        schedule_type="I", repeats=-1, hook=None
    )


class Migration(migrations.Migration):
    dependencies = [("models_app", "0005_auto_then_margin")]

    operations = [migrations.RunPython(forward, backward)]
