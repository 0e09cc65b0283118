"""Gradient-descent optimisers that update parameter arrays in place."""

import numpy as np


class SGD:
    """Stochastic gradient descent with optional momentum and weight decay."""

    def __init__(self, learning_rate=0.01, momentum=0.0, weight_decay=0.0):
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self._velocity = {}

    def step(self, params_and_grads):
        """Update each parameter of ``params_and_grads``, a list of (key, param, grad)."""
        for key, param, grad in params_and_grads:
            if self.weight_decay and param.ndim > 1:
                grad = grad + self.weight_decay * param
            if self.momentum:
                velocity = self._velocity.get(key)
                if velocity is None:
                    velocity = self._velocity[key] = np.zeros_like(param)
                velocity *= self.momentum
                velocity -= self.learning_rate * grad
                param += velocity
            else:
                param -= self.learning_rate * grad


class Adam:
    """Adam (Kingma and Ba, 2015) with decoupled weight decay as in AdamW.

    Weight decay applies only to weight matrices and kernels, not to biases.
    """

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, weight_decay=0.0):
        self.learning_rate = learning_rate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weight_decay = weight_decay
        self._first_moment = {}
        self._second_moment = {}
        self._scratch = {}
        self._n_steps = 0

    def step(self, params_and_grads):
        """Update each parameter of ``params_and_grads``, a list of (key, param, grad)."""
        self._n_steps += 1
        correction1 = 1.0 - self.beta1**self._n_steps
        correction2 = 1.0 - self.beta2**self._n_steps
        step_size = self.learning_rate * np.sqrt(correction2) / correction1
        for key, param, grad in params_and_grads:
            first = self._first_moment.get(key)
            if first is None:
                first = self._first_moment[key] = np.zeros_like(param)
                self._second_moment[key] = np.zeros_like(param)
                self._scratch[key] = np.empty_like(param)
            second = self._second_moment[key]
            # Every step works in place through one scratch array per
            # parameter, so an update allocates nothing.
            scratch = self._scratch[key]
            np.multiply(grad, 1.0 - self.beta1, out=scratch)
            first *= self.beta1
            first += scratch
            np.square(grad, out=scratch)
            scratch *= 1.0 - self.beta2
            second *= self.beta2
            second += scratch
            if self.weight_decay and param.ndim > 1:
                param *= 1.0 - self.learning_rate * self.weight_decay
            np.sqrt(second, out=scratch)
            scratch += self.epsilon
            np.divide(first, scratch, out=scratch)
            scratch *= step_size
            param -= scratch


def make_optimizer(name, learning_rate, momentum=0.9, weight_decay=0.0):
    """Return the optimiser called ``name`` ("adam" or "sgd")."""
    if name == "adam":
        return Adam(learning_rate=learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return SGD(learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}")
