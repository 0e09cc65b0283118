"""Metrics for a binary classifier, in NumPy only.

Labels are encoded as 0 (negative, "not smiling") and 1 (positive,
"smiling"); booleans are accepted as well. Scores are any real numbers where a
higher value means "more likely positive", such as column 1 of
``SmileNet.predict_proba``. A score at or above the threshold is predicted
positive, the same rule that :func:`evaluate_scores` and
:func:`best_threshold` use.
"""

from dataclasses import dataclass, field

import numpy as np

DEFAULT_CLASS_NAMES = ("not smiling", "smiling")


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def _as_binary_labels(values, name):
    """Return ``values`` as a 1-D int64 array of 0 and 1, or raise ValueError."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D with one label per sample; got an array of shape {array.shape}."
        )
    if array.dtype == bool:
        return array.astype(np.int64)
    if array.size == 0:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"{name} must contain 0/1 or boolean labels; got dtype {array.dtype}. "
            "Encode the positive class as 1 and the negative class as 0."
        )
    invalid = ~np.isin(array, (0, 1))
    if invalid.any():
        examples = np.unique(array[invalid])[:5].tolist()
        raise ValueError(
            f"{name} must contain only the labels 0 and 1; got {examples}. "
            "Encode the positive class as 1 and the negative class as 0."
        )
    return array.astype(np.int64)


def _as_scores(values, name="scores"):
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D with one score per sample; got an array of shape {array.shape}. "
            "For predict_proba output, pass column 1 (the positive class)."
        )
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must be real numbers; got dtype {array.dtype}.")
    array = array.astype(np.float64)
    if np.isnan(array).any():
        raise ValueError(
            f"{name} contains {int(np.isnan(array).sum())} NaN values; a score must be a number."
        )
    return array


def _check_same_length(first, second, first_name, second_name):
    if first.shape[0] != second.shape[0]:
        raise ValueError(
            f"{first_name} and {second_name} must have the same length; "
            f"got {first.shape[0]} and {second.shape[0]}."
        )
    if first.shape[0] == 0:
        raise ValueError(f"{first_name} is empty; at least one sample is required.")


def _check_both_classes(y_true, metric_name):
    n_positive = int(y_true.sum())
    if n_positive == 0 or n_positive == y_true.shape[0]:
        present = int(y_true[0])
        raise ValueError(
            f"{metric_name} needs samples of both classes in y_true, but every sample has label {present}."
        )


# ---------------------------------------------------------------------------
# Metrics on labels
# ---------------------------------------------------------------------------


def accuracy(y_true, y_pred):
    """Return the fraction of samples whose predicted label equals the true label.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Labels encoded as 0/1 or booleans.

    Returns
    -------
    float

    Examples
    --------
    >>> accuracy([0, 1, 1, 0], [0, 1, 0, 0])
    0.75
    """
    y_true = _as_binary_labels(y_true, "y_true")
    y_pred = _as_binary_labels(y_pred, "y_pred")
    _check_same_length(y_true, y_pred, "y_true", "y_pred")
    return float(np.mean(y_true == y_pred))


def confusion_table(y_true, y_pred):
    """Count the samples per (true class, predicted class) pair.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Labels encoded as 0/1 or booleans.

    Returns
    -------
    ndarray of shape (2, 2), dtype int64
        Entry ``[i, j]`` is the number of samples of true class ``i``
        predicted as class ``j``: rows are true classes, columns predicted
        classes, class 0 first.

    Examples
    --------
    >>> confusion_table([0, 0, 1, 1, 1], [0, 1, 1, 1, 0]).tolist()
    [[1, 1], [1, 2]]
    """
    y_true = _as_binary_labels(y_true, "y_true")
    y_pred = _as_binary_labels(y_pred, "y_pred")
    _check_same_length(y_true, y_pred, "y_true", "y_pred")
    counts = np.bincount(2 * y_true + y_pred, minlength=4)
    return counts.reshape(2, 2).astype(np.int64)


def balanced_accuracy(y_true, y_pred):
    """Return the mean of the recall of each class.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Labels encoded as 0/1 or booleans.

    Returns
    -------
    float

    Notes
    -----
    A class with no sample in ``y_true`` has no recall and is left out of
    the mean, as scikit-learn's ``balanced_accuracy_score`` does, so with a
    single class present the result equals the accuracy.

    Examples
    --------
    >>> balanced_accuracy([0, 0, 0, 1], [0, 0, 1, 1])
    0.8333333333333333
    """
    table = confusion_table(y_true, y_pred)
    n_true = table.sum(axis=1)
    present = n_true > 0
    recalls = np.diag(table)[present] / n_true[present]
    return float(recalls.mean())


# ---------------------------------------------------------------------------
# Metrics on scores
# ---------------------------------------------------------------------------


def roc_curve(y_true, scores):
    """Compute the receiver operating characteristic curve.

    Every distinct score is one threshold. A sample is predicted positive when
    its score is at or above the threshold, so samples with equal scores move
    together, which gives a diagonal segment of the curve.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels encoded as 0/1 or booleans; both classes must be present.
    scores : array-like of shape (n_samples,)
        Higher means more likely positive.

    Returns
    -------
    fpr : ndarray of shape (n_thresholds,)
        False positive rate at each threshold, rising from 0 to 1.
    tpr : ndarray of shape (n_thresholds,)
        True positive rate at each threshold, rising from 0 to 1.
    thresholds : ndarray of shape (n_thresholds,)
        Decreasing thresholds. The first one is ``inf`` (nothing predicted
        positive), the others are the distinct scores.

    Examples
    --------
    >>> fpr, tpr, thresholds = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    y_true = _as_binary_labels(y_true, "y_true")
    scores = _as_scores(scores)
    _check_same_length(y_true, scores, "y_true", "scores")
    _check_both_classes(y_true, "A ROC curve")

    # A stable sort keeps the result independent of the input order for ties,
    # because only the counts at the end of each run of equal scores are kept.
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    sorted_labels = y_true[order]

    run_ends = np.flatnonzero(np.diff(sorted_scores))
    last_of_run = np.concatenate([run_ends, [sorted_scores.shape[0] - 1]])
    true_positives = np.cumsum(sorted_labels)[last_of_run]
    false_positives = (last_of_run + 1) - true_positives

    n_positive = true_positives[-1]
    n_negative = false_positives[-1]
    tpr = np.concatenate([[0.0], true_positives / n_positive])
    fpr = np.concatenate([[0.0], false_positives / n_negative])
    thresholds = np.concatenate([[np.inf], sorted_scores[last_of_run]])
    return fpr, tpr, thresholds


def roc_auc(y_true, scores):
    """Return the area under the ROC curve.

    The area is computed with the trapezoid rule over :func:`roc_curve`. It
    equals the probability that a random positive sample scores higher than a
    random negative one, with a tie counted as one half (the Mann-Whitney U
    statistic divided by ``n_positive * n_negative``).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels encoded as 0/1 or booleans; both classes must be present.
    scores : array-like of shape (n_samples,)
        Higher means more likely positive.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``y_true`` contains only one class, where the area is undefined.

    Examples
    --------
    >>> roc_auc([0, 1, 0, 1], [0.2, 0.2, 0.1, 0.9])
    0.875
    """
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def best_threshold(y_true, scores):
    """Return the threshold that maximises the balanced accuracy on these data.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels encoded as 0/1 or booleans; both classes must be present.
    scores : array-like of shape (n_samples,)
        Higher means more likely positive.

    Returns
    -------
    float
        A threshold ``t`` such that predicting ``scores >= t`` as positive
        gives the highest balanced accuracy on ``y_true``. It is the midpoint
        between the lowest score predicted positive and the highest score
        predicted negative, so that a small change in the scores does not
        change the predictions. When every sample is best predicted positive,
        it is the lowest score.

    Notes
    -----
    At least the highest-scoring sample is predicted positive. When several
    thresholds reach the same balanced accuracy, the highest one is returned.
    A threshold chosen on test data overstates the accuracy to expect on new
    data; choose it on validation data when it is to be used.

    Examples
    --------
    >>> best_threshold([0, 0, 1, 1], [0.1, 0.2, 0.6, 0.7])
    0.4
    """
    fpr, tpr, thresholds = roc_curve(y_true, scores)
    # Index 0 is the "nothing positive" point at threshold inf, left out on purpose.
    balanced = (tpr[1:] + 1.0 - fpr[1:]) / 2.0
    best_idx = int(np.argmax(balanced)) + 1

    lowest_positive = thresholds[best_idx]
    if best_idx + 1 < thresholds.shape[0]:
        highest_negative = thresholds[best_idx + 1]
        return float((lowest_positive + highest_negative) / 2.0)
    return float(lowest_positive)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


@dataclass
class EvaluationReport:
    """Metrics of a binary classifier on one data set.

    Build it with :func:`evaluate_scores`.

    Attributes
    ----------
    class_names : tuple of str
        Names of class 0 and class 1.
    threshold : float
        Threshold used for the predicted labels (``score >= threshold`` is
        class 1).
    accuracy : float
    balanced_accuracy : float
    roc_auc : float or None
        None when ``y_true`` contains only one class.
    confusion : ndarray of shape (2, 2)
        Rows are true classes, columns predicted classes.
    best_threshold : float or None
        Threshold that maximises the balanced accuracy on these data, or None
        with a single class. It is optimistic for these data.
    best_balanced_accuracy : float or None
        Balanced accuracy at ``best_threshold``.
    """

    class_names: tuple
    threshold: float
    accuracy: float
    balanced_accuracy: float
    roc_auc: object
    confusion: np.ndarray = field(repr=False)
    best_threshold: object = None
    best_balanced_accuracy: object = None

    @property
    def n_samples(self):
        """Number of samples evaluated."""
        return int(self.confusion.sum())

    def per_class(self):
        """Return one dict per class with the counts behind precision and recall.

        Returns
        -------
        list of dict
            One dict per class, with the keys:

            - ``name``: the class name.
            - ``n_predicted``: samples predicted as this class.
            - ``n_correct``: of those, the samples that belong to it.
            - ``n_true``: samples of this class.
            - ``precision``: ``n_correct / n_predicted``, or None when no
              sample was predicted as this class.
            - ``recall``: ``n_correct / n_true``, or None when the class has
              no sample.
        """
        rows = []
        for class_idx, name in enumerate(self.class_names):
            n_predicted = int(self.confusion[:, class_idx].sum())
            n_correct = int(self.confusion[class_idx, class_idx])
            n_true = int(self.confusion[class_idx, :].sum())
            rows.append(
                {
                    "name": name,
                    "n_predicted": n_predicted,
                    "n_correct": n_correct,
                    "n_true": n_true,
                    "precision": n_correct / n_predicted if n_predicted else None,
                    "recall": n_correct / n_true if n_true else None,
                }
            )
        return rows

    def to_dict(self):
        """Return the report as a dict of plain Python values, ready for JSON."""
        return {
            "n_samples": self.n_samples,
            "class_names": list(self.class_names),
            "threshold": float(self.threshold),
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "roc_auc": self.roc_auc,
            "confusion": self.confusion.tolist(),
            "per_class": self.per_class(),
            "best_threshold": self.best_threshold,
            "best_balanced_accuracy": self.best_balanced_accuracy,
        }

    def to_text(self):
        """Format the report as a few lines of text with a per-class table.

        For each class the table lists how many samples were predicted as
        that class ("predicted"), how many of those were correct, and how
        many samples of the class there are ("true"), followed by precision
        and recall.
        """
        rows = self.per_class()
        name_width = max(len("class"), *(len(str(row["name"])) for row in rows))
        header = (
            f"{'class':<{name_width}}  {'predicted':>9}  {'correct':>7}  "
            f"{'true':>6}  {'precision':>9}  {'recall':>6}"
        )
        lines = [
            f"samples            {self.n_samples}",
            f"threshold          {self.threshold:.4g}",
            f"accuracy           {self.accuracy:.4f}",
            f"balanced accuracy  {self.balanced_accuracy:.4f}",
            f"ROC AUC            {_format_optional(self.roc_auc)}",
            "",
            header,
        ]
        for row in rows:
            lines.append(
                f"{str(row['name']):<{name_width}}  {row['n_predicted']:>9}  "
                f"{row['n_correct']:>7}  {row['n_true']:>6}  "
                f"{_format_optional(row['precision']):>9}  {_format_optional(row['recall']):>6}"
            )
        lines.append("")
        if self.best_threshold is None:
            lines.append("best threshold     n/a (only one class in the data)")
        else:
            lines.append(
                f"best threshold     {self.best_threshold:.4g} "
                f"(balanced accuracy {self.best_balanced_accuracy:.4f}; chosen on these data, "
                "so optimistic)"
            )
        return "\n".join(lines)


def _format_optional(value, digits=4):
    return "n/a" if value is None else f"{value:.{digits}f}"


def evaluate_scores(y_true, scores, threshold=0.5, class_names=DEFAULT_CLASS_NAMES):
    """Compute an :class:`EvaluationReport` from true labels and scores.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels encoded as 0/1 or booleans.
    scores : array-like of shape (n_samples,)
        Score of class 1 for each sample, such as ``predict_proba(X)[:, 1]``.
    threshold : float, default=0.5
        A score at or above it is predicted as class 1.
    class_names : sequence of two str, default=("not smiling", "smiling")
        Names of class 0 and class 1 for the report.

    Returns
    -------
    EvaluationReport

    Examples
    --------
    >>> report = evaluate_scores([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.4])
    >>> report.accuracy, report.roc_auc
    (0.5, 0.75)
    """
    y_true = _as_binary_labels(y_true, "y_true")
    scores = _as_scores(scores)
    _check_same_length(y_true, scores, "y_true", "scores")
    threshold = float(threshold)
    if np.isnan(threshold):
        raise ValueError("threshold must be a number; got NaN.")
    class_names = tuple(class_names)
    if len(class_names) != 2:
        raise ValueError(f"class_names must contain two names; got {len(class_names)}: {class_names}.")

    y_pred = (scores >= threshold).astype(np.int64)
    has_both_classes = 0 < int(y_true.sum()) < y_true.shape[0]
    if has_both_classes:
        auc = roc_auc(y_true, scores)
        best = best_threshold(y_true, scores)
        best_balanced = balanced_accuracy(y_true, (scores >= best).astype(np.int64))
    else:
        auc = best = best_balanced = None

    return EvaluationReport(
        class_names=class_names,
        threshold=threshold,
        accuracy=accuracy(y_true, y_pred),
        balanced_accuracy=balanced_accuracy(y_true, y_pred),
        roc_auc=auc,
        confusion=confusion_table(y_true, y_pred),
        best_threshold=best,
        best_balanced_accuracy=best_balanced,
    )


__all__ = [
    "EvaluationReport",
    "accuracy",
    "balanced_accuracy",
    "best_threshold",
    "confusion_table",
    "evaluate_scores",
    "roc_auc",
    "roc_curve",
]
