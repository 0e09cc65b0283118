"""Checks of estimator parameters that raise with the name, the value and the valid range."""

import numbers

import numpy as np


def check_int(name, value, minimum, maximum=None):
    """Raise ValueError unless ``value`` is an integer (not a bool) from ``minimum`` to ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value!r}")


def check_int_tuple(name, value, allow_empty, maximum=None):
    """Raise unless ``value`` is a sequence of positive integers, such as ``(16, 32)``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        raise TypeError(f"{name} must be a tuple of integers such as ({value},), got {value!r}")
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of integers, got {value!r}") from None
    if not items and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    for item in items:
        check_int(f"each entry of {name}", item, 1, maximum)


def check_choice(name, value, choices):
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_float(name, value, low, high, low_open=False, high_open=False):
    """Raise ValueError unless ``value`` is a finite number in the interval from ``low`` to ``high``.

    ``None`` as a bound means unbounded; ``low_open`` and ``high_open``
    exclude the bound itself.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and (value < low or (low_open and value == low))) or (
        high is not None and (value > high or (high_open and value == high))
    ):
        low_text = "(" if low_open else "["
        high_text = ")" if high_open else "]"
        high_text = ")" if high is None else high_text
        raise ValueError(f"{name} must be in {low_text}{low}, {'inf' if high is None else high}{high_text}, got {value!r}")
