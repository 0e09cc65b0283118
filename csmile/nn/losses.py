"""Softmax and the cross-entropy loss of the output layer."""

import numpy as np


def softmax(logits):
    """Return the row-wise softmax of ``logits`` of shape (n_samples, n_classes)."""
    # Subtracting each row's maximum keeps exp() from overflowing.
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits, labels, sample_weight=None, label_smoothing=0.0):
    """Return the mean cross-entropy loss and its gradient with respect to ``logits``.

    Parameters
    ----------
    logits : ndarray of shape (n_samples, n_classes)
    labels : ndarray of shape (n_samples,)
        Class indices in ``range(n_classes)``.
    sample_weight : ndarray of shape (n_samples,), default=None
        Weight of each sample's loss. The loss is the weighted sum divided
        by the sum of the weights, so it stays on the scale of a mean.
    label_smoothing : float, default=0.0
        The target of each sample puts ``1 - label_smoothing`` on its label
        and spreads ``label_smoothing`` evenly over all classes, which keeps
        the network from becoming certain about faces whose labels may be
        wrong.

    Returns
    -------
    loss : float
    grad_logits : ndarray of shape (n_samples, n_classes)
    probabilities : ndarray of shape (n_samples, n_classes)
    """
    n_samples = logits.shape[0]
    rows = np.arange(n_samples)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_probabilities = shifted - log_sum
    probabilities = np.exp(log_probabilities)

    if sample_weight is None:
        sample_weight = np.ones(n_samples, dtype=logits.dtype)
    total_weight = float(sample_weight.sum())
    n_classes = logits.shape[1]
    targets = np.full(logits.shape, label_smoothing / n_classes, dtype=logits.dtype)
    targets[rows, labels] += 1.0 - label_smoothing
    losses = -np.sum(targets * log_probabilities, axis=1)
    loss = float(np.dot(losses, sample_weight) / total_weight)

    grad_logits = probabilities - targets
    grad_logits *= (sample_weight / total_weight)[:, None].astype(logits.dtype)
    return loss, grad_logits, probabilities
