"""Tests of csmile.metrics against hand-derived cases, naive twins and scikit-learn."""

import itertools
import json

import numpy as np
import pytest

from csmile import metrics


def naive_auc(y_true, scores):
    """Mann-Whitney AUC by comparing every positive with every negative."""
    positives = [s for s, y in zip(scores, y_true) if y == 1]
    negatives = [s for s, y in zip(scores, y_true) if y == 0]
    total = 0.0
    for positive, negative in itertools.product(positives, negatives):
        if positive > negative:
            total += 1.0
        elif positive == negative:
            total += 0.5
    return total / (len(positives) * len(negatives))


def naive_balanced_accuracy(y_true, y_pred):
    recalls = []
    for label in (0, 1):
        members = [p for t, p in zip(y_true, y_pred) if t == label]
        if members:
            recalls.append(sum(p == label for p in members) / len(members))
    return sum(recalls) / len(recalls)


def random_case(rng, n_samples, n_levels=None):
    y_true = rng.integers(0, 2, size=n_samples)
    y_true[:2] = (0, 1)
    scores = rng.random(n_samples) + 0.3 * y_true
    if n_levels is not None:
        scores = np.round(scores * n_levels) / n_levels
    return y_true, scores


# ---------------------------------------------------------------------------
# Label metrics
# ---------------------------------------------------------------------------


def test_accuracy_hand_case():
    assert metrics.accuracy([0, 1, 1, 0, 1], [0, 1, 0, 0, 0]) == pytest.approx(3 / 5)


def test_accuracy_accepts_booleans():
    assert metrics.accuracy([False, True], [True, True]) == pytest.approx(0.5)


def test_confusion_table_hand_case():
    table = metrics.confusion_table([0, 0, 1, 1, 1], [0, 1, 1, 1, 0])
    assert table.tolist() == [[1, 1], [1, 2]]


def test_confusion_table_single_class():
    table = metrics.confusion_table([1, 1, 1], [1, 1, 1])
    assert table.tolist() == [[0, 0], [0, 3]]


def test_balanced_accuracy_hand_case():
    # Recall of class 0 is 2/3 and of class 1 is 1, so the mean is 5/6.
    assert metrics.balanced_accuracy([0, 0, 0, 1], [0, 0, 1, 1]) == pytest.approx(5 / 6)


def test_balanced_accuracy_single_class_is_accuracy():
    assert metrics.balanced_accuracy([0, 0, 0, 0], [0, 1, 0, 0]) == pytest.approx(3 / 4)


@pytest.mark.parametrize("n_samples", [1, 7, 200])
def test_balanced_accuracy_naive_twin(rng, n_samples):
    y_true = rng.integers(0, 2, size=n_samples)
    y_pred = rng.integers(0, 2, size=n_samples)
    expected = naive_balanced_accuracy(y_true.tolist(), y_pred.tolist())
    assert metrics.balanced_accuracy(y_true, y_pred) == pytest.approx(expected)


@pytest.mark.parametrize(
    "y_true, y_pred, message",
    [
        ([0, 1, 2], [0, 1, 1], "only the labels 0 and 1"),
        ([0, 1], [0, 1, 1], "same length"),
        ([[0, 1]], [[0, 1]], "1-D"),
        (["a", "b"], [0, 1], "0/1 or boolean"),
        ([], [], "empty"),
    ],
    ids=["label-2", "length", "2-d", "strings", "empty"],
)
def test_label_metrics_invalid_input(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        metrics.accuracy(y_true, y_pred)


def test_label_metrics_do_not_modify_input():
    y_true = np.array([0, 1, 1])
    y_pred = np.array([True, False, True])
    y_true.setflags(write=False)
    y_pred.setflags(write=False)
    metrics.balanced_accuracy(y_true, y_pred)
    assert y_true.tolist() == [0, 1, 1]


# ---------------------------------------------------------------------------
# ROC curve and AUC
# ---------------------------------------------------------------------------


def test_roc_curve_hand_case():
    # Sorted by score: 0.8 (pos), 0.4 (neg), 0.35 (pos), 0.1 (neg).
    fpr, tpr, thresholds = metrics.roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert thresholds.tolist() == [np.inf, 0.8, 0.4, 0.35, 0.1]


def test_roc_curve_ties_move_together():
    # Score 0.5 belongs to one positive and one negative, so the curve takes one diagonal step.
    fpr, tpr, thresholds = metrics.roc_curve([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1])
    assert thresholds.tolist() == [np.inf, 0.9, 0.5, 0.1]
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]


def test_roc_curve_order_invariant(rng):
    y_true, scores = random_case(rng, 60, n_levels=5)
    order = rng.permutation(60)
    first = metrics.roc_curve(y_true, scores)
    second = metrics.roc_curve(y_true[order], scores[order])
    for first_array, second_array in zip(first, second):
        np.testing.assert_array_equal(first_array, second_array)


def test_roc_auc_hand_case_with_tie():
    # Pairs (positive, negative): (0.2, 0.2) tie = 1/2, the other three are wins.
    assert metrics.roc_auc([0, 1, 0, 1], [0.2, 0.2, 0.1, 0.9]) == pytest.approx(3.5 / 4)


def test_roc_auc_all_tied_is_half():
    assert metrics.roc_auc([0, 1, 1, 0, 1], [0.3] * 5) == pytest.approx(0.5)


def test_roc_auc_perfect_and_reversed():
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    assert metrics.roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.0)


@pytest.mark.parametrize("n_levels", [None, 3, 10], ids=["continuous", "3-levels", "10-levels"])
@pytest.mark.parametrize("n_samples", [2, 9, 150])
def test_roc_auc_mann_whitney_twin(rng, n_samples, n_levels):
    y_true, scores = random_case(rng, n_samples, n_levels)
    expected = naive_auc(y_true.tolist(), scores.tolist())
    assert metrics.roc_auc(y_true, scores) == pytest.approx(expected, abs=1e-12)


def test_roc_auc_integer_scores():
    assert metrics.roc_auc([0, 1, 0, 1], [1, 3, 2, 3]) == pytest.approx(1.0)


@pytest.mark.parametrize("y_true", [[0, 0, 0], [1, 1]], ids=["negatives", "positives"])
def test_roc_auc_single_class_raises(y_true):
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_auc(y_true, np.linspace(0, 1, len(y_true)))


@pytest.mark.parametrize(
    "scores, message",
    [
        ([0.1, np.nan, 0.3], "NaN"),
        ([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], "column 1"),
        (["a", "b", "c"], "real numbers"),
        ([0.1, 0.2], "same length"),
    ],
    ids=["nan", "2-d", "strings", "length"],
)
def test_roc_auc_invalid_scores(scores, message):
    with pytest.raises(ValueError, match=message):
        metrics.roc_auc([0, 1, 1], scores)


# ---------------------------------------------------------------------------
# Best threshold
# ---------------------------------------------------------------------------


def test_best_threshold_hand_case():
    # Scores 0.6 and 0.7 are the positives, so any threshold in (0.2, 0.6] separates them.
    threshold = metrics.best_threshold([0, 0, 1, 1], [0.1, 0.2, 0.6, 0.7])
    assert threshold == pytest.approx(0.4)


def test_best_threshold_tie_takes_highest():
    # Ranking by score: 0.9 neg, 0.8 pos, 0.7 neg, 0.6 pos. The candidates give
    # balanced accuracies 0.25, 0.5, 0.25 and 0.5, so 0.8 wins the tie.
    threshold = metrics.best_threshold([0, 1, 0, 1], [0.9, 0.8, 0.7, 0.6])
    assert threshold == pytest.approx((0.8 + 0.7) / 2)


def test_best_threshold_all_positive():
    # Only predicting every sample positive reaches 0.5, so the lowest score is returned.
    threshold = metrics.best_threshold([0, 1, 1], [0.9, 0.5, 0.4])
    assert threshold == pytest.approx(0.4)


@pytest.mark.parametrize("n_levels", [None, 4])
def test_best_threshold_is_maximum(rng, n_levels):
    y_true, scores = random_case(rng, 120, n_levels)
    threshold = metrics.best_threshold(y_true, scores)
    best = metrics.balanced_accuracy(y_true, scores >= threshold)

    candidates = np.unique(scores)
    every = [metrics.balanced_accuracy(y_true, scores >= candidate) for candidate in candidates]
    assert best == pytest.approx(max(every))


def test_best_threshold_between_scores(rng):
    y_true, scores = random_case(rng, 80)
    threshold = metrics.best_threshold(y_true, scores)
    assert not np.any(scores == threshold)


# ---------------------------------------------------------------------------
# Agreement with scikit-learn
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_levels", [None, 5])
def test_metrics_match_sklearn(rng, n_levels):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    y_true, scores = random_case(rng, 300, n_levels)
    y_pred = (scores >= 0.6).astype(int)

    assert metrics.accuracy(y_true, y_pred) == pytest.approx(sklearn_metrics.accuracy_score(y_true, y_pred))
    assert metrics.balanced_accuracy(y_true, y_pred) == pytest.approx(
        sklearn_metrics.balanced_accuracy_score(y_true, y_pred)
    )
    np.testing.assert_array_equal(
        metrics.confusion_table(y_true, y_pred), sklearn_metrics.confusion_matrix(y_true, y_pred, labels=[0, 1])
    )
    assert metrics.roc_auc(y_true, scores) == pytest.approx(sklearn_metrics.roc_auc_score(y_true, scores))


@pytest.mark.parametrize("n_levels", [None, 5])
def test_roc_curve_matches_sklearn(rng, n_levels):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    y_true, scores = random_case(rng, 200, n_levels)
    fpr, tpr, thresholds = metrics.roc_curve(y_true, scores)
    expected_fpr, expected_tpr, expected_thresholds = sklearn_metrics.roc_curve(
        y_true, scores, drop_intermediate=False
    )
    np.testing.assert_allclose(fpr, expected_fpr)
    np.testing.assert_allclose(tpr, expected_tpr)
    # scikit-learn before 1.3 used max(score) + 1 in place of inf for the first threshold.
    np.testing.assert_allclose(thresholds[1:], expected_thresholds[1:])


# ---------------------------------------------------------------------------
# Evaluation report
# ---------------------------------------------------------------------------


@pytest.fixture
def hand_report():
    # Predictions at 0.5: [0, 1, 0, 1, 0]; confusion [[2, 1], [1, 1]].
    return metrics.evaluate_scores([0, 0, 0, 1, 1], [0.1, 0.6, 0.2, 0.8, 0.3], threshold=0.5)


def test_report_hand_metrics(hand_report):
    assert hand_report.accuracy == pytest.approx(3 / 5)
    assert hand_report.balanced_accuracy == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert hand_report.roc_auc == pytest.approx(5 / 6)
    assert hand_report.confusion.tolist() == [[2, 1], [1, 1]]
    assert hand_report.n_samples == 5


def test_report_hand_best_threshold(hand_report):
    # Predicting 0.8, 0.6 and 0.3 as positive gives recalls 1 and 2/3.
    assert hand_report.best_threshold == pytest.approx(0.25)
    assert hand_report.best_balanced_accuracy == pytest.approx(5 / 6)


def test_report_per_class_counts(hand_report):
    not_smiling, smiling = hand_report.per_class()
    assert (not_smiling["n_predicted"], not_smiling["n_correct"], not_smiling["n_true"]) == (3, 2, 3)
    assert (smiling["n_predicted"], smiling["n_correct"], smiling["n_true"]) == (2, 1, 2)
    assert smiling["precision"] == pytest.approx(1 / 2)
    assert not_smiling["recall"] == pytest.approx(2 / 3)


def test_report_text_table(hand_report):
    lines = hand_report.to_text().splitlines()
    smiling_row = next(line for line in lines if line.startswith("smiling"))
    not_smiling_row = next(line for line in lines if line.startswith("not smiling"))
    assert smiling_row.split()[1:4] == ["2", "1", "2"]
    assert not_smiling_row.split()[2:5] == ["3", "2", "3"]


def test_report_text_metrics(hand_report):
    text = hand_report.to_text()
    assert "accuracy           0.6000" in text
    assert "ROC AUC            0.8333" in text
    assert "best threshold     0.25" in text


def test_report_dict_is_json(hand_report):
    document = json.loads(json.dumps(hand_report.to_dict()))
    assert document["confusion"] == [[2, 1], [1, 1]]
    assert document["class_names"] == ["not smiling", "smiling"]
    assert document["roc_auc"] == pytest.approx(5 / 6)


def test_report_threshold_inclusive():
    report = metrics.evaluate_scores([0, 1], [0.2, 0.5], threshold=0.5)
    assert report.confusion.tolist() == [[1, 0], [0, 1]]


def test_report_single_class():
    report = metrics.evaluate_scores([1, 1, 1], [0.9, 0.2, 0.7])
    assert report.roc_auc is None
    assert report.best_threshold is None
    assert "n/a" in report.to_text()
    assert json.loads(json.dumps(report.to_dict()))["roc_auc"] is None


def test_report_no_predictions_of_class():
    report = metrics.evaluate_scores([0, 1, 1], [0.1, 0.2, 0.3], threshold=0.9)
    smiling = report.per_class()[1]
    assert smiling["n_predicted"] == 0
    assert smiling["precision"] is None


def test_report_custom_class_names():
    report = metrics.evaluate_scores([0, 1], [0.2, 0.9], class_names=("neutral", "happy"))
    assert "happy" in report.to_text()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": float("nan")}, "NaN"),
        ({"class_names": ("a", "b", "c")}, "two names"),
    ],
    ids=["nan-threshold", "three-names"],
)
def test_report_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        metrics.evaluate_scores([0, 1], [0.2, 0.9], **kwargs)
