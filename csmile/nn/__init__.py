"""Network layers, loss and optimisers built on the kernels of :mod:`csmile.kernels`."""

from .layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D, ReLU
from .losses import softmax, softmax_cross_entropy
from .network import Network, build_network
from .optimizers import SGD, Adam, make_optimizer

__all__ = [
    "Adam", "BatchNorm", "Conv2D", "Dense", "Dropout", "Flatten", "Layer", "MaxPool2D", "Network",
    "ReLU", "SGD", "build_network", "make_optimizer", "softmax", "softmax_cross_entropy",
]
