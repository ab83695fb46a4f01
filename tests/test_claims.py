"""Pre-registered claims: construction errors, Holm's correction, outcomes,
part and claim verdicts, the after-TS switch, the long tail, the batch table
and C-cardinality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from calibkd.errors import ConfigError
from calibkd.runs import claims
from calibkd.runs.claims import Claim, Comparison, Part
from calibkd.runs.results import paired_differences, t_interval

#: a jitter per seed that keeps a difference within noise
NOISE = (0.004, -0.006, 0.003)


def fake_runs(differences: dict[tuple[str, str, str], list[float]], seeds=(0, 1, 2), regime="default",
              extra_models=()) -> pd.DataFrame:
    """A stacked batch table: KD at 0.5 everywhere, other models KD + the given
    per-seed difference; ``extra_models`` within noise of KD wherever KD is."""
    places = {(w, m) for (_, w, m) in differences} | {("test", "accuracy")}
    rows = []
    for seed in seeds:
        base = {"run_id": f"r{seed}", "seed": seed, "notebook": "04_student_distillation", "regime": regime}
        for where, metric in places:
            rows.append({**base, "split": where, "model": "kd", "metric": metric, "value": 0.5})
            for model in extra_models:
                if (model, where, metric) not in differences:
                    rows.append({**base, "split": where, "model": model, "metric": metric,
                                 "value": 0.5 + NOISE[seed % 3]})
        for (model, where, metric), values in differences.items():
            rows.append({**base, "split": where, "model": model, "metric": metric, "value": 0.5 + values[seed]})
    return pd.DataFrame(rows)


def twin(model, metric, where, better, **kw):
    return (Comparison(model, "kd", metric, where, better, "primary", **kw),
            Comparison(model, "ce", metric, where, better, "guard", **kw))


def claim(*parts, name="C-test", alpha=0.05, regime="default"):
    return Claim(name, regime, "a statement", "a result that would falsify it", tuple(parts), alpha)


# --- construction -------------------------------------------------------------

def test_bad_claims_are_config_errors_at_construction():
    ok = Part("accuracy", twin("cud", "accuracy", "test", "higher"))
    with pytest.raises(ConfigError, match="supports_if"):
        Comparison("cud", "kd", "accuracy", "test", "better")
    with pytest.raises(ConfigError, match="role"):
        Comparison("cud", "kd", "accuracy", "test", "higher", role="secondary")
    with pytest.raises(ConfigError, match="no comparisons"):
        Part("accuracy", ())
    with pytest.raises(ConfigError, match="no primary comparison"):
        claim(Part("guards", (Comparison("cud", "ce", "accuracy", "test", "higher", "guard"),)))
    with pytest.raises(ConfigError, match="no parts"):
        claim()
    for alpha in (0, 1, 1.5, -0.05, True, "0.05"):
        with pytest.raises(ConfigError, match="alpha"):
            claim(ok, alpha=alpha)
    with pytest.raises(ConfigError, match="no guard against the CE student"):
        claim(Part("accuracy", (Comparison("cud", "kd", "accuracy", "test", "higher"),)))
    with pytest.raises(ConfigError, match="falsify"):
        Claim("C-test", "default", "a statement", " ", (ok,))
    with pytest.raises(ConfigError, match="two parts of one name"):
        claim(ok, ok)
    assert claim(ok, alpha=0.1).alpha == 0.1 and isinstance(claim(ok).parts, tuple)


def test_the_study_claims_are_named_up_front_with_both_references():
    built = [*claims.study_claims(["default", "overconfident"]), *claims.long_tail_claims(),
             *claims.cardinality_claims(["default"])]
    assert {c.name for c in built} >= {"C-collapse", "C-shift", "C-cud", "C-cud (long tail)", "C-cardinality"}
    for c in built:
        assert c.falsified_by and c.statement and c.alpha == claims.FAMILY_ALPHA
        for part in c.parts:
            guards = {(g.model, g.metric, g.where) for g in part.comparisons
                      if g.role == "guard" and g.baseline == "ce"}
            for p in part.comparisons:
                if p.role == "primary" and p.baseline == "kd" and c.name != "C-cardinality":
                    assert (p.model, p.metric, p.where) in guards, (c.name, part.name, p)
    collapse = next(c for c in built if c.name == "C-collapse")
    assert {x.label for x in collapse.comparisons} == {"kd - ce"}
    assert {x.role for x in collapse.comparisons} == {"primary"}
    cud = next(c for c in built if c.name == "C-cud")
    assert [p.name for p in cud.parts] == ["accuracy", "calibration", "shift calibration", "ambiguity"]
    # the switch: calibration metrics of C-shift and C-cud after TS, accuracy and C-collapse never
    assert {x.after_ts for x in cud.comparisons if x.metric != "accuracy"} == {True}
    assert not any(x.after_ts for x in cud.comparisons if x.metric == "accuracy")
    assert not any(x.after_ts for x in collapse.comparisons)
    plain = next(c for c in claims.study_claims(["default"], after_ts=False) if c.name == "C-cud")
    assert not any(x.after_ts for x in plain.comparisons)
    assert claims.study_claims(["default"], alpha=0.01)[0].alpha == 0.01


# --- Holm ---------------------------------------------------------------------

def test_holm_by_hand():
    # m = 4. Sorted: 0.010 (x4 = 0.040), 0.012 (x3 = 0.036, raised to the running max 0.040),
    # 0.020 (x2 = 0.040), 0.200 (x1 = 0.200). Holm rejects three at 5 %; Bonferroni
    # (x4: 0.040, 0.080, 0.048, 0.800) only the first and third.
    p = [0.010, 0.020, 0.012, 0.200]
    assert claims.holm(p) == pytest.approx([0.040, 0.040, 0.040, 0.200])
    # capped at 1: 2 x 0.6 = 1.2 -> 1, then max(1, 0.7) = 1
    assert claims.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    # NaN (not tested) stays out of the family: m = 2 here
    adjusted = claims.holm([0.01, np.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.02) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert claims.holm([]).size == 0


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 12, 40):
        for _ in range(20):
            p = rng.uniform(0, 0.2, m) ** rng.uniform(0.5, 3)
            p[rng.integers(m)] = p[0]  # ties
            reject, adjusted, _, _ = multipletests(p, alpha=0.05, method="holm")
            ours = claims.holm(p)
            assert ours == pytest.approx(adjusted, abs=1e-12)
            assert ((ours < 0.05) == reject).all()


# --- outcomes -----------------------------------------------------------------

def test_p_values_and_intervals_come_from_the_paired_differences():
    from scipy import stats

    cud_acc, cud_ece = [0.010, 0.012, 0.011], [-0.010, -0.004, -0.009]
    table = claims.batch_table(fake_runs({("cud", "test", "accuracy"): cud_acc, ("cud", "test", "ece"): cud_ece},
                                         extra_models=("ce",)))
    c = claim(Part("accuracy", twin("cud", "accuracy", "test", "higher")),
              Part("calibration", twin("cud", "ece", "test", "lower")))
    evidence = claims.evaluate(table, [c]).set_index(["comparison", "metric"])
    assert (evidence["m"] == 4).all()
    row = evidence.loc[("cud - kd", "accuracy")]
    assert row["p"] == pytest.approx(stats.ttest_rel(np.add(0.5, cud_acc), [0.5] * 3).pvalue)
    # the unadjusted interval is paired_differences' 95 % interval; the Bonferroni one is at 1 - 0.05 / 4
    paired = paired_differences(table[table["severity"] == 0].drop(columns="severity"))
    ref = paired[(paired["model"] == "cud") & (paired["metric"] == "accuracy") & (paired["where"] == "test")].iloc[0]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ref["ci_low"], ref["ci_high"]))
    _, low, high, _ = t_interval(cud_acc, confidence=1 - 0.05 / 4)
    assert (row["bonferroni_low"], row["bonferroni_high"]) == pytest.approx((low, high))
    assert row["ci_low"] > row["bonferroni_low"]
    # Holm within the claim's family of four, and the outcome follows it
    assert list(evidence["p_holm"]) == pytest.approx(list(claims.holm(evidence["p"])))
    assert row["outcome"] == "supports"


def test_an_unadjusted_win_can_be_within_noise_after_holm():
    # p about 0.03 alone: "supports" at 5 % unadjusted, but not after Holm with a second, null comparison
    d = [0.010, 0.020, 0.015]
    table = claims.batch_table(fake_runs({("cud", "test", "accuracy"): d}, extra_models=("ce",)))
    evidence = claims.evaluate(table, [claim(Part("accuracy", twin("cud", "accuracy", "test", "higher")))])
    row = evidence[evidence["comparison"] == "cud - kd"].iloc[0]
    assert row["p"] < 0.05 and row["ci_low"] > 0 and row["p_holm"] >= 0.05
    assert row["outcome"] == "within noise"
    assert claims.claim_verdict(claim(Part("accuracy", twin("cud", "accuracy", "test", "higher"))),
                                evidence) == ("not supported", "within noise")


def test_one_seed_is_not_tested():
    table = claims.batch_table(fake_runs({("cud", "test", "accuracy"): [0.01]}, seeds=(0,), extra_models=("ce",)))
    c = claim(Part("accuracy", twin("cud", "accuracy", "test", "higher")))
    evidence = claims.evaluate(table, [c])
    assert evidence["outcome"].tolist() == ["not tested", "not tested"]
    assert claims.verdicts([c], evidence)["verdict"].tolist() == ["not tested"]


# --- verdicts ------------------------------------------------------------------

GOOD = [0.0300, 0.0301, 0.0302]   # consistent gain: significant even after Holm
NEUTRAL = [0.001, -0.002, 0.0015]  # within noise
BAD = [-0.0300, -0.0301, -0.0302]


def two_part_claim():
    return claim(Part("accuracy", twin("cud", "accuracy", "test", "higher")),
                 Part("ambiguity", twin("cud", "soft_nll", "mixture_0.5", "lower")))


def test_one_supporting_and_one_neutral_part_is_not_supported():
    table = claims.batch_table(fake_runs({("cud", "test", "accuracy"): GOOD,
                                          ("cud", "mixture_0.5", "soft_nll"): NEUTRAL}, extra_models=("ce",)))
    c = two_part_claim()
    evidence = claims.evaluate(table, [c])
    assert evidence.set_index(["comparison", "metric"]).loc[("cud - kd", "accuracy"), "outcome"] == "supports"
    assert claims.claim_verdict(c, evidence) == ("not supported",
                                                 "holds for accuracy; fails for ambiguity (within noise)")
    # both parts supporting: supported
    table = claims.batch_table(fake_runs({("cud", "test", "accuracy"): GOOD,
                                          ("cud", "mixture_0.5", "soft_nll"): BAD}, extra_models=("ce",)))
    assert claims.claim_verdict(c, claims.evaluate(table, [c])) == ("supported", "every part holds")


def test_beating_kd_but_worse_than_the_ce_student_is_not_supported():
    # cud beats KD by 0.03, but the CE student beats cud by 0.03 (CE at KD + 0.06)
    ce = [g * 2 for g in GOOD]
    table = claims.batch_table(fake_runs({("cud", "test", "accuracy"): GOOD, ("ce", "test", "accuracy"): ce}))
    c = claim(Part("accuracy", twin("cud", "accuracy", "test", "higher")))
    evidence = claims.evaluate(table, [c]).set_index("comparison")
    assert evidence.loc["cud - kd", "outcome"] == "supports" and evidence.loc["cud - ce", "outcome"] == "contradicts"
    assert claims.claim_verdict(c, evidence.reset_index()) == ("not supported", "worse than the CE student")


def test_a_primary_in_the_wrong_direction_is_contradicted():
    table = claims.batch_table(fake_runs({("cud", "test", "accuracy"): BAD,
                                          ("cud", "mixture_0.5", "soft_nll"): BAD}, extra_models=("ce",)))
    c = two_part_claim()
    verdict, detail = claims.claim_verdict(c, claims.evaluate(table, [c]))
    assert verdict == "contradicted"
    assert detail == "holds for ambiguity; fails for accuracy (the opposite beyond noise)"
    assert set(claims.VERDICTS) == {"supported", "not supported", "contradicted", "not tested"}
    assert claims.verdict_text(verdict, detail).startswith("contradicted: holds for")
    assert claims.verdict_text("supported", "") == "supported"


def test_a_missing_model_is_not_tested_and_an_optional_place_is_left_out():
    table = claims.batch_table(fake_runs({("cud", "test", "ece"): GOOD}, extra_models=("ce",)))
    c = claim(Part("cudp", twin("cudp", "ece", "test", "lower")),
              Part("cud", twin("cud", "ece", "test", "lower") + twin("cud", "ece", claims.NATURAL_SHIFT, "lower",
                                                                    required=False)))
    evidence = claims.evaluate(table, [c])
    assert claims.NATURAL_SHIFT not in set(evidence["where"])  # optional, absent: left out
    cudp = evidence[evidence["part"] == "cudp"]
    assert cudp["outcome"].tolist() == ["not tested"] * 2 and (cudp["n"] == 0).all()
    assert (evidence["m"] == 2).all()  # the family holds only the tested comparisons
    # GOOD is ECE higher (cud worse): the cud part is contradicted, and that outranks "not tested"
    assert claims.claim_verdict(c, evidence) == (
        "contradicted", "fails for cud (the opposite beyond noise); not tested for cudp")
    table = claims.batch_table(fake_runs({("cud", "test", "ece"): BAD}, extra_models=("ce",)))
    assert claims.claim_verdict(c, claims.evaluate(table, [c])) == ("not tested", "holds for cud; not tested for cudp")


def test_after_ts_rows_are_used_where_they_exist_and_plain_rows_otherwise():
    table = claims.batch_table(fake_runs({("cud", "test", "ece"): GOOD,                 # plain: CUD worse calibrated
                                          ("cud", "test after TS", "ece"): NEUTRAL,     # after TS: no difference
                                          ("cud", "hard_slice", "nll"): BAD},           # no after-TS rows there
                                         extra_models=("ce",)))
    switched = claim(Part("calibration", twin("cud", "ece", "test", "lower", after_ts=True)),
                     Part("ambiguity", twin("cud", "nll", "hard_slice", "lower", after_ts=True)))
    evidence = claims.evaluate(table, [switched]).set_index(["part", "comparison"])
    assert evidence.loc[("calibration", "cud - kd"), "where"] == "test after TS"
    assert evidence.loc[("calibration", "cud - kd"), "outcome"] == "within noise"
    assert evidence.loc[("ambiguity", "cud - kd"), "where"] == "hard_slice"  # the fallback
    assert evidence.loc[("ambiguity", "cud - kd"), "outcome"] == "supports"
    plain = claim(Part("calibration", twin("cud", "ece", "test", "lower")))
    row = claims.evaluate(table, [plain]).set_index("comparison").loc["cud - kd"]
    assert row["where"] == "test" and row["outcome"] == "contradicts"
    # the builders set the switch on calibration metrics only
    cud = next(c for c in claims.study_claims(["default"]) if c.name == "C-cud")
    found = claims.evaluate(table, [cud]).set_index(["part", "comparison"])
    assert found.loc[("calibration", "cud - kd"), "where"] == "test after TS"


def test_the_evidence_formats_for_display():
    table = claims.batch_table(fake_runs({("cud", "test", "accuracy"): GOOD}, extra_models=("ce",)))
    c = claim(Part("accuracy", twin("cud", "accuracy", "test", "higher")))
    shown = claims.format_evidence(claims.evaluate(table, [c]))
    assert list(shown.columns[-5:]) == ["95 % interval", "Bonferroni interval", "p", "Holm p", "outcome"]
    assert shown.loc[0, "95 % interval"] == "[+0.0299, +0.0303]" and shown.loc[0, "difference"] == "+0.0301"


# --- the long tail ---------------------------------------------------------------

def long_tail_table(overrides: dict[tuple[str, str, str], list[float]]) -> pd.DataFrame:
    """Every long-tail place for kd, ce and cud, within noise except ``overrides`` (cud - kd)."""
    places = {("cud", claims.group_where(g), m): NEUTRAL for g in claims.LONG_TAIL_GROUPS
              for m in ("accuracy", "ece", "nll")}
    places |= {("cud", "test", m): NEUTRAL for m in ("accuracy", "ece", "nll")}
    return claims.batch_table(fake_runs(places | overrides, regime="long_tail", extra_models=("ce",)))


def test_long_tail_supported_needs_the_few_shot_gain_and_no_loss_elsewhere():
    few = claims.group_where("few")
    gain = {("cud", few, "accuracy"): GOOD, ("cud", few, "ece"): BAD, ("cud", few, "nll"): BAD}
    c = claims.long_tail_claims(models=("cud",))[0]
    assert c.name == "C-cud (long tail)" and c.regime == "long_tail"
    assert [p.name for p in c.parts] == ["few-shot accuracy", "few-shot calibration", "many-shot classes",
                                         "medium-shot classes", "whole test set"]
    assert len(c.comparisons) == 24
    evidence = claims.evaluate(long_tail_table(gain), [c])
    assert claims.claim_verdict(c, evidence) == ("supported", "every part holds")
    # a medium-shot accuracy loss beyond noise sinks it
    loss = gain | {("cud", claims.group_where("medium"), "accuracy"): BAD}
    evidence = claims.evaluate(long_tail_table(loss), [c])
    verdict, detail = claims.claim_verdict(c, evidence)
    assert verdict == "not supported"
    assert detail.endswith("fails for medium-shot classes (worse than KD)")
    # and without the few-shot accuracy gain it is not supported either
    evidence = claims.evaluate(long_tail_table({**gain, ("cud", few, "accuracy"): NEUTRAL}), [c])
    assert claims.claim_verdict(c, evidence)[1].endswith("fails for few-shot accuracy (within noise)")
    # the other students are claims of their own; absent ones are not tested, not invented
    others = claims.long_tail_claims()
    assert [o.name for o in others] == ["C-cud (long tail)", "C-cud (long tail, cudp)",
                                        "C-cud (long tail, cudp_xfit)", "C-cud (long tail, kd_ts)"]
    table = long_tail_table(gain)
    assert claims.verdicts(others, claims.evaluate(table, others))["verdict"].tolist() == \
        ["supported", "not tested", "not tested", "not tested"]


# --- the batch table -------------------------------------------------------------

def test_shift_mean_averages_severities_within_each_run():
    rows = []
    for seed in (0, 1):
        for severity in (0, 1, 2, 3, 4, 5):
            condition = "clean" if severity == 0 else "corruption_mean"
            rows.append({"run_id": f"r{seed}", "seed": seed, "regime": "default", "condition": condition,
                         "severity": severity, "model": "kd", "metric": "ece", "value": severity / 10 + seed})
    table = claims.batch_table(pd.DataFrame(rows))
    mean = table[table["where"] == claims.SHIFT_MEAN].set_index("seed")["value"]
    assert mean.loc[0] == pytest.approx(0.3) and mean.loc[1] == pytest.approx(1.3)


def test_natural_shift_rows_exist_only_for_runs_with_in_distribution_scores():
    rows = []
    for seed in (0, 1, 2):
        for model, seen, held in (("kd", 0.02, 0.10), ("ce", 0.02, 0.10 + 0.001 * seed),
                                  ("cudp", 0.03, 0.06 + 0.001 * seed)):
            for condition, value in (("in_distribution", seen), ("clean", held)):
                rows.append({"run_id": f"r{seed}", "seed": seed, "regime": "default", "condition": condition,
                             "severity": 0, "model": model, "metric": "ece", "value": value + seed / 100})
    table = claims.batch_table(pd.DataFrame(rows))
    change = table[table["where"] == claims.NATURAL_SHIFT_CHANGE].set_index(["seed", "model"])["value"]
    assert change.loc[(1, "kd")] == pytest.approx(0.08) and change.loc[(2, "cudp")] == pytest.approx(0.032)
    held = table[table["where"] == claims.NATURAL_SHIFT].set_index(["seed", "model"])["value"]
    assert held.loc[(0, "kd")] == pytest.approx(0.10)
    shift = next(c for c in claims.study_claims(["default"]) if c.name == "C-shift")
    evidence = claims.evaluate(table, [shift])
    natural = evidence[evidence["where"] == claims.NATURAL_SHIFT].set_index("comparison")
    assert natural.loc["cudp - kd", "outcome"] == "supports" and natural.loc["cudp - kd", "n"] == 3
    # a batch without in-distribution scores (Fashion-MNIST) gains no rows and no natural-shift comparisons
    plain = claims.batch_table(pd.DataFrame([r for r in rows if r["condition"] == "clean"]))
    assert not plain["where"].isin([claims.NATURAL_SHIFT, claims.NATURAL_SHIFT_CHANGE]).any()
    assert claims.NATURAL_SHIFT not in set(claims.evaluate(plain, [shift])["where"])


def test_missing_batch_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        claims.batch_root("nope", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no finished runs"):
        claims.batch_root("empty", tmp_path)


# --- C-cardinality ------------------------------------------------------------------

def _finished_run(root, name, dataset):
    from calibkd.runs.store import FINISHED, runs_dir

    folder = runs_dir(root) / name
    folder.mkdir(parents=True)
    (folder / "parameters.yaml").write_text(yaml.safe_dump({"parameters": {"dataset": dataset, "seed": 0}}))
    (folder / FINISHED).write_text("{}")


def test_cardinality_verdict_reads_one_batch_or_several(tmp_path):
    fmnist, glyphs = tmp_path / "reference-fmnist", tmp_path / claims.CARDINALITY_BATCH
    _finished_run(fmnist, "a", "fashion_mnist")
    only_low = claims.cardinality_verdict(fmnist).iloc[0].to_dict()
    assert only_low == {"claim": "C-cardinality", "regime": "all", "verdict": "not tested",
                        "detail": "no dataset with >= 100 classes in the batch (fashion_mnist)"}
    # a glyph batch that does not exist or has no finished runs changes nothing
    assert claims.cardinality_verdict([fmnist, glyphs]).iloc[0].to_dict() == only_low
    (glyphs / "runs").mkdir(parents=True)
    assert claims.cardinality_verdict([fmnist, glyphs]).iloc[0].to_dict() == only_low
    _finished_run(glyphs, "b", "glyphs")
    assert "no dataset with < 100 classes next to glyphs" in claims.cardinality_verdict(glyphs).iloc[0]["detail"]
    both = claims.cardinality_verdict([fmnist, glyphs]).iloc[0]["detail"]
    assert both == "no contrast of chapter 04 is in the runs of both glyphs and fashion_mnist"
    assert claims.batch_datasets(fmnist) | claims.batch_datasets(glyphs) == {"fashion_mnist", "glyphs"}


def test_welch_interval_matches_scipy():
    from scipy import stats

    from calibkd.runs.results import welch_interval

    a, b = [0.1, 0.4, 0.35, 0.2], [0.05, 0.02, 0.11]
    diff, low, high, _ = welch_interval(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert np.isnan(welch_interval([0.1], b)[1])


def test_cardinality_compares_per_seed_effects_across_datasets_with_holm():
    from scipy import stats

    from calibkd.runs.results import welch_interval

    low_ts, high_ts = [-0.010, -0.012, -0.011], [-0.050, -0.055, -0.052]
    low = claims.batch_table(fake_runs({("kd_ts", "test", "ece"): low_ts,
                                        ("cud", "test", "accuracy"): [0.0, 0.001, -0.001]}))
    high = claims.batch_table(fake_runs({("kd_ts", "test", "ece"): high_ts,      # helps far more
                                         ("cud", "test", "accuracy"): [0.002, -0.002, 0.001]}))  # same
    evidence = claims.cardinality_evidence(low, high, "fashion_mnist", "glyphs").set_index(["comparison", "metric"])
    row = evidence.loc[("kd_ts - kd", "ece")]
    assert row["difference"] == pytest.approx(-0.052333 - (-0.011), abs=1e-5)
    assert row["p"] == pytest.approx(stats.ttest_ind(high_ts, low_ts, equal_var=False).pvalue)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(welch_interval(high_ts, low_ts)[1:3])
    assert (evidence["m"] == 2).all() and row["p_holm"] == pytest.approx(min(1, 2 * row["p"]))
    assert row["outcome"] == "supports"
    assert evidence.loc[("cud - kd", "accuracy"), "outcome"] == "within noise"
    assert ("cudp - kd", "ece") not in evidence.index  # no CUD-P rows: not invented
    claim_ = claims.cardinality_claims(["default"])[0]
    verdict, detail = claims.claim_verdict(claim_, evidence.reset_index())
    assert verdict == "not supported" and "fails for CUD (within noise)" in detail
    assert "not tested for KD's cost" in detail


def test_an_overconfident_regime_counts_only_where_every_run_passes_its_regime_check():
    """A claim about overconfident teachers is "not tested" when the runs carry
    no regime check (made before it existed) or when any run's teacher was
    not overconfident on the students' views (brief section 3b)."""
    differences = {("ce", "test", "accuracy"): [0.05, 0.06, 0.055], ("ce", "test", "nll"): [-0.1, -0.12, -0.11]}
    raw = fake_runs(differences, regime="overconfident")
    collapse = claims.collapse_claims(["overconfident"])
    table = claims.batch_table(raw)
    evidence = claims.evaluate(table, collapse)
    unchecked = claims.verdicts(collapse, evidence, table).iloc[0]
    assert unchecked["verdict"] == "not tested" and "no regime check" in unchecked["detail"]
    assert claims.verdicts(collapse, evidence).iloc[0]["verdict"] == "supported"  # without the table: no gate

    def checked(values):
        rows = [{"run_id": f"r{s}", "seed": s, "notebook": "04_student_distillation", "regime": "overconfident",
                 "split": "regime check", "model": "teacher", "metric": "overconfident", "value": v}
                for s, v in enumerate(values)]
        return claims.batch_table(pd.concat([raw, pd.DataFrame(rows)], ignore_index=True))

    passed = checked([1.0, 1.0, 1.0])
    assert claims.verdicts(collapse, claims.evaluate(passed, collapse), passed).iloc[0]["verdict"] == \
        claims.verdicts(collapse, evidence).iloc[0]["verdict"]
    failed = checked([1.0, 0.0, 1.0])
    row = claims.verdicts(collapse, claims.evaluate(failed, collapse), failed).iloc[0]
    assert row["verdict"] == "not tested" and "1 of 3 runs" in row["detail"]
    # other regimes need no check
    default = claims.batch_table(fake_runs(differences))
    default_claims = claims.collapse_claims(["default"])
    assert claims.regime_check_status(default, "default") == (True, "")
    assert claims.verdicts(default_claims, claims.evaluate(default, default_claims), default).iloc[0]["verdict"] != \
        "not tested"
