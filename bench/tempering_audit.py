"""How much the first build's tempering got wrong, on this study's own teachers.

The first build tempered a target given as probabilities q by
softmax(log(max(q, 1e-12)) / T); exact tempering is log_softmax(log q / T)
(``calibkd.methods.distill.temper``). The clamp changes every row with some
class below 1e-12, i.e. a logit margin above about 27.6. For each CE teacher
of a profile and dataset (the regimes' recipes, loaded from the model
cache, never trained here) this script scores its targets on 10,000 of its
students' training views (``calibkd.study.report.student_views``): the
teacher's softmax (what W-Clip and CUD-P start from) and its
temperature-scaled version (KD-TS): the fraction of rows the clamp touched,
the total-variation distance between the old and the exact tempered target
(fraction of rows above 0.01, mean, max) and the mean non-target mass both
ways. It writes JSON next to the benchmark's results.

    python bench/tempering_audit.py --profile default --dataset fashion_mnist
"""

from __future__ import annotations

import argparse
import json
import platform
from dataclasses import replace
from pathlib import Path

import torch

from calibkd.config import REGIMES, get_profile
from calibkd.data.splits import make_splits

from calibkd.io import atomic_write_text
from calibkd.methods.calibration import make_calibrator
from calibkd.nn.inference import predict_logits
from calibkd.study.report import student_views
from calibkd.training.model_cache import MissingModelError, get_trained, set_training_allowed
from calibkd.training.stage import StudentStage

CLAMP = 1e-12


def audit(log_target: torch.Tensor, temperature: float) -> dict[str, float]:
    """The old clamped tempering against the exact one, for one set of log targets (float64)."""
    q = log_target.float().exp()  # the float32 probabilities the first build tempered
    old = torch.softmax(q.clamp_min(CLAMP).log() / temperature, 1).double()
    exact = torch.softmax(log_target / temperature, 1)
    tv = 0.5 * (old - exact).abs().sum(1)
    return {"rows_touched": float((q.min(1).values < CLAMP).double().mean()),
            "rows_tv_above_0.01": float((tv > 0.01).double().mean()), "mean_tv": float(tv.mean()),
            "max_tv": float(tv.max()), "non_target_old": float((1 - old.max(1).values).mean()),
            "non_target_exact": float((1 - exact.max(1).values).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--temperature", type=float, default=4.0, help="the KD temperature (default 4)")
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "tempering-audit.json")
    args = parser.parse_args()
    set_training_allowed(False)
    torch.manual_seed(0)
    profile = get_profile(args.profile, args.dataset)
    data = make_splits(profile.split, None, torch.device("cpu"))
    results = {}
    for regime in (r for r in REGIMES if r in profile.teacher_recipes):
        recipe = profile.teacher_recipes[regime]
        try:
            teacher = get_trained(recipe, data, torch.device("cpu"))
        except MissingModelError:
            print(f"{regime}: its CE teacher is not in the model cache; skipped (run chapter 01 or 04 first)")
            continue
        student = replace(profile.student, train=replace(profile.student.train, subset=recipe.train.subset,
                                                         long_tail=recipe.train.long_tail,
                                                         augment=recipe.train.augment))
        stage = StudentStage(data, torch.device("cpu"), regime, student, lambda *_: teacher)
        views = student_views(stage, args.sample, 0)
        z = predict_logits(teacher.model, views.images).double()
        scaling = make_calibrator("temperature").fit(predict_logits(teacher.model, data.val.images), data.val.labels)
        results[regime] = {"teacher softmax": audit(torch.log_softmax(z, 1), args.temperature),
                           "temperature-scaled teacher": audit(scaling.log_probs(z), args.temperature)}
        for target, scores in results[regime].items():
            print(f"{regime:14s} {target:27s} " + "  ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    record = {"profile": args.profile, "dataset": args.dataset, "temperature": args.temperature,
              "sample": args.sample, "python": platform.python_version(), "torch": torch.__version__,
              "results": results}
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
