"""Mixtures with soft truth, the hard slice, long-tail subsets, and the one
evaluation entry point."""

from __future__ import annotations

import pytest
import torch

from calibkd import metrics
from calibkd.data.subsets import long_tail_counts, long_tail_subset
from calibkd.evaluation import shift
from calibkd.nn.models import build_model


def test_long_tail_counts_follow_the_formula():
    counts = long_tail_counts(5000, 10, 100)
    assert counts[0] == 5000 and counts[-1] == 50
    assert counts == [int(5000 * 100 ** (-i / 9)) for i in range(10)]
    assert long_tail_counts(500, 100, 10)[-1] == 50
    assert long_tail_counts(100, 5, 1) == [100] * 5


@pytest.mark.parametrize("ratio", [0.5, -1, True])
def test_imbalance_ratio_below_one(ratio):
    with pytest.raises(ValueError, match="imbalance_ratio"):
        long_tail_counts(100, 10, ratio)


def test_long_tail_subset_has_the_counts_and_a_seeded_order(tiny_splits):
    lt = long_tail_subset(tiny_splits.train, 10, 10, seed=1)
    observed = torch.bincount(lt.split.labels, minlength=10).tolist()
    assert observed == [lt.counts[c] for c in range(10)]
    smallest_class = int(torch.bincount(tiny_splits.train.labels, minlength=10).min())
    assert sorted(observed, reverse=True) == long_tail_counts(smallest_class, 10, 10)
    assert sorted(lt.class_order) == list(range(10))
    assert lt.class_order == long_tail_subset(tiny_splits.train, 10, 10, seed=1).class_order
    assert lt.class_order != long_tail_subset(tiny_splits.train, 10, 10, seed=2).class_order
    grouped = sorted(c for g in lt.groups.values() for c in g)
    assert grouped == list(range(10))
    assert lt.groups["many"] and not lt.groups["few"]  # ratio 10: the smallest class has 10 % of the largest


def test_shot_groups_at_ratio_100():
    """CIFAR-100-LT thresholds, as fractions of the largest class: many > 20 %, few < 4 %."""
    from calibkd.data.splits import Split
    labels = torch.arange(10).repeat_interleave(1000)
    lt = long_tail_subset(Split(torch.zeros(10_000, 1, 1, 1), labels), 10, 100, seed=0)
    by_rank = [lt.class_order[i] for i in range(10)]
    assert [lt.counts[c] for c in by_rank] == long_tail_counts(1000, 10, 100)
    assert lt.groups["many"] == sorted(by_rank[:4])     # 1000, 599, 359, 215
    assert lt.groups["medium"] == sorted(by_rank[4:7])  # 129, 77, 46
    assert lt.groups["few"] == sorted(by_rank[7:])      # 27, 16, 10


def test_group_scores(tiny_splits):
    probs = torch.full((len(tiny_splits.test), 10), 0.1, dtype=torch.float64)
    table = shift.group_scores(probs, tiny_splits.test.labels, {"many": [0, 1], "few": [2], "medium": []})
    assert set(table.group) == {"many", "few"}
    assert set(table.metric) == {"accuracy", "ece", "nll"}


def test_mixtures_have_soft_truth_that_sums_to_one(tiny_splits):
    mixed = shift.mixtures(tiny_splits.test, 10, 0.7, 50, seed=0)
    assert torch.allclose(mixed.distributions.sum(1), torch.ones(50, dtype=torch.float64))
    assert torch.allclose(mixed.distributions.max(1).values, torch.full((50,), 0.7, dtype=torch.float64))
    assert ((mixed.distributions > 0).sum(1) == 2).all()  # two different classes
    assert torch.equal(mixed.images, shift.mixtures(tiny_splits.test, 10, 0.7, 50, seed=0).images)


@pytest.mark.parametrize("lam", [-0.1, 1.5])
def test_mixing_weight_out_of_range(tiny_splits, lam):
    with pytest.raises(ValueError, match="mixing weight"):
        shift.mixtures(tiny_splits.test, 10, lam, 5)


def test_soft_label_scores_hand_worked():
    truth = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    same = shift.soft_label_scores(truth.clone(), truth)
    assert same["soft_kl"] == pytest.approx(0.0, abs=1e-9) and same["soft_tv"] == 0.0
    pred = torch.tensor([[0.25, 0.5, 0.25]], dtype=torch.float64)
    scores = shift.soft_label_scores(pred, truth)
    assert scores["soft_kl"] == pytest.approx(0.5 * torch.log(torch.tensor(2.0)).item())
    assert scores["soft_tv"] == pytest.approx(0.25)


def test_soft_labelled_rejects_non_distributions():
    with pytest.raises(ValueError, match="probability vector"):
        shift.SoftLabelled(torch.zeros(2, 1, 4, 4), torch.tensor([[0.5, 0.6], [1.0, 0.0]]))


def test_hard_slice_picks_the_highest_entropy():
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.9, 0.1], [0.6, 0.4]], dtype=torch.float64)
    assert shift.hard_slice(probs, 0.5).tolist() == [1, 3]
    with pytest.raises(ValueError, match="fraction"):
        shift.hard_slice(probs, 0.0)


def test_in_distribution_inputs_are_scored_and_summarised_as_a_natural_shift(tiny_splits):
    """With ``iid_test`` (glyphs: new images of the training fonts) the suite
    adds an ``in_distribution`` condition, and ``natural_shift_summary`` lays
    it beside the held-out test split and the corruption mean."""
    from dataclasses import replace

    from calibkd.nn.inference import predict_logits
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 10, width=4).eval()
    suite = shift.Suite(corruptions=("gaussian_noise", "fog"), severities=(1, 5), mixture_count=40, test_size=150)
    plain = shift.evaluate_suite(model, tiny_splits, suite)
    assert "in_distribution" not in set(plain.condition) and shift.natural_shift_summary(plain).empty
    data = replace(tiny_splits, iid_test=tiny_splits.val)
    table = shift.evaluate_suite({"m": model}, data, suite)
    seen = tiny_splits.val.subset(150, suite.seed)
    direct = metrics.evaluate(metrics.softmax(predict_logits(model, seen.images)), seen.labels)
    got = table[table.condition == "in_distribution"].set_index("metric").value
    assert (table[table.condition == "in_distribution"].severity == 0).all()
    assert got["accuracy"] == pytest.approx(direct["accuracy"]) and got["ece"] == pytest.approx(direct["ece"])
    summary = shift.natural_shift_summary(table)
    assert list(summary.index) == ["m"]
    clean = table[table.condition == "clean"].set_index("metric").value
    corrupted = table[(table.condition.isin(["gaussian_noise", "fog"]))].groupby("metric").value.mean()
    for metric in ("accuracy", "nll", "ece"):
        assert summary.loc["m", ("in distribution", metric)] == pytest.approx(got[metric])
        assert summary.loc["m", ("held-out test", metric)] == pytest.approx(clean[metric])
        assert summary.loc["m", ("natural shift (held-out - in distribution)", metric)] == \
            pytest.approx(clean[metric] - got[metric])
        assert summary.loc["m", ("corruptions (mean)", metric)] == pytest.approx(corrupted[metric])


@pytest.mark.parametrize("kwargs,message", [
    ({"corruptions": ("rain",)}, "allowed corruptions"),
    ({"severities": (0, 6)}, "outside 1-5"),
    ({"mixture_lambdas": (1.2,)}, "mixing weight"),
    ({"hard_fraction": 2.0}, "hard_fraction"),
])
def test_suite_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        shift.Suite(**kwargs)


def test_evaluate_suite_returns_a_tidy_table(tiny_splits):
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 10, width=4).eval()
    suite = shift.Suite(corruptions=("gaussian_noise", "fog"), severities=(1, 5), mixture_count=40)
    table = shift.evaluate_suite(model, tiny_splits, suite)
    assert list(table.columns) == ["model", "condition", "severity", "metric", "value"]
    assert set(table.condition) == {"clean", "gaussian_noise", "fog", "corruption_mean", "mixture_0.5",
                                     "mixture_0.7", "hard_slice"}
    assert set(metrics.ESTIMATORS) <= set(table[table.condition == "fog"].metric)
    assert sorted(table[table.condition == "corruption_mean"].severity.unique()) == [1, 5]
    assert table.value.notna().all()
    from calibkd.nn.inference import predict_logits
    again = shift.evaluate_suite(lambda x: predict_logits(model, x), tiny_splits, suite)
    assert table.equals(again)
    both = shift.evaluate_suite({"a": model, "b": model}, tiny_splits, suite)
    assert set(both.model) == {"a", "b"}
    a = both[both.model == "a"].drop(columns="model").reset_index(drop=True)
    b = both[both.model == "b"].drop(columns="model").reset_index(drop=True)
    assert a.equals(b)


def test_after_ts_rows_rescale_each_models_logits_and_the_hard_slice_is_shared(tiny_splits):
    from calibkd.nn.inference import predict_logits

    torch.manual_seed(0)
    a, b, ref = (build_model("small_cnn", 1, 10, width=4).eval() for _ in range(3))
    suite = shift.Suite(corruptions=("gaussian_noise", "fog"), severities=(1, 5), mixture_count=40)
    table = shift.evaluate_suite({"a": a, "b": b}, tiny_splits, suite, reference=ref, temperatures={"a": 2.0})
    after = {c for c in set(table.condition) if c.endswith(shift.AFTER_TS)}
    assert after == {"clean after TS", "mixture_0.5 after TS", "mixture_0.7 after TS", "hard_slice after TS",
                     "corruption_mean after TS"}  # per-corruption rows are folded into their mean
    assert set(table[table.condition.isin(after)].model) == {"a"}

    def value(model, condition, metric):
        row = table[(table.model == model) & (table.condition == condition) & (table.metric == metric)]
        return float(row.value.iloc[0])

    labels = tiny_splits.test.labels
    logits_a = predict_logits(a, tiny_splits.test.images)
    assert value("a", "clean after TS", "nll") == pytest.approx(metrics.nll(metrics.softmax(logits_a, 2.0), labels))
    # one hard slice for every model: the reference's highest-entropy images
    hard = shift.hard_slice(metrics.softmax(predict_logits(ref, tiny_splits.test.images)), suite.hard_fraction)
    for model, net in (("a", a), ("b", b)):
        probs = metrics.softmax(predict_logits(net, tiny_splits.test.images))
        assert value(model, "hard_slice", "nll") == pytest.approx(metrics.nll(probs[hard], labels[hard]))
    assert value("a", "hard_slice after TS", "nll") == pytest.approx(
        metrics.nll(metrics.softmax(logits_a, 2.0)[hard], labels[hard]))
    with pytest.raises(ValueError, match="not scored"):
        shift.evaluate_suite({"a": a}, tiny_splits, suite, temperatures={"c": 1.0})
