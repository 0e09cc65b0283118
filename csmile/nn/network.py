"""A sequence of layers, built from a SmileNet's architecture parameters."""

import numpy as np

from .layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU

LAYER_TYPES = {
    cls.__name__: cls for cls in (Conv2D, MaxPool2D, BatchNorm, ReLU, Flatten, Dense, Dropout)
}


class Network:
    """Layers applied in order; ``backward`` runs them in reverse."""

    def __init__(self, layers):
        self.layers = list(layers)

    def forward(self, x, training=False):
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, grad_output):
        for layer in reversed(self.layers):
            grad_output = layer.backward(grad_output)
            if grad_output is None:
                break
        return grad_output

    def params_and_grads(self):
        """Return (key, parameter, gradient) for every parameter, key = (layer index, name)."""
        return [
            ((layer_idx, name), param, layer.grads[name])
            for layer_idx, layer in enumerate(self.layers)
            for name, param in layer.params.items()
        ]

    def named_arrays(self):
        """Yield (key, array) for every parameter and buffer, key = "layer_idx/name"."""
        for layer_idx, layer in enumerate(self.layers):
            for name, array in {**layer.params, **layer.buffers}.items():
                yield f"{layer_idx}/{name}", array

    def get_weights(self):
        """Return copies of all parameters and buffers as a dict ``{"layer_idx/name": array}``."""
        return {key: array.copy() for key, array in self.named_arrays()}

    def set_weights(self, weights):
        """Copy ``weights`` (as returned by ``get_weights``) into the parameters and buffers."""
        for layer_idx, layer in enumerate(self.layers):
            for name, array in {**layer.params, **layer.buffers}.items():
                key = f"{layer_idx}/{name}"
                if key not in weights:
                    raise ValueError(f"missing weights {key!r}")
                value = np.asarray(weights[key])
                if value.shape != array.shape:
                    raise ValueError(f"weights {key!r} have shape {value.shape}, expected {array.shape}")
                try:
                    layer.check_weights(name, value)
                except ValueError as error:
                    raise ValueError(f"weights {key!r}: {error}") from None
                array[...] = value

    def set_n_threads(self, n_threads):
        for layer in self.layers:
            if hasattr(layer, "n_threads"):
                layer.n_threads = n_threads

    def clear_cache(self):
        for layer in self.layers:
            layer.clear_cache()

    @property
    def n_parameters(self):
        return int(sum(param.size for layer in self.layers for param in layer.params.values()))

    def to_config(self):
        return [layer.to_config() for layer in self.layers]

    @classmethod
    def from_config(cls, configs, dtype=np.float32):
        """Build a network from ``to_config`` output, with new random weights for ``set_weights`` to replace."""
        layers = []
        for config in configs:
            config = dict(config)
            layer_type = LAYER_TYPES.get(config.pop("type", None))
            if layer_type is None:
                raise ValueError(f"unknown layer type in model file: {config!r}")
            if layer_type in (Conv2D, Dense, BatchNorm):
                config["dtype"] = dtype
            layers.append(layer_type(**config))
        return cls(layers)


def build_network(input_shape, filters, kernel_size, padding, dense, dropout,
                  n_classes=2, pool_size=2, convs_per_block=1, batch_norm=False,
                  rng=None, dtype=np.float32):
    """Build conv blocks, then dense layers, then the output layer.

    Each conv block is ``convs_per_block`` convolutions with ``filters[i]``
    filters each, and max pooling follows the last of them. Every
    convolution is followed by a ReLU, with batch normalisation before it
    when ``batch_norm`` is true. After the last convolution of a block the
    order is convolution, pooling, (normalisation,) ReLU.

    Without normalisation, pooling before the ReLU gives the same output and
    gradients as the usual ReLU-then-pool order, because the maximum
    commutes with a monotone function. The ReLU then runs on a quarter of
    the values. With normalisation the network differs from the usual order,
    because the statistics are taken over the pooled values, which also
    makes them four times cheaper.
    """
    rng = np.random.default_rng(rng)
    layers = []
    shape = tuple(input_shape)
    for block_idx, n_filters in enumerate(filters):
        for conv_idx in range(convs_per_block):
            conv = Conv2D(shape[2], n_filters, kernel_size, padding,
                          first=block_idx == 0 and conv_idx == 0, dtype=dtype, rng=rng)
            block = [conv]
            if conv_idx == convs_per_block - 1:
                block.append(MaxPool2D(pool_size))
            for layer in block:
                shape = layer.output_shape(shape)
            if min(shape[:2]) < 1:
                raise ValueError(
                    f"the input of {input_shape[0]}x{input_shape[1]} pixels is too small for "
                    f"{len(filters)} conv blocks; use fewer filters entries or a larger image_size"
                )
            if batch_norm:
                block.append(BatchNorm(n_filters, dtype=dtype))
            # Every layer before a ReLU returns a fresh array that no layer
            # keeps for its backward pass, so the ReLU may overwrite it.
            block.append(ReLU(inplace=True))
            layers += block
    layers.append(Flatten())
    n_features = int(np.prod(shape))
    for n_units in dense:
        layers += [Dense(n_features, n_units, dtype=dtype, rng=rng), ReLU(inplace=True)]
        if dropout > 0:
            layers.append(Dropout(dropout, rng=rng.integers(2**32)))
        n_features = n_units
    layers.append(Dense(n_features, n_classes, dtype=dtype, rng=rng))
    return Network(layers)
