"""Layers of the network, each a ``forward`` and a ``backward``.

Activations are channels-last: ndarray of shape (n_samples, height, width,
n_channels) for images and (n_samples, n_features) after ``Flatten``.
``forward`` keeps what ``backward`` needs on the layer, so a layer serves
one batch at a time. ``backward`` takes ``grad_output`` (the gradient of the
loss with respect to the layer's output), stores the gradients of the
layer's parameters in ``grads`` and returns ``grad_input``.
"""

import numpy as np

from .. import kernels


class Layer:
    """A step of the network, with no parameters unless a subclass adds them."""

    def __init__(self):
        self.params = {}
        self.grads = {}
        # Arrays saved with the model but not trained by the optimiser.
        self.buffers = {}

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, grad_output):
        raise NotImplementedError

    def output_shape(self, input_shape):
        """Return the shape of one sample's output for one sample's ``input_shape``."""
        return input_shape

    def check_weights(self, name, value):
        """Raise ValueError when ``value`` is not valid for the parameter or buffer ``name``."""

    def clear_cache(self):
        """Drop the arrays kept for ``backward`` (before pickling, after training)."""
        for name in self._cache_names:
            setattr(self, name, None)

    _cache_names = ()

    def __getstate__(self):
        state = self.__dict__.copy()
        for name in self._cache_names:
            state[name] = None
        state["grads"] = {}
        return state

    def to_config(self):
        """Return the JSON-serialisable description that ``layer_from_config`` reads."""
        return {"type": type(self).__name__}


class Conv2D(Layer):
    """2-D convolution with stride 1, ``"valid"`` or ``"same"`` zero padding.

    Parameters are ``weights`` of shape (kernel_size, kernel_size, n_channels,
    n_filters) and ``bias`` of shape (n_filters,).
    """

    _cache_names = ("_input",)

    def __init__(self, n_channels, n_filters, kernel_size=3, padding="same",
                 first=False, n_threads=1, dtype=np.float32, rng=None):
        super().__init__()
        self.n_channels = n_channels
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.padding = padding
        # The first layer never needs the gradient of its input, which is
        # about a third of its backward cost.
        self.first = first
        self.n_threads = n_threads
        self._input = None
        fan_in = kernel_size * kernel_size * n_channels
        rng = np.random.default_rng(rng)
        shape = (kernel_size, kernel_size, n_channels, n_filters)
        # He initialisation suits the ReLU that follows every convolution.
        self.params["weights"] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
        self.params["bias"] = np.zeros(n_filters, dtype=dtype)

    def forward(self, x, training=False):
        if training:
            self._input = x
        return kernels.conv2d_forward(
            x, self.params["weights"], self.params["bias"], self.padding, n_threads=self.n_threads
        )

    def backward(self, grad_output):
        grad_input, grad_weights, grad_bias = kernels.conv2d_backward(
            self._input,
            self.params["weights"],
            grad_output,
            self.padding,
            need_grad_input=not self.first,
            n_threads=self.n_threads,
        )
        self.grads["weights"] = grad_weights
        self.grads["bias"] = grad_bias
        return grad_input

    def output_shape(self, input_shape):
        height, width, _ = input_shape
        if self.padding == "valid":
            height -= self.kernel_size - 1
            width -= self.kernel_size - 1
        return (height, width, self.n_filters)

    def to_config(self):
        return {
            "type": "Conv2D",
            "n_channels": self.n_channels,
            "n_filters": self.n_filters,
            "kernel_size": self.kernel_size,
            "padding": self.padding,
            "first": self.first,
        }


class MaxPool2D(Layer):
    """Max pooling; the gradient of a window goes to its first maximum in row-major order."""

    _cache_names = ("_argmax", "_input_shape")

    def __init__(self, pool_size=2, stride=None, n_threads=1):
        super().__init__()
        self.pool_size = pool_size
        self.stride = pool_size if stride is None else stride
        self.n_threads = n_threads
        self._argmax = None
        self._input_shape = None

    def forward(self, x, training=False):
        out, argmax = kernels.maxpool2d_forward(x, self.pool_size, self.stride, n_threads=self.n_threads)
        if training:
            self._argmax = argmax
            self._input_shape = x.shape
        return out

    def backward(self, grad_output):
        return kernels.maxpool2d_backward(
            grad_output, self._argmax, self._input_shape, n_threads=self.n_threads
        )

    def output_shape(self, input_shape):
        height, width, n_channels = input_shape
        return (
            (height - self.pool_size) // self.stride + 1,
            (width - self.pool_size) // self.stride + 1,
            n_channels,
        )

    def to_config(self):
        return {"type": "MaxPool2D", "pool_size": self.pool_size, "stride": self.stride}


class ReLU(Layer):
    """Rectified linear unit, ``max(x, 0)``, with gradient 0 at 0.

    With ``inplace=True`` the input array is overwritten with the output,
    which saves an allocation. The network uses it where the input is a
    fresh array that no other layer keeps.
    """

    _cache_names = ("_mask",)

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace
        self._mask = None

    def forward(self, x, training=False):
        out = np.maximum(x, 0, out=x if self.inplace else None)
        if training:
            self._mask = out > 0
        return out

    def backward(self, grad_output):
        return grad_output * self._mask

    def to_config(self):
        return {"type": "ReLU", "inplace": self.inplace}


class Flatten(Layer):
    """Reshape each sample to a vector, keeping the channels-last order."""

    _cache_names = ("_input_shape",)

    def __init__(self):
        super().__init__()
        self._input_shape = None

    def forward(self, x, training=False):
        self._input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_output):
        return grad_output.reshape(self._input_shape)

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)


class Dense(Layer):
    """Fully connected layer, ``x @ weights + bias``."""

    _cache_names = ("_input",)

    def __init__(self, n_inputs, n_outputs, dtype=np.float32, rng=None):
        super().__init__()
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs
        self._input = None
        rng = np.random.default_rng(rng)
        scale = np.sqrt(2.0 / n_inputs)
        self.params["weights"] = (rng.standard_normal((n_inputs, n_outputs)) * scale).astype(dtype)
        self.params["bias"] = np.zeros(n_outputs, dtype=dtype)

    def forward(self, x, training=False):
        if training:
            self._input = x
        return x @ self.params["weights"] + self.params["bias"]

    def backward(self, grad_output):
        self.grads["weights"] = self._input.T @ grad_output
        self.grads["bias"] = grad_output.sum(axis=0)
        return grad_output @ self.params["weights"].T

    def output_shape(self, input_shape):
        return (self.n_outputs,)

    def to_config(self):
        return {"type": "Dense", "n_inputs": self.n_inputs, "n_outputs": self.n_outputs}


class BatchNorm(Layer):
    """Batch normalisation (Ioffe and Szegedy, 2015) of each channel.

    In training, each channel is standardised with the mean and variance of
    the batch (over samples and pixels), then scaled by ``scale`` and moved
    by ``shift``. Exponential averages of those statistics, kept in
    ``buffers``, take their place at inference, so a prediction does not
    depend on the other faces of its batch.

    Parameters
    ----------
    n_channels : int
        Size of the last axis of the input.
    momentum : float, default=0.1
        Weight of the newest batch in the running averages.
    epsilon : float, default=1e-5
        Added to the variance before the square root.
    """

    _cache_names = ("_normalized", "_var")

    def __init__(self, n_channels, momentum=0.1, epsilon=1e-5, n_threads=1, dtype=np.float32):
        super().__init__()
        self.n_channels = n_channels
        self.momentum = momentum
        self.epsilon = epsilon
        self.n_threads = n_threads
        self.params["scale"] = np.ones(n_channels, dtype=dtype)
        self.params["shift"] = np.zeros(n_channels, dtype=dtype)
        self.buffers["running_mean"] = np.zeros(n_channels, dtype=dtype)
        self.buffers["running_var"] = np.ones(n_channels, dtype=dtype)
        self._normalized = None
        self._var = None

    def forward(self, x, training=False):
        flat = x.reshape(-1, self.n_channels)
        if not training:
            inv_std = 1.0 / np.sqrt(self.buffers["running_var"].astype(np.float64) + self.epsilon)
            gain = self.params["scale"] * inv_std
            offset = self.params["shift"] - self.buffers["running_mean"] * gain
            out = flat * gain.astype(x.dtype)
            out += offset.astype(x.dtype)
            return out.reshape(x.shape)
        if flat.shape[0] < 2:
            raise ValueError(
                f"batch normalisation needs at least 2 values per channel in training, got "
                f"{flat.shape[0]} (input of shape {x.shape}); use batches of 2 or more faces, "
                "or fewer conv blocks"
            )
        out, normalized, mean, var = kernels.batchnorm_forward(
            flat, self.params["scale"], self.params["shift"], self.epsilon, n_threads=self.n_threads
        )
        self._normalized = normalized
        self._var = var
        count = flat.shape[0]
        unbiased = var * count / max(count - 1, 1)
        for name, batch_value in (("running_mean", mean), ("running_var", unbiased)):
            running = self.buffers[name]
            running += (self.momentum * (batch_value - running)).astype(running.dtype)
        return out.reshape(x.shape)

    def check_weights(self, name, value):
        if name == "running_var" and not np.all(value >= 0):
            raise ValueError("running_var must hold variances >= 0")

    def backward(self, grad_output):
        grad_input, grad_scale, grad_shift = kernels.batchnorm_backward(
            grad_output.reshape(-1, self.n_channels), self._normalized, self.params["scale"],
            self._var, self.epsilon, n_threads=self.n_threads,
        )
        self.grads["scale"] = grad_scale.astype(grad_input.dtype)
        self.grads["shift"] = grad_shift.astype(grad_input.dtype)
        return grad_input.reshape(grad_output.shape)

    def to_config(self):
        return {"type": "BatchNorm", "n_channels": self.n_channels, "momentum": self.momentum,
                "epsilon": self.epsilon}


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``rate``
    and scale the rest by ``1 / (1 - rate)``; at inference, pass through."""

    _cache_names = ("_mask",)

    def __init__(self, rate=0.5, rng=None):
        super().__init__()
        self.rate = rate
        self.rng = np.random.default_rng(rng)
        self._mask = None

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self._mask = None
            return x
        keep = 1.0 - self.rate
        self._mask = (self.rng.random(x.shape, dtype=np.float32) < keep).astype(x.dtype) / x.dtype.type(keep)
        return x * self._mask

    def backward(self, grad_output):
        if self._mask is None:
            return grad_output
        return grad_output * self._mask

    def to_config(self):
        return {"type": "Dropout", "rate": self.rate}
