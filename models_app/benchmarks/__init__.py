"""The benchmark harness: what the bench commands share, one module per concern.

- `cache`: the embedding cache keyed by image content, so only a first run pays the
  backbone;
- `simulation`: the Fashion-MNIST pool held as arrays (`ArrayPool`) and the simulated
  annotator on it, calling the app's own training and ranking functions (`simulate`),
  in worker processes if asked (`simulate_many`); the long-tail draw;
- `through_app`: the pool ingested through the app (`Pool`), its annotator going
  through the services and the database, tasks run synchronously as a worker would,
  removing a temporary project;
- `multilabel`: the mosaic pool of tag projects (`MosaicPool`) and its simulated
  annotator (`simulate_tags`);
- `report`: the summary of learning curves, the plot, and the facts every report
  carries (`run_facts`: wall time, machine, the command line that gives the figures
  again).

Every random choice is seeded from the run's seed: the cold start's ranking from the
bench's seed, every later ranking from the labels chosen so far (`labels_seed`, as the
app does), head training and calibration with their fixed seeds. The same command, on
the same machine and torch threads, gives the same figures. The commands under
`*/management/commands/bench_*.py` parse options, call these and print.
"""

from __future__ import annotations

from models_app.benchmarks.cache import EmbeddingCache, embedding_cache
from models_app.benchmarks.multilabel import (
    MosaicPool,
    full_pool_map,
    simulate_strategies,
    simulate_tags,
)
from models_app.benchmarks.report import (
    aubc,
    command_line,
    labels_to_reach,
    machine,
    plot,
    run_facts,
    summarise,
)
from models_app.benchmarks.simulation import (
    ArrayPool,
    BenchmarkError,
    Curve,
    accuracy,
    balanced_rows,
    full_pool_score,
    labels_to_find_all,
    long_tail_rows,
    macro_f1,
    simulate,
    simulate_many,
)
from models_app.benchmarks.through_app import (
    Pool,
    fashion_ingest,
    project_delete,
    synchronous_tasks,
)

__all__ = [
    "ArrayPool",
    "BenchmarkError",
    "Curve",
    "EmbeddingCache",
    "MosaicPool",
    "Pool",
    "fashion_ingest",
    "accuracy",
    "aubc",
    "balanced_rows",
    "command_line",
    "embedding_cache",
    "full_pool_map",
    "full_pool_score",
    "labels_to_find_all",
    "labels_to_reach",
    "long_tail_rows",
    "machine",
    "macro_f1",
    "plot",
    "project_delete",
    "run_facts",
    "simulate",
    "simulate_many",
    "simulate_strategies",
    "simulate_tags",
    "summarise",
    "synchronous_tasks",
]
