"""calibkd: knowledge distillation from calibrated teachers, as a reproducible study.

Modules, one job each: ``config`` (profiles, recipes, parameter rules),
``data`` and ``augment`` (datasets as tensors, batched augmentation),
``models``, ``train``, ``checkpoints`` and ``experiments`` (train-or-load
with a verified cache), ``metrics``, ``calibration``, ``plots``,
``notebook`` (what every notebook does first) and ``study`` (the main job).
Batches of runs: ``batches`` (definitions and their grid), ``runs`` (the
runner, on one machine or a Dask cluster), ``run_store`` and ``run_task``
(one run, safely on disk), ``results`` (aggregation with intervals).
"""

__version__ = "0.1.0"
