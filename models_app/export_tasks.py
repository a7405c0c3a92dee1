"""django-q2 task that builds a version's export (thin, idempotent, takes an id).

Apart from `models_app.tasks` so the worker loads torch's exporter only for this."""

from __future__ import annotations

from models_app.services.export_build import model_export_build


def build_model_export(export_id: int) -> str:
    return model_export_build(export_id=export_id).status
