"""calibkd.study.findings: findings in words from a run's own values, checked
on hand-made inputs (directions, noise status, one-seed wording, number
formatting) and on small tables shaped like chapters 02-04's, for
Fashion-MNIST, glyphs and the long tail: the text names the right groups and
regimes and states the numbers of its own tables."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from calibkd.config import dataset_info
from calibkd.study import findings

M = findings.MINUS


# --- numbers and sentences ---------------------------------------------------

@pytest.mark.parametrize("value, digits, text", [
    (0.0671, 3, "0.067"), (-0.0244, 3, f"{M}0.024"), (2.377, 2, "2.38"), (0.0, 3, "0.000"),
    (1.88e-05, 3, "1.9e-05"), (-3e-6, 3, f"{M}3.0e-06"), (float("nan"), 3, "n/a"), (12.5, 1, "12.5"),
])
def test_numbers_are_written_with_their_digits_and_a_true_minus(value, digits, text):
    assert findings.number(value, digits) == text


def test_differences_carry_a_sign_and_intervals_two():
    assert findings.signed(0.024) == "+0.024" and findings.signed(-0.024) == f"{M}0.024"
    assert findings.signed(0.0) == "0.000"
    assert findings.interval_text(-0.051, 0.002) == f"[{M}0.051, +0.002]"
    assert findings.percent(0.699) == "69.9 %"


def test_one_seed_states_the_direction_and_says_it_is_not_tested():
    text = findings.compare("CUD", 0.067, "KD", 0.013, "test ECE", higher_is_better=False)
    assert text == "CUD's test ECE (0.067) is higher than KD's (0.013): worse; one seed, not tested against seed noise."
    text = findings.compare("CUD", 0.71, "KD", 0.70, "test accuracy", higher_is_better=True)
    assert text.endswith("is higher than KD's (0.700): better; one seed, not tested against seed noise.")


def test_without_a_better_direction_there_is_no_judgement():
    text = findings.compare("the CE teacher", 2.38, "the DUS teacher", 1.5, "TS temperature", digits=2)
    assert text == "the CE teacher's TS temperature (2.38) is higher than the DUS teacher's (1.50); " \
                   "one seed, not tested against seed noise."


def test_values_equal_at_the_shown_precision_are_called_equal():
    text = findings.compare("CUD", 0.0451, "KD", 0.0449, "test ECE", higher_is_better=False)
    assert "are equal to 3 decimals" in text and "better" not in text and "worse" not in text


def test_an_interval_across_zero_is_within_noise_and_judges_nothing():
    text = findings.compare("CUD", 0.045, "KD", 0.069, "test ECE", False, interval=(-0.051, 0.002), seeds=3)
    assert text == (f"CUD's test ECE (0.045) is lower than KD's (0.069) by {M}0.024 [{M}0.051, +0.002] "
                    "over 3 seeds: within noise.")


@pytest.mark.parametrize("higher_is_better, word", [(False, "better"), (True, "worse")])
def test_an_interval_excluding_zero_is_beyond_noise_with_its_direction(higher_is_better, word):
    text = findings.compare("CUD", 0.045, "KD", 0.069, "metric", higher_is_better, interval=(-0.04, -0.01), seeds=3)
    assert text.endswith(f": {word} beyond seed noise.")


def test_several_seeds_without_an_interval_are_not_tested():
    assert "3 seeds but no interval: not tested" in findings.compare("A", 1, "B", 2, "m", True, seeds=3)
    with pytest.raises(ValueError, match="low above high"):
        findings.noise_status((0.1, -0.1), 3)


def test_contrast_states_each_metric_and_skips_missing_ones():
    a = {"accuracy": 0.392, "ECE": 0.1176, "ECE after TS": np.nan}
    b = {"accuracy": 0.449, "ECE": 0.0599, "ECE after TS": 0.06}
    text = findings.contrast("CUD", a, "KD", b, [("accuracy", "accuracy", True), ("ECE", "ECE", False),
                                                 ("ECE after TS", "ECE after TS", False), ("NLL", "NLL", False)])
    assert text == ("CUD against KD: accuracy 0.392 against 0.449 (lower: worse), ECE 0.118 against 0.060 "
                    "(higher: worse); one seed, not tested against seed noise.")


def test_extreme_names_every_tie_at_the_shown_precision():
    assert findings.extreme({"ce": 0.597, "kd": 0.449}, "test accuracy") == \
        "the highest test accuracy is the CE student's (0.597)"
    assert findings.extreme({"cud": 0.0101, "kd": 0.0104, "ce": 0.2}, "ECE", highest=False) == \
        "the lowest ECE is CUD's and KD's (0.010)"


# --- datasets and regimes ----------------------------------------------------

GLYPHS = replace(dataset_info("glyphs"), class_groups=tuple((3 * i, 3 * i + 1) for i in range(29)) + ((100,),))


def test_class_groups_are_named_for_their_dataset():
    fashion = findings.class_groups_text(dataset_info("fashion_mnist"))
    assert fashion == "the garment groups (T-shirt/top, Pullover, Coat, Shirt; Sandal, Sneaker, Ankle boot)"
    assert findings.class_groups_text(GLYPHS) == "the 29 homoglyph groups"  # groups of one class do not count
    assert findings.class_groups_text(dataset_info("cifar100")) == "the 20 superclasses"


def check_row(kind: str, temperature: float = 2.4) -> dict:
    return {"class": kind, "reason": f"TS temperature {temperature:.2f}", "teacher accuracy (views)": 0.998,
            "teacher accuracy (test)": 0.885, "TS temperature": temperature,
            "DUS gate rate (before)": 0.0, "DUS gate rate (after)": 0.0}


def test_an_overconfident_regime_that_passes_its_check_is_described_as_such():
    text = findings.regime_sentence("overconfident", check_row("overconfident"))
    assert "*overconfident*" in text and "99.8 %" in text and "88.5 %" in text
    assert "failed" not in text and "DUS cannot act there" in text


@pytest.mark.parametrize("kind", ["calibrated", "underconfident", "wrong on the students' views"])
def test_an_overconfident_regime_that_fails_its_check_is_not_evidence(kind):
    text = findings.regime_sentence("overconfident", check_row(kind, 1.0))
    assert f"*{kind}*" in text
    assert "failed its check" in text and "not evidence about overconfident teachers" in text
    assert not findings.regime_passes("overconfident", check_row(kind))


def test_other_regimes_need_no_class():
    assert findings.regime_passes("default", check_row("underconfident"))
    assert "failed" not in findings.regime_sentence("long_tail", check_row("calibrated"))


# --- chapter 04: the students --------------------------------------------------

COLUMNS = ["accuracy", "NLL", "ECE", "ECE after TS", "shift ECE (mean)", "mixture NLL after TS",
           "hard-slice NLL after TS"]


def student_table(models: list[str], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.uniform(0.01, 0.99, (len(models), len(COLUMNS))), index=models, columns=COLUMNS)


def checks_of(**kinds: str) -> pd.DataFrame:
    return pd.DataFrame([{"regime": r, **check_row(k)} for r, k in kinds.items()]).set_index("regime")


def numbers_in(text: str) -> list[str]:
    return re.findall(r"\d+\.\d{3}", text)


def test_student_findings_state_the_numbers_of_their_own_tables():
    table = student_table(["ce", "kd", "kd_ts", "cud", "cudp"], 0)
    text = findings.student_findings({"default": table}, checks_of(default="calibrated"))
    assert "Regime default" in text and "one seed" in text.lower()
    best = table["accuracy"].round(3) == round(table["accuracy"].max(), 3)  # ties at 3 decimals: all named
    who = " and ".join(findings.possessive(findings.model_name(m)) for m in table.index[best])
    assert f"The highest test accuracy is {who} ({table['accuracy'].max():.3f})" in text
    cud = next(line for line in text.splitlines() if line.startswith("- CUD against KD"))
    for column in COLUMNS:  # every column, CUD's value then KD's
        assert f"{findings.number(table.loc['cud', column])} against {findings.number(table.loc['kd', column])}" in cud
    assert "ECE under corruption" in cud and "hard-slice NLL after TS" in cud
    shown = set(numbers_in(text))
    assert shown <= {f"{v:.3f}" for v in table.to_numpy().ravel()} | {"0.998", "0.885"} | {"99.8", "88.5"}


def test_student_findings_discuss_only_the_regimes_of_the_run_and_flag_a_failed_check():
    tables = {"default": student_table(["ce", "kd", "cud"], 1), "overconfident": student_table(["ce", "kd", "cud"], 2)}
    text = findings.student_findings(tables, checks_of(default="calibrated", overconfident="calibrated"))
    assert "Regime overconfident" in text and "failed its check" in text
    alone = findings.student_findings({"long_tail": tables["default"]}, checks_of(long_tail="overconfident"))
    assert "long_tail" in alone and "overconfident**" not in alone and "Regime default" not in alone
    passing = findings.student_findings(tables, checks_of(default="calibrated", overconfident="overconfident"))
    assert "failed" not in passing


def test_student_findings_compare_the_few_shot_classes_of_a_long_tail():
    models = ["ce", "kd", "cud", "teacher ce"]
    columns = pd.MultiIndex.from_product([["accuracy", "ece", "nll"], ["many", "medium", "few"]],
                                         names=["metric", "group"])
    groups = pd.DataFrame(np.arange(len(models) * 9).reshape(len(models), 9) / 100, index=models, columns=columns)
    text = findings.student_findings({"long_tail": student_table(["ce", "kd", "cud"], 3)},
                                     checks_of(long_tail="calibrated"), {"long_tail": groups})
    line = next(x for x in text.splitlines() if "few-shot accuracy" in x and x.startswith("- CUD"))
    assert f"few-shot accuracy {groups.loc['cud', ('accuracy', 'few')]:.3f} against " \
           f"{groups.loc['kd', ('accuracy', 'few')]:.3f}" in line
    assert "teacher ce" not in text  # the teachers' rows of the group table are not students


# --- chapter 02: the teachers -------------------------------------------------

def teacher_inputs(info, names=("default", "overconfident")):
    rows = []
    for k, name in enumerate(names):
        for split in ("test", "train", "train (augmented)"):
            rows.append({"model": f"teacher ({name})", "split": split, "accuracy": 0.9 - 0.1 * k,
                         "mean_confidence": 0.91 + 0.05 * k, "ece": 0.01 + 0.1 * k})
    table = pd.DataFrame(rows).set_index(["model", "split"])
    temperatures = {n: 1.0 + 1.38 * k for k, n in enumerate(names)}
    recovery = {(n, s): 0.9 - 0.01 * k for k, n in enumerate(names) for s in ("test", "train")}
    non_target = {(n, s): 1e-3 / (k + 1) for k, n in enumerate(names) for s in ("test", "train")}
    checks = checks_of(**{n: ("calibrated" if n == "default" else "overconfident") for n in names})
    return table, temperatures, recovery, checks, non_target


def test_teacher_findings_name_the_garment_groups_on_fashion_mnist():
    info = dataset_info("fashion_mnist")
    table, temperatures, recovery, checks, non_target = teacher_inputs(info)
    text = findings.teacher_findings(table, temperatures, recovery, checks, info, non_target)
    assert "garment groups" in text and "homoglyph" not in text
    assert "T = 2.38" in text and "T = 1.00" in text
    assert "The default teacher's test ECE (0.010) is lower than the overconfident teacher's (0.110)" in text


def test_teacher_findings_name_the_homoglyph_groups_on_glyphs_and_its_natural_shift():
    table, temperatures, recovery, checks, non_target = teacher_inputs(GLYPHS)
    shift = pd.DataFrame([{"model": f"teacher ({n})", "condition": c, "severity": 0, "metric": m, "value": v}
                          for n in ("default", "overconfident") for c, v in (("in_distribution", 0.717), ("clean", 0.733))
                          for m in ("accuracy", "ece")])
    text = findings.teacher_findings(table, temperatures, recovery, checks, GLYPHS, non_target, shift=shift)
    assert "the 29 homoglyph groups" in text and "garment" not in text
    assert "0.717 on new images of the training fonts, 0.733 on held-out fonts" in text


def test_teacher_findings_on_one_recipe_discuss_only_it():
    info = dataset_info("fashion_mnist")
    table, temperatures, recovery, checks, non_target = teacher_inputs(info, names=("default",))
    text = findings.teacher_findings(table, temperatures, recovery, checks, info, non_target)
    assert "overconfident" not in text


# --- chapter 03: the calibrated teachers ----------------------------------------

def test_calibration_findings_compare_every_variant_with_the_ce_teacher():
    variants = ["CE", "CE + temperature", "focal", "dus_soft", "ce_finetune"]
    big = pd.DataFrame({("test", "ece"): [0.005, 0.006, 0.05, 0.04, 0.004],
                        ("test", "accuracy"): [0.92, 0.92, 0.91, 0.9, 0.92],
                        ("test", "mean_confidence"): [0.925, 0.92, 0.85, 0.86, 0.923],
                        ("corrupted (mean)", "ece"): [0.15, 0.14, 0.1, 0.12, 0.16],
                        ("corrupted (mean)", "accuracy"): [0.6, 0.6, 0.62, 0.58, 0.61]}, index=variants)
    dark = pd.DataFrame([{"model": v, "split": s, "median non-target mass": 0.01 * (i + 1), "group AUC": 0.9 + 0.01 * i}
                         for i, v in enumerate(variants) for s in ("train", "test")])
    conditions = pd.DataFrame([{"split": "test", "model": v, "C1: confidence on easy": 0.99 - 0.01 * i,
                                "C2: entropy on hard": 0.5 + 0.1 * i} for i, v in enumerate(["CE", "dus_soft", "ce_finetune"])])
    text = findings.calibration_findings(big, dark, conditions, dataset_info("fashion_mnist"),
                                         posthoc={"temperature": (0.206, 0.205), "histogram": (0.206, 0.25)})
    assert "Post-hoc `histogram`: validation NLL of the CE teacher 0.206 before, 0.250 after (higher: worse" in text
    assert "The highest accuracy under corruption (mean) is `focal`'s (0.620); the CE teacher's is 0.600." in text
    assert "The lowest test ECE is `ce_finetune`'s (0.004); the CE teacher's is 0.005." in text
    assert "underconfident) for `focal`, `dus_soft`" in text
    assert "garment groups" in text and "above it: `CE + temperature` (0.910)" in text
    assert "`dus_soft` against the CE teacher: C1, confidence on easy test examples 0.980 against 0.990 " \
           "(lower: worse)" in text
    assert "one seed, not tested against seed noise" in text
    glyphs = findings.calibration_findings(big, dark, conditions, GLYPHS)
    assert "homoglyph groups" in glyphs and "garment" not in glyphs


def test_as_good_as_lists_every_model_that_matches_or_beats_one():
    values = {"cud": 2.26, "kd": 2.70, "kd_ls": 1.86, "kd_mixup": 1.80, "kd_focal": 2.28, "ce": 2.2601}
    text = findings.as_good_as(values, "cud", "mixture NLL", higher_is_better=False, seeds=3)
    assert text == ("CUD's mixture NLL (2.260): as good or better: `kd_ls` (1.860), `kd_mixup` (1.800), "
                    "the CE student (2.260); means over seeds, not tested against each other.")
    assert findings.as_good_as({"cud": 0.9, "kd": 0.8}, "cud", "accuracy", True).endswith(
        "as good or better: none; one seed, not tested against seed noise.")
