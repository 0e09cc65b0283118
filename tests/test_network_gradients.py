"""Gradients of every layer, the loss and a whole network against central finite differences."""

import numpy as np
import pytest

from csmile.nn import (
    BatchNorm, Dense, Dropout, Flatten, MaxPool2D, ReLU, build_network, softmax_cross_entropy,
)
from csmile.nn.layers import Conv2D

EPSILON = 1e-6
TOLERANCE = 1e-6


def numerical_gradient(function, array):
    """Return d function() / d array by central differences, perturbing ``array`` in place."""
    grad = np.zeros_like(array)
    flat = array.reshape(-1)
    grad_flat = grad.reshape(-1)
    for index in range(flat.size):
        saved = flat[index]
        flat[index] = saved + EPSILON
        plus = function()
        flat[index] = saved - EPSILON
        minus = function()
        flat[index] = saved
        grad_flat[index] = (plus - minus) / (2 * EPSILON)
    return grad


def check_layer(layer, x, rng):
    """Compare the analytic input and parameter gradients of ``layer`` with numerical ones."""
    projection = rng.standard_normal(layer.forward(x, training=True).shape)

    def objective():
        return float(np.sum(layer.forward(x, training=True) * projection))

    layer.forward(x, training=True)
    grad_input = layer.backward(projection.copy())
    analytic_params = {name: grad.copy() for name, grad in layer.grads.items()}
    if grad_input is not None:
        np.testing.assert_allclose(grad_input, numerical_gradient(objective, x), rtol=TOLERANCE, atol=TOLERANCE)
    for name, param in layer.params.items():
        np.testing.assert_allclose(
            analytic_params[name], numerical_gradient(objective, param), rtol=TOLERANCE, atol=TOLERANCE,
            err_msg=f"gradient of {name}",
        )


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv_layer_gradients(padding, rng):
    layer = Conv2D(2, 3, kernel_size=3, padding=padding, dtype=np.float64, rng=0)
    check_layer(layer, rng.standard_normal((2, 5, 6, 2)), rng)


def test_first_conv_layer_skips_input_gradient(rng):
    layer = Conv2D(1, 2, kernel_size=3, first=True, dtype=np.float64, rng=0)
    x = rng.standard_normal((1, 5, 5, 1))
    out = layer.forward(x, training=True)
    assert layer.backward(np.ones_like(out)) is None


def test_maxpool_layer_gradients(rng):
    # Distinct values keep every window's maximum unique, so the finite
    # difference does not cross a tie.
    x = rng.permutation(2 * 6 * 7 * 3).reshape(2, 6, 7, 3).astype(np.float64)
    check_layer(MaxPool2D(2), x, rng)


def test_relu_layer_gradients(rng):
    x = rng.standard_normal((3, 7))
    x[np.abs(x) < 0.01] = 0.5  # keep finite differences away from the kink at 0
    check_layer(ReLU(), x, rng)


def test_dense_layer_gradients(rng):
    check_layer(Dense(5, 3, dtype=np.float64, rng=0), rng.standard_normal((4, 5)), rng)


@pytest.mark.parametrize("shape", [(3, 4, 5, 2), (6, 3), (1, 2, 2, 1)])
def test_batch_norm_layer_gradients(shape, rng):
    layer = BatchNorm(shape[-1], dtype=np.float64)
    layer.params["scale"][:] = rng.uniform(0.5, 2.0, shape[-1]) * rng.choice([-1, 1], shape[-1])
    layer.params["shift"][:] = rng.standard_normal(shape[-1])
    check_layer(layer, rng.standard_normal(shape) * 3 + 1, rng)


def test_batch_norm_standardizes_each_channel_in_training(rng):
    layer = BatchNorm(3, epsilon=1e-12, dtype=np.float64)
    layer.params["scale"][:] = [1.0, 2.0, 0.5]
    layer.params["shift"][:] = [0.0, -1.0, 4.0]
    x = rng.standard_normal((8, 5, 5, 3)) * [1.0, 10.0, 0.1] + [5.0, -3.0, 100.0]
    out = layer.forward(x, training=True).reshape(-1, 3)
    np.testing.assert_allclose(out.mean(axis=0), [0.0, -1.0, 4.0], atol=1e-10)
    np.testing.assert_allclose(out.std(axis=0), [1.0, 2.0, 0.5], rtol=1e-8)


def test_batch_norm_inference_uses_running_statistics(rng):
    layer = BatchNorm(2, momentum=0.5, dtype=np.float64)
    batches = [rng.standard_normal((10, 2)) * [2.0, 0.5] + [1.0, -1.0] for _ in range(3)]
    mean, var = np.zeros(2), np.ones(2)
    for batch in batches:
        layer.forward(batch, training=True)
        mean = 0.5 * mean + 0.5 * batch.mean(axis=0)
        var = 0.5 * var + 0.5 * batch.var(axis=0, ddof=1)
    np.testing.assert_allclose(layer.buffers["running_mean"], mean)
    np.testing.assert_allclose(layer.buffers["running_var"], var)
    x = rng.standard_normal((4, 2))
    np.testing.assert_allclose(layer.forward(x), (x - mean) / np.sqrt(var + layer.epsilon))
    # Inference leaves the running statistics alone and does not depend on the batch.
    np.testing.assert_allclose(layer.forward(x[:1]), layer.forward(x)[:1])
    np.testing.assert_allclose(layer.buffers["running_mean"], mean)


def test_batch_norm_needs_two_values_in_training(rng):
    layer = BatchNorm(3)
    with pytest.raises(ValueError, match="at least 2 values per channel"):
        layer.forward(rng.standard_normal((1, 1, 1, 3)).astype(np.float32), training=True)
    # Inference normalises with the running statistics, so one value is fine.
    assert layer.forward(np.ones((1, 1, 1, 3), dtype=np.float32)).shape == (1, 1, 1, 3)


def test_network_weights_include_batch_norm_statistics(rng):
    network = build_network((8, 8, 1), (2,), 3, "same", (), 0.0, batch_norm=True, rng=0)
    network.forward(rng.standard_normal((4, 8, 8, 1)).astype(np.float32) + 3, training=True)
    weights = network.get_weights()
    batch_norm_idx = next(i for i, layer in enumerate(network.layers) if isinstance(layer, BatchNorm))
    assert f"{batch_norm_idx}/running_mean" in weights
    fresh = build_network((8, 8, 1), (2,), 3, "same", (), 0.0, batch_norm=True, rng=1)
    fresh.set_weights(weights)
    x = rng.standard_normal((3, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(fresh.forward(x), network.forward(x))
    negative = dict(weights)
    negative[f"{batch_norm_idx}/running_var"] = -np.ones(2, dtype=np.float32)
    with pytest.raises(ValueError, match="variances >= 0"):
        fresh.set_weights(negative)
    del weights[f"{batch_norm_idx}/running_var"]
    with pytest.raises(ValueError, match="running_var"):
        fresh.set_weights(weights)


def test_flatten_round_trip(rng):
    layer = Flatten()
    x = rng.standard_normal((2, 3, 4, 5))
    out = layer.forward(x, training=True)
    assert out.shape == (2, 60)
    np.testing.assert_array_equal(layer.backward(out), x)


def test_dropout_scales_kept_units(rng):
    layer = Dropout(0.25, rng=0)
    x = np.ones((200, 50), dtype=np.float32)
    out = layer.forward(x, training=True)
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1 / 0.75)
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), out)


def test_dropout_passes_through_at_inference():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(Dropout(0.5, rng=0).forward(x, training=False), x)


def test_cross_entropy_gradient(rng):
    logits = rng.standard_normal((5, 2))
    labels = np.array([0, 1, 1, 0, 1])
    weights = rng.random(5) + 0.5
    _, grad, _ = softmax_cross_entropy(logits, labels, weights)

    def objective():
        return softmax_cross_entropy(logits, labels, weights)[0]

    np.testing.assert_allclose(grad, numerical_gradient(objective, logits), rtol=TOLERANCE, atol=1e-9)


@pytest.mark.parametrize("label_smoothing", [0.1, 0.5])
def test_cross_entropy_label_smoothing_gradient(label_smoothing, rng):
    logits = rng.standard_normal((4, 3))
    labels = np.array([0, 2, 1, 2])
    weights = rng.uniform(0.5, 2.0, 4)

    def objective():
        return softmax_cross_entropy(logits, labels, weights, label_smoothing)[0]

    _, grad, _ = softmax_cross_entropy(logits, labels, weights, label_smoothing)
    np.testing.assert_allclose(grad, numerical_gradient(objective, logits), rtol=1e-6, atol=1e-8)


def test_cross_entropy_label_smoothing_worked_example():
    # Equal logits give p = 1/2. Targets with smoothing 0.2 are 0.9 and 0.1,
    # so the loss is log 2 and the gradient p - target = (-0.4, 0.4).
    loss, grad, _ = softmax_cross_entropy(np.zeros((1, 2)), np.array([0]), label_smoothing=0.2)
    assert loss == pytest.approx(np.log(2))
    np.testing.assert_allclose(grad, [[-0.4, 0.4]])


def test_cross_entropy_worked_example():
    # logits (0, log 3): softmax is (1/4, 3/4); the loss of label 1 is -log(3/4).
    logits = np.array([[0.0, np.log(3.0)]])
    loss, grad, probabilities = softmax_cross_entropy(logits, np.array([1]))
    np.testing.assert_allclose(probabilities, [[0.25, 0.75]])
    assert loss == pytest.approx(-np.log(0.75))
    np.testing.assert_allclose(grad, [[0.25, -0.25]])


def test_cross_entropy_large_logits_stay_finite():
    loss, grad, _ = softmax_cross_entropy(np.array([[1000.0, -1000.0]]), np.array([0]))
    assert np.isfinite(loss)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize(
    "padding, convs_per_block, batch_norm",
    [("same", 1, False), ("valid", 1, False), ("same", 2, False), ("same", 2, True), ("valid", 1, True)],
)
def test_whole_network_gradients(padding, convs_per_block, batch_norm, rng):
    network = build_network(
        (12, 14, 1), (2, 3), 3, padding, (4,), 0.0, convs_per_block=convs_per_block,
        batch_norm=batch_norm, rng=1, dtype=np.float64,
    )
    x = rng.standard_normal((3, 12, 14, 1))
    labels = np.array([0, 1, 1])

    def objective():
        return softmax_cross_entropy(network.forward(x, training=True), labels)[0]

    _, grad_logits, _ = softmax_cross_entropy(network.forward(x, training=True), labels)
    network.backward(grad_logits)
    for (layer_idx, name), param, grad in network.params_and_grads():
        analytic = grad.copy()
        np.testing.assert_allclose(
            analytic, numerical_gradient(objective, param), rtol=1e-5, atol=1e-7,
            err_msg=f"layer {layer_idx} {name}",
        )


def test_adam_first_step_moves_by_learning_rate():
    # After one bias-corrected step, m_hat / sqrt(v_hat) = sign(grad), so
    # each parameter moves by learning_rate (up to epsilon).
    from csmile.nn import Adam

    param = np.array([1.0, -2.0, 0.5])
    grad = np.array([0.3, -4.0, 1e-3])
    Adam(learning_rate=0.1, epsilon=1e-12).step([("p", param, grad)])
    np.testing.assert_allclose(param, [0.9, -1.9, 0.4], rtol=1e-6)


def test_sgd_momentum_accumulates():
    from csmile.nn import SGD

    param = np.array([0.0])
    optimizer = SGD(learning_rate=0.5, momentum=0.9)
    optimizer.step([("p", param, np.array([1.0]))])
    optimizer.step([("p", param, np.array([1.0]))])
    # velocity: -0.5, then 0.9 * -0.5 - 0.5 = -0.95; position -0.5 - 0.95
    np.testing.assert_allclose(param, [-1.45])
