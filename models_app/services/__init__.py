"""Writes of the learner, one module per domain: embeddings, options (a project's
learner settings), versions (request, train, evaluate, activate), ranking (the queue's
order and suggestions), predictions (the active model), splits (suggestions for a class
being split) and quality (label scores and near-duplicates for the review).

The heavy work (embedding, training) runs in django-q2 workers through `tasks.py`; the
web process only requests it. The public names are importable from here, and each is
imported when first used (PEP 562's module `__getattr__`): most of these modules need
torch, which the web server, the admin and every management command would otherwise
load at start-up (seconds of CPU each) without ever using it.
"""

from __future__ import annotations

import importlib

# Each public name, and the module that defines it.
_MODULES = {
    "embeddings": [
        "ProjectEmbeddings",
        "TrainingError",
        "backbone_load",
        "embeddings_claim",
        "embeddings_compute",
        "embeddings_continue",
        "embeddings_dispatch",
        "embeddings_ensure",
        "embeddings_in_flight",
        "embeddings_of_images",
        "image_sources",
        "project_embeddings",
    ],
    "options": ["learner_settings", "learner_settings_update"],
    "predictions": ["ActiveModel", "active_model"],
    "quality": ["label_scores", "near_duplicates", "nearest_neighbours"],
    "ranking": ["queue_rank", "queue_rerank", "ranking_seed"],
    "seeds": ["labels_seed"],
    "splits": ["split_suggest"],
    "versions": ["model_version_request", "model_version_train", "training_blocker"],
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}
_HOME["backbone_key"] = "models_app.selectors"  # a read, kept here for its old callers

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _MODULES:  # a domain module itself, as `services.versions`
        return importlib.import_module(f"{__name__}.{name}")
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    path = module if "." in module else f"{__name__}.{module}"
    value = getattr(importlib.import_module(path), name)
    globals()[name] = value  # found at once next time
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
