"""The training loop behind ``SmileNet.fit``: batches, schedule, validation, early stopping."""

import logging
import math
import time

import numpy as np

from .data.images import normalize
from .metrics import balanced_accuracy
from .nn import make_optimizer, softmax, softmax_cross_entropy

logger = logging.getLogger(__name__)

PREDICT_BATCH_SIZE = 256


def stratified_split(labels, fraction, rng):
    """Return (train_indices, validation_indices), drawing ``fraction`` of each class."""
    train_parts, validation_parts = [], []
    for label in np.unique(labels):
        indices = rng.permutation(np.flatnonzero(labels == label))
        n_validation = int(round(fraction * len(indices)))
        if n_validation < 1 or n_validation >= len(indices):
            raise ValueError(
                f"validation_fraction={fraction} leaves class {label} with {len(indices)} "
                "samples unable to fill both a training and a validation part; "
                "give more samples or set validation_fraction=0"
            )
        validation_parts.append(indices[:n_validation])
        train_parts.append(indices[n_validation:])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(validation_parts))


def balanced_class_weights(labels, n_classes=2):
    """Return weights ``n_samples / (n_classes * count)`` so each class adds up equally."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return len(labels) / (n_classes * np.maximum(counts, 1))


def learning_rate_at(schedule, base_rate, step, n_steps, n_warmup_steps):
    """Return the learning rate of ``step`` (counted from 0) under ``schedule``."""
    if schedule == "constant":
        return base_rate
    if step < n_warmup_steps:
        return base_rate * (step + 1) / n_warmup_steps
    progress = (step - n_warmup_steps) / max(1, n_steps - n_warmup_steps)
    return base_rate * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def predict_logits(network, faces, normalization, dtype):
    """Run ``network`` in inference mode on raw faces, in batches to bound memory."""
    n_samples = len(faces)
    if n_samples <= PREDICT_BATCH_SIZE:
        batch = normalize(faces, normalization)
        return network.forward(batch.astype(dtype, copy=False)[..., None])
    outputs = []
    for start in range(0, n_samples, PREDICT_BATCH_SIZE):
        batch = normalize(faces[start:start + PREDICT_BATCH_SIZE], normalization)
        outputs.append(network.forward(batch.astype(dtype, copy=False)[..., None]))
    return np.concatenate(outputs)


class WeightAverage:
    """Exponential moving average of a network's parameters and buffers.

    After each optimiser step, every average moves the fraction ``1 - d``
    of the way to the current value, where ``d = min(decay, (1 + step) /
    (10 + step))``. The first steps, far from any useful weights, thus fade
    out fast.
    Averaged weights often generalise better than the last ones.
    """

    def __init__(self, network, decay):
        self.network = network
        self.decay = decay
        self.n_updates = 0
        self.averages = network.get_weights()

    def update(self):
        decay = min(self.decay, (1.0 + self.n_updates) / (10.0 + self.n_updates))
        self.n_updates += 1
        for key, array in self.network.named_arrays():
            average = self.averages[key]
            average += (1.0 - decay) * (array - average)

    def swap(self):
        """Exchange the network's weights and the averages (call again to undo)."""
        current = self.network.get_weights()
        self.network.set_weights(self.averages)
        self.averages = current


class Trainer:
    """Train a network on raw faces (0..255 scale) with the options of a SmileNet."""

    def __init__(self, network, options, rng, augmenter=None, progress_factory=None):
        self.network = network
        self.options = options
        self.rng = rng
        self.augmenter = augmenter
        self.progress_factory = progress_factory

    def fit(self, faces, labels, validation_faces=None, validation_labels=None):
        """Run the epochs; return (history, best_epoch) and leave the best weights in the network."""
        options = self.options
        dtype = np.float32
        n_samples = len(faces)
        batch_size = min(options["batch_size"], n_samples)
        # A trailing batch of one face joins the batch before it, because
        # batch normalisation needs two or more values per channel. Batches
        # of one face (per-image SGD) stay as they are.
        batch_starts = list(range(0, n_samples, batch_size))
        if batch_size > 1 and len(batch_starts) > 1 and n_samples - batch_starts[-1] == 1:
            batch_starts.pop()
        batch_stops = batch_starts[1:] + [n_samples]
        n_batches = len(batch_starts)
        n_steps = n_batches * options["epochs"]
        n_warmup_steps = min(n_batches, n_steps // 10) if options["lr_schedule"] == "cosine" else 0

        class_weights = None
        if options["class_weight"] == "balanced":
            class_weights = balanced_class_weights(labels).astype(dtype)
        optimizer = make_optimizer(
            options["optimizer"], options["learning_rate"], options["momentum"], options["weight_decay"]
        )
        has_validation = validation_faces is not None and len(validation_faces) > 0
        keep_best = has_validation and options["early_stopping"]
        average = None
        if options["weight_averaging"] > 0:
            average = WeightAverage(self.network, options["weight_averaging"])

        history = []
        best_score = -np.inf
        best_weights = None
        best_epoch = options["epochs"]
        n_epochs_without_gain = 0
        step = 0
        for epoch in range(1, options["epochs"] + 1):
            started = time.perf_counter()
            order = self.rng.permutation(n_samples)
            loss_sum = 0.0
            train_predictions = np.empty(n_samples, dtype=np.int64)
            bar = self._progress(n_samples, f"epoch {epoch}/{options['epochs']}")
            try:
                for start, stop in zip(batch_starts, batch_stops):
                    batch_indices = order[start:stop]
                    optimizer.learning_rate = learning_rate_at(
                        options["lr_schedule"], options["learning_rate"], step, n_steps, n_warmup_steps
                    )
                    loss, probabilities = self._train_step(
                        faces[batch_indices], labels[batch_indices], optimizer, class_weights, dtype
                    )
                    if average is not None:
                        average.update()
                    loss_sum += loss * len(batch_indices)
                    train_predictions[start:start + len(batch_indices)] = probabilities.argmax(axis=1)
                    step += 1
                    if bar is not None:
                        bar.update(len(batch_indices))
            finally:
                if bar is not None:
                    bar.close()

            shuffled_labels = labels[order]
            record = {
                "epoch": epoch,
                "loss": loss_sum / n_samples,
                "accuracy": float(np.mean(train_predictions == shuffled_labels)),
                "balanced_accuracy": balanced_accuracy(shuffled_labels, train_predictions),
                "learning_rate": optimizer.learning_rate,
            }
            # Validation and the kept weights use the averages; training
            # goes on from the raw weights.
            if average is not None:
                average.swap()
            try:
                if has_validation:
                    record.update(self._validate(validation_faces, validation_labels, class_weights, dtype))
                record["seconds"] = time.perf_counter() - started
                history.append(record)
                logger.info(_format_record(record))
                # A lower class-weighted validation loss is the monitored gain;
                # it is smoother than validation accuracy on a few hundred faces.
                improved = keep_best and -record["val_loss"] > best_score
                # Without early stopping the latest averages are the result.
                if improved or (average is not None and not keep_best):
                    best_weights = self.network.get_weights()
            finally:
                if average is not None:
                    average.swap()

            if not keep_best:
                continue
            if improved:
                best_score = -record["val_loss"]
                best_epoch = epoch
                n_epochs_without_gain = 0
            else:
                n_epochs_without_gain += 1
                if n_epochs_without_gain >= options["patience"]:
                    logger.info("early stopping after epoch %d; best epoch %d", epoch, best_epoch)
                    break

        if best_weights is not None:
            self.network.set_weights(best_weights)
        self.network.clear_cache()
        return history, best_epoch

    def _train_step(self, batch_faces, batch_labels, optimizer, class_weights, dtype):
        if self.augmenter is not None:
            batch_faces = self.augmenter(batch_faces, self.rng)
        batch = normalize(batch_faces, self.options["normalization"]).astype(dtype, copy=False)
        logits = self.network.forward(batch[..., None], training=True)
        sample_weight = None if class_weights is None else class_weights[batch_labels]
        loss, grad_logits, probabilities = softmax_cross_entropy(
            logits, batch_labels, sample_weight, self.options["label_smoothing"]
        )
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"the training loss became {loss}; lower learning_rate "
                f"(now {self.options['learning_rate']}) or check the input data"
            )
        self.network.backward(grad_logits)
        optimizer.step(self.network.params_and_grads())
        return loss, probabilities

    def _validate(self, faces, labels, class_weights, dtype):
        logits = predict_logits(self.network, faces, self.options["normalization"], dtype)
        sample_weight = None if class_weights is None else class_weights[labels]
        loss, _, probabilities = softmax_cross_entropy(logits, labels, sample_weight)
        predictions = probabilities.argmax(axis=1)
        return {
            "val_loss": loss,
            "val_accuracy": float(np.mean(predictions == labels)),
            "val_balanced_accuracy": balanced_accuracy(labels, predictions),
        }

    def _progress(self, total, description):
        if self.progress_factory is None:
            return None
        return self.progress_factory(total, description)


def _format_record(record):
    text = (
        f"epoch {record['epoch']}: loss {record['loss']:.4f}, "
        f"accuracy {record['accuracy']:.4f}, balanced {record['balanced_accuracy']:.4f}"
    )
    if "val_loss" in record:
        text += (
            f"; validation loss {record['val_loss']:.4f}, accuracy {record['val_accuracy']:.4f}, "
            f"balanced {record['val_balanced_accuracy']:.4f}"
        )
    return text + f" ({record['seconds']:.1f} s)"


__all__ = ["Trainer", "predict_logits", "softmax", "stratified_split"]
