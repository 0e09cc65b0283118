"""SmileNet, the scikit-learn-like smile classifier."""

import inspect
import logging
import os
from importlib import resources

import numpy as np

from . import serialization
from ._version import __version__
from .data.augment import Augmenter
from .data.images import NORMALIZE_METHODS, to_faces
from .nn import Network, build_network, softmax
from .threads import blas_thread_limit, resolve_n_threads
from .validation import check_choice, check_float, check_int, check_int_tuple
from .training import Trainer, predict_logits, stratified_split

logger = logging.getLogger(__name__)

PRETRAINED_RESOURCE = "smilenet.npz"

# Upper bounds that catch typing errors (an extra zero) before they turn into
# an allocation of many gigabytes.
MAX_UNITS = 4096
MAX_KERNEL_SIZE = 15
MAX_CONVS_PER_BLOCK = 8
# More threads than this never speed up the kernels on a batch of faces, and
# thousands of threads can exceed the operating system's limit, which makes
# the OpenMP runtime end the process.
MAX_N_JOBS = 256
MAX_IMAGE_SIZE = 1024

# Prediction uses one thread below this many faces per thread (measured on
# 2 cores: one face took 0.29 ms on 1 thread and 0.42 ms on 2).
MIN_FACES_PER_THREAD = 4


class NotFittedError(ValueError, AttributeError):
    """Raised when a SmileNet is used for prediction before ``fit``."""


class SmileNet:
    """Convolutional network that predicts whether a face is smiling.

    The network is a stack of conv blocks (``convs_per_block``
    convolutions of ``kernel_size``, each followed by a ReLU, with optional
    batch normalisation and 2x2 max pooling after the last), then fully
    connected layers with ReLU and dropout, then a two-way softmax trained
    with cross-entropy. Images are converted to grayscale, resized to
    ``image_size`` and normalised per image; the fitted model stores that
    preprocessing, so prediction always repeats what training did.

    Parameters
    ----------
    filters : tuple of int, default=(16, 32, 64)
        Number of filters of each conv block.
    kernel_size : int, default=3
        Height and width of the convolution kernels.
    padding : {"same", "valid"}, default="same"
        Zero padding of the convolutions.
    convs_per_block : int, default=1
        Convolutions in each conv block, all with that block's filters.
    batch_norm : bool, default=False
        Normalise each convolution's output channels with the statistics of
        the batch in training and their running averages at inference.
    dense : tuple of int, default=(128,)
        Units of each hidden fully connected layer.
    dropout : float, default=0.5
        Dropout rate after each hidden fully connected layer.
    epochs : int, default=30
        Maximum number of passes over the training data.
    batch_size : int, default=32
        Faces per gradient step; 1 gives per-image SGD.
    learning_rate : float, default=1e-3
        Peak learning rate of the optimiser.
    optimizer : {"adam", "sgd"}, default="adam"
    momentum : float, default=0.9
        Momentum of SGD; unused by Adam.
    weight_decay : float, default=0.0
        Decoupled weight decay of weights and kernels (not biases).
    class_weight : {"balanced", None}, default="balanced"
        "balanced" weighs each face by the inverse frequency of its class.
    augment : bool or dict, default=True
        Random mirror, shift, rotation, scale, brightness, contrast, blur
        and noise of training faces; a dict sets
        :class:`csmile.data.Augmenter` parameters.
    normalization : {"standardize", "minmax", "none"}, default="standardize"
        Per-image normalisation; see :func:`csmile.data.normalize`.
    image_size : int, default=64
        Side of the square grayscale input in pixels.
    validation_fraction : float, default=0.1
        Fraction of each class held out for validation and early stopping;
        0 trains on everything and turns early stopping off.
    early_stopping : bool, default=True
        Stop after ``patience`` epochs without a lower validation loss and
        keep the weights of the best epoch.
    patience : int, default=6
    label_smoothing : float, default=0.0
        Training targets put ``1 - label_smoothing / 2`` on the labelled
        class and the rest on the other one. Some smoothing suits data
        sets with mislabelled faces. The validation loss is never smoothed.
    weight_averaging : float, default=0.0
        Decay of an exponential moving average of the weights, updated
        after every batch (0.999 averages over about the last 1,000
        batches). When above 0, validation, early stopping and the fitted
        model use the averaged weights. 0 turns averaging off. The decay of
        step ``t`` is at most ``(1 + t) / (10 + t)``, so over the first few
        hundred batches the average follows the weights more closely than
        ``weight_averaging`` alone would.
    lr_schedule : {"cosine", "constant"}, default="cosine"
        "cosine" warms up linearly during the first epoch, then decays to 0
        over ``epochs`` along half a cosine.
    threshold : float, default=0.5
        Smile probability from which ``predict`` returns the positive class.
    test_time_mirror : bool, default=False
        Average the probabilities of each face and of its mirror image in
        ``predict_proba``, which costs a second forward pass.
    n_jobs : int, default=None
        Threads for training and prediction; None uses ``OMP_NUM_THREADS``
        when set, else all cores.
    random_state : int, default=None
        Seed of weights, shuffling, dropout and augmentation. The same seed,
        data and ``n_jobs`` give the same model.
    verbose : int, default=0
        1 logs each epoch and draws a progress bar on a terminal.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels, sorted; ``classes_[1]`` is the positive (smiling) class.
    network_ : csmile.nn.Network
        The trained layers.
    history_ : list of dict
        Per epoch: loss, accuracy, balanced_accuracy, and with validation
        val_loss, val_accuracy, val_balanced_accuracy; learning_rate, seconds.
    best_epoch_ : int
        The epoch whose weights were kept.
    validation_indices_ : ndarray or None
        Indices into the ``X`` given to ``fit`` of the faces held out for
        validation; None without validation. Not saved by ``save``.

    Examples
    --------
    >>> import numpy as np
    >>> from csmile import SmileNet
    >>> rng = np.random.default_rng(0)
    >>> faces = rng.integers(0, 256, size=(20, 64, 64), dtype=np.uint8)
    >>> labels = np.array([0, 1] * 10)
    >>> model = SmileNet(filters=(4,), dense=(), epochs=1, validation_fraction=0,
    ...                  augment=False, random_state=0).fit(faces, labels)
    >>> model.predict_proba(faces[:3]).shape
    (3, 2)
    """

    def __init__(self, filters=(16, 32, 64), kernel_size=3, padding="same", convs_per_block=1,
                 batch_norm=False, dense=(128,), dropout=0.5, epochs=30, batch_size=32,
                 learning_rate=1e-3, optimizer="adam", momentum=0.9, weight_decay=0.0,
                 class_weight="balanced", augment=True, normalization="standardize",
                 image_size=64, validation_fraction=0.1, early_stopping=True, patience=6,
                 label_smoothing=0.0, weight_averaging=0.0, lr_schedule="cosine",
                 threshold=0.5, test_time_mirror=False, n_jobs=None, random_state=None,
                 verbose=0):
        self.filters = filters
        self.kernel_size = kernel_size
        self.padding = padding
        self.convs_per_block = convs_per_block
        self.batch_norm = batch_norm
        self.dense = dense
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.augment = augment
        self.normalization = normalization
        self.image_size = image_size
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.label_smoothing = label_smoothing
        self.weight_averaging = weight_averaging
        self.lr_schedule = lr_schedule
        self.threshold = threshold
        self.test_time_mirror = test_time_mirror
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------
    # Constructors
    # ------------------------------------------------------------------

    @classmethod
    def paper(cls, filters=2, learning_rate=0.005, **kwargs):
        """Return the single-layer network of the 2019 student study.

        One 3x3 valid convolution with ``filters`` filters, ReLU, 2x2 max
        pooling and a dense softmax, trained by per-image SGD without
        augmentation, class weights or dropout. Keyword arguments override
        any of these settings.

        Examples
        --------
        >>> SmileNet.paper(filters=8).filters
        (8,)
        """
        settings = dict(
            filters=(filters,), kernel_size=3, padding="valid", dense=(), dropout=0.0,
            epochs=10, batch_size=1, learning_rate=learning_rate, optimizer="sgd", momentum=0.0,
            class_weight=None, augment=False, validation_fraction=0.0, early_stopping=False,
            lr_schedule="constant",
        )
        settings.update(kwargs)
        return cls(**settings)

    @classmethod
    def pretrained(cls):
        """Load the default model shipped with csmile, trained on SMILEsmileD.

        Examples
        --------
        >>> model = SmileNet.pretrained()
        >>> model.classes_.tolist()
        ['not smiling', 'smiling']
        """
        with resources.as_file(resources.files("csmile") / "pretrained" / PRETRAINED_RESOURCE) as path:
            return load(path)

    # ------------------------------------------------------------------
    # scikit-learn parameter protocol
    # ------------------------------------------------------------------

    @classmethod
    def _get_param_names(cls):
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def get_params(self, deep=True):
        """Return the constructor parameters as a dict."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor parameters; return the estimator."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for SmileNet; valid parameters are: {', '.join(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if not _same_value(value, defaults[name].default)
        ]
        return f"SmileNet({', '.join(changed)})"

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags(multi_class=False),
        )

    _estimator_type = "classifier"

    # ------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------

    def fit(self, X, y):
        """Train the network on faces ``X`` with labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width), or list
            Grayscale faces (uint8 0..255 or float), RGB(A) faces of shape
            (n_samples, height, width, 3 or 4), or a list of image paths or
            PIL images. Faces of another size are resized to ``image_size``.
        y : array-like of shape (n_samples,)
            Exactly two distinct labels: 0/1, booleans or two strings.

        Returns
        -------
        self : SmileNet
        """
        self._validate_params()
        faces = to_faces(X, size=self.image_size)
        classes, encoded = _encode_labels(y, len(faces))
        rng = np.random.default_rng(self.random_state)

        validation_idx = None
        if self.validation_fraction > 0:
            train_idx, validation_idx = stratified_split(encoded, self.validation_fraction, rng)
            validation_faces, validation_labels = faces[validation_idx], encoded[validation_idx]
            faces, encoded = faces[train_idx], encoded[train_idx]
        else:
            validation_faces = validation_labels = None

        network = build_network(
            (self.image_size, self.image_size, 1), tuple(self.filters), self.kernel_size,
            self.padding, tuple(self.dense), self.dropout,
            convs_per_block=self.convs_per_block, batch_norm=self.batch_norm, rng=rng,
        )
        n_threads = resolve_n_threads(self.n_jobs)
        network.set_n_threads(n_threads)
        augmenter = self._make_augmenter()
        options = {name: getattr(self, name) for name in self._get_param_names()}
        trainer = Trainer(network, options, rng, augmenter, self._progress_factory())
        logger.info(
            "training on %d faces (%d for validation), %d parameters, %d threads",
            len(faces), 0 if validation_faces is None else len(validation_faces),
            network.n_parameters, n_threads,
        )
        # The kernels share the cores through OpenMP; BLAS threads on top of
        # them (for the dense layers) would compete for the same cores.
        with blas_thread_limit(1):
            history, best_epoch = trainer.fit(faces, encoded, validation_faces, validation_labels)

        self.classes_ = classes
        self.network_ = network
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.validation_indices_ = validation_idx
        self.n_threads_ = n_threads
        return self

    def _validate_params(self):
        check_int_tuple("filters", self.filters, allow_empty=True, maximum=MAX_UNITS)
        check_int_tuple("dense", self.dense, allow_empty=True, maximum=MAX_UNITS)
        check_int("kernel_size", self.kernel_size, 1, maximum=MAX_KERNEL_SIZE)
        check_int("convs_per_block", self.convs_per_block, 1, maximum=MAX_CONVS_PER_BLOCK)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("image_size", self.image_size, 4, maximum=MAX_IMAGE_SIZE)
        check_int("patience", self.patience, 1)
        check_choice("padding", self.padding, ("same", "valid"))
        check_choice("optimizer", self.optimizer, ("adam", "sgd"))
        check_choice("class_weight", self.class_weight, ("balanced", None))
        check_choice("normalization", self.normalization, NORMALIZE_METHODS)
        check_choice("lr_schedule", self.lr_schedule, ("cosine", "constant"))
        check_float("learning_rate", self.learning_rate, 0.0, None, low_open=True)
        check_float("dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_float("momentum", self.momentum, 0.0, 1.0, high_open=True)
        check_float("weight_averaging", self.weight_averaging, 0.0, 1.0, high_open=True)
        check_float("label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        check_float("weight_decay", self.weight_decay, 0.0, None)
        check_float("validation_fraction", self.validation_fraction, 0.0, 1.0, high_open=True)
        check_float("threshold", self.threshold, 0.0, 1.0)
        if self.n_jobs is not None:
            check_int("n_jobs", self.n_jobs, 1, maximum=MAX_N_JOBS)
        if self.random_state is not None and not isinstance(self.random_state, np.random.Generator):
            check_int("random_state", self.random_state, 0)
        for name in ("batch_norm", "test_time_mirror"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.augment, (bool, dict)):
            raise TypeError(f"augment must be True, False or a dict of Augmenter parameters, got {self.augment!r}")

    def _make_augmenter(self):
        if self.augment is False:
            return None
        if self.augment is True:
            return Augmenter()
        return Augmenter(**self.augment)

    def _progress_factory(self):
        if not self.verbose:
            return None
        from .progress import ProgressBar

        return lambda total, description: ProgressBar(total, description)

    # ------------------------------------------------------------------
    # Prediction
    # ------------------------------------------------------------------

    def predict_proba(self, X):
        """Return class probabilities, ndarray of shape (n_samples, 2).

        Column 1 is the probability of ``classes_[1]``, the smiling class.
        """
        self._check_fitted()
        faces = to_faces(X, size=self.image_size)
        if self.test_time_mirror:
            faces = np.concatenate([faces, faces[:, :, ::-1]])
        if len(faces) < MIN_FACES_PER_THREAD * 2 or self.n_threads_ == 1:
            # Waking a second thread costs more than it saves on a few faces.
            self.network_.set_n_threads(1)
            logits = predict_logits(self.network_, faces, self.normalization, np.float32)
        else:
            self.network_.set_n_threads(self.n_threads_)
            with blas_thread_limit(1):
                logits = predict_logits(self.network_, faces, self.normalization, np.float32)
        probabilities = softmax(logits.astype(np.float64))
        if self.test_time_mirror:
            n_samples = len(faces) // 2
            probabilities = 0.5 * (probabilities[:n_samples] + probabilities[n_samples:])
        return probabilities

    def predict(self, X):
        """Return the predicted label of each face: ``classes_[1]`` where the
        smile probability reaches ``threshold``, else ``classes_[0]``."""
        probabilities = self.predict_proba(X)
        return self.classes_[(probabilities[:, 1] >= self.threshold).astype(np.intp)]

    def score(self, X, y):
        """Return the accuracy of ``predict(X)`` against ``y``."""
        y = np.asarray(y)
        return float(np.mean(self.predict(X) == y))

    def _check_fitted(self):
        if not hasattr(self, "network_"):
            raise NotFittedError(
                "this SmileNet is not fitted yet; call fit(X, y) first or use SmileNet.pretrained()"
            )

    # ------------------------------------------------------------------
    # Persistence
    # ------------------------------------------------------------------

    def save(self, path):
        """Save the fitted model to ``path`` (a ``.npz`` file), atomically.

        The file holds only arrays and JSON (see :mod:`csmile.serialization`)
        and is read back with :func:`csmile.load`.
        """
        self._check_fitted()
        classes_kind, classes = _classes_to_json(self.classes_)
        metadata = {
            "csmile_version": __version__,
            "params": _params_to_json(self.get_params()),
            "architecture": self.network_.to_config(),
            "classes": classes,
            "classes_kind": classes_kind,
            "history": self.history_,
            "best_epoch": self.best_epoch_,
        }
        serialization.write_model_file(path, metadata, self.network_.get_weights())

    def __getstate__(self):
        state = self.__dict__.copy()
        if "network_" in state:
            state["network_"].clear_cache()
        return state


def load(path):
    """Load a model saved by :meth:`SmileNet.save`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    csmile.serialization.ModelFileError
        If the file is damaged, not a csmile model, or of a newer format.
    """
    metadata, weights = serialization.read_model_file(path)
    try:
        params = dict(metadata["params"])
        for name in ("filters", "dense"):
            params[name] = tuple(params[name])
        model = SmileNet(**params)
        network = Network.from_config(metadata["architecture"])
        network.set_weights(weights)
        model.classes_ = _classes_from_json(metadata["classes_kind"], metadata["classes"])
        model.history_ = list(metadata.get("history", []))
        model.best_epoch_ = metadata.get("best_epoch")
        model._validate_params()
    except (KeyError, TypeError, ValueError) as error:
        raise serialization.ModelFileError(
            f"model file {os.fspath(path)} has invalid contents ({error}); save it again with model.save()"
        ) from None
    model.network_ = network
    model.n_threads_ = resolve_n_threads(model.n_jobs)
    network.set_n_threads(model.n_threads_)
    if metadata.get("csmile_version") != __version__:
        logger.warning(
            "model %s was saved by csmile %s; this is csmile %s",
            os.fspath(path), metadata.get("csmile_version"), __version__,
        )
    return model


# ----------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------

def _encode_labels(y, n_samples):
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be one label per face, shape ({n_samples},); got shape {y.shape}")
    if len(y) != n_samples:
        raise ValueError(f"X has {n_samples} faces but y has {len(y)} labels; give one label per face")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or infinite labels; give 0/1, booleans or two strings")
    try:
        classes, encoded = np.unique(y, return_inverse=True)
    except TypeError:
        kinds = sorted({type(label).__name__ for label in y.ravel()})
        raise ValueError(
            f"y mixes labels of types {', '.join(kinds)} that cannot be sorted; "
            "use 0/1, booleans or two strings"
        ) from None
    if len(classes) != 2:
        raise ValueError(
            f"y must contain exactly two classes (smiling and not smiling); got {len(classes)}: "
            f"{classes[:5].tolist()}"
        )
    return classes, encoded.astype(np.int64)


def _classes_to_json(classes):
    if classes.dtype.kind == "b":
        return "bool", [bool(c) for c in classes]
    if classes.dtype.kind in "iu":
        return "int", [int(c) for c in classes]
    if classes.dtype.kind == "f":
        return "float", [float(c) for c in classes]
    return "str", [str(c) for c in classes]


def _classes_from_json(kind, values):
    dtypes = {"bool": bool, "int": np.int64, "float": np.float64, "str": str}
    if kind not in dtypes or len(values) != 2:
        raise ValueError(f"invalid classes {values!r} of kind {kind!r}")
    return np.array(values, dtype=dtypes[kind])


def _params_to_json(params):
    converted = {}
    for name, value in params.items():
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, np.generic):
            value = value.item()
        converted[name] = value
    return converted


def _same_value(a, b):
    try:
        return bool(a == b)
    except ValueError:
        return False
