"""A tick that asks the worker again for webhook deliveries whose task was lost (a
broker unreachable at commit, a worker killed past its retries): one-shot, armed again
after each run by models_app.ticks, like the learner's ticks."""

from django.db import migrations

NAME = "labelloop: resume webhook deliveries"


def add(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME,
        defaults={
            "func": "labeling.tasks.webhooks_resume",
            "schedule_type": "O",
            "minutes": 10,
            "repeats": 1,
            "hook": "models_app.ticks.tick_rearm",
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0011_webhooks"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(add, remove)]
