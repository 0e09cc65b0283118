"""Random augmentation of grayscale face batches for training.

Each call draws new parameters for every face of the batch and applies, in
this order: a random affine warp (mirror, rotation, scale, shift) with
bilinear sampling and replicated edges, a random gain, contrast and gamma,
an occasional 3x3 blur, and Gaussian noise. Everything is vectorised over the
batch with NumPy, without Python loops over pixels or faces.
"""

from numbers import Integral, Real

import numpy as np

__all__ = ["Augmenter"]

_PARAMETER_NAMES = (
    "mirror",
    "max_shift",
    "max_rotation",
    "scale_range",
    "brightness",
    "contrast",
    "gamma",
    "blur_probability",
    "noise_std",
    "random_state",
)


class Augmenter:
    """Random geometric and photometric changes to batches of faces.

    Parameters
    ----------
    mirror : bool, default=True
        Flip each face left-right with probability 0.5.
    max_shift : float, default=0.08
        Largest shift along each axis, as a fraction of the image side.
    max_rotation : float, default=12.0
        Largest rotation in degrees, either direction.
    scale_range : tuple of 2 float, default=(0.9, 1.1)
        Zoom factor range, drawn uniformly. Values above 1 enlarge the face.
    brightness : float, default=0.25
        Pixels are multiplied by a gain drawn from
        ``1 - brightness .. 1 + brightness``.
    contrast : float, default=0.25
        Deviations from each face's mean are multiplied by a factor drawn
        from ``1 - contrast .. 1 + contrast``.
    gamma : float, default=0.2
        The 0..1 intensity is raised to the power ``exp(u)`` with ``u``
        drawn from ``-gamma .. gamma``.
    blur_probability : float, default=0.2
        Probability that a face is blurred with the 3x3 kernel
        ``[1, 2, 1] / 4`` applied along each axis.
    noise_std : float, default=0.03
        Standard deviation of the added Gaussian noise, as a fraction of 255.
    random_state : int or None, default=None
        Seed of the generator used when :meth:`__call__` gets no ``rng``.

    Notes
    -----
    All strengths set to 0 and ``mirror=False`` give an exact copy; see
    :meth:`none`. Output values are clipped to 0..255.

    Examples
    --------
    >>> import numpy as np
    >>> from csmile.data import Augmenter
    >>> faces = np.full((4, 64, 64), 128.0, dtype=np.float32)
    >>> augmented = Augmenter(random_state=0)(faces, np.random.default_rng(0))
    >>> augmented.shape, augmented.dtype
    ((4, 64, 64), dtype('float32'))
    """

    def __init__(
        self,
        mirror=True,
        max_shift=0.08,
        max_rotation=12.0,
        scale_range=(0.9, 1.1),
        brightness=0.25,
        contrast=0.25,
        gamma=0.2,
        blur_probability=0.2,
        noise_std=0.03,
        random_state=None,
    ):
        self.mirror = mirror
        self.max_shift = max_shift
        self.max_rotation = max_rotation
        self.scale_range = scale_range
        self.brightness = brightness
        self.contrast = contrast
        self.gamma = gamma
        self.blur_probability = blur_probability
        self.noise_std = noise_std
        self.random_state = random_state
        self._validate()
        self._rng = None

    @classmethod
    def none(cls):
        """Return an augmenter that changes nothing (every strength 0, no mirroring)."""
        return cls(
            mirror=False,
            max_shift=0.0,
            max_rotation=0.0,
            scale_range=(1.0, 1.0),
            brightness=0.0,
            contrast=0.0,
            gamma=0.0,
            blur_probability=0.0,
            noise_std=0.0,
        )

    def _validate(self):
        if not isinstance(self.mirror, (bool, np.bool_)):
            raise TypeError(f"mirror must be True or False, got {self.mirror!r}")
        for name, upper in (
            ("max_shift", 0.5),
            ("max_rotation", 180.0),
            ("brightness", 1.0),
            ("contrast", 1.0),
            ("gamma", 2.0),
            ("blur_probability", 1.0),
            ("noise_std", 1.0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= value <= upper:
                raise ValueError(f"{name} must be a number in 0..{upper:g}, got {value!r}")
        scale_range = self.scale_range
        valid_range = (
            isinstance(scale_range, (tuple, list))
            and len(scale_range) == 2
            and all(isinstance(value, Real) and not isinstance(value, bool) for value in scale_range)
            and 0.0 < scale_range[0] <= scale_range[1]
        )
        if not valid_range:
            raise ValueError(
                f"scale_range must be two positive numbers (low, high) with low <= high, got {scale_range!r}"
            )
        seed = self.random_state
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, Integral)):
            raise TypeError(f"random_state must be an int or None, got {seed!r}")

    @property
    def is_identity(self):
        """True when every call returns an exact copy of its input."""
        return (
            not self.mirror
            and not self._warps()
            and self.brightness == 0
            and self.contrast == 0
            and self.gamma == 0
            and self.blur_probability == 0
            and self.noise_std == 0
        )

    def _warps(self):
        return (
            self.max_shift > 0
            or self.max_rotation > 0
            or tuple(self.scale_range) != (1.0, 1.0)
        )

    # -- parameters --------------------------------------------------------

    def to_dict(self):
        """Return the parameters as a dict of plain Python values, for saving."""
        params = {name: getattr(self, name) for name in _PARAMETER_NAMES}
        params["mirror"] = bool(params["mirror"])
        params["scale_range"] = [float(value) for value in self.scale_range]
        return params

    get_params = to_dict

    @classmethod
    def from_dict(cls, params):
        """Build an augmenter from the output of :meth:`to_dict`."""
        unknown = sorted(set(params) - set(_PARAMETER_NAMES))
        if unknown:
            raise ValueError(
                f"unknown Augmenter parameters {unknown}; expected some of {list(_PARAMETER_NAMES)}"
            )
        params = dict(params)
        if "scale_range" in params:
            params["scale_range"] = tuple(params["scale_range"])
        return cls(**params)

    def __repr__(self):
        params = ", ".join(f"{name}={value!r}" for name, value in self.to_dict().items())
        return f"Augmenter({params})"

    def __eq__(self, other):
        return isinstance(other, Augmenter) and self.to_dict() == other.to_dict()

    # -- augmentation ------------------------------------------------------

    def __call__(self, faces, rng=None):
        """Return a randomly augmented copy of a batch of faces.

        Parameters
        ----------
        faces : ndarray of shape (n_samples, height, width)
            Faces on the 0..255 scale. The input is not modified.
        rng : numpy.random.Generator or int, optional
            Source of randomness. The same generator state gives the same
            output. By default a generator seeded with ``random_state`` is
            created on the first call and reused.

        Returns
        -------
        augmented : ndarray of shape (n_samples, height, width), dtype float32
        """
        faces = np.asarray(faces, dtype=np.float32)
        if faces.ndim != 3:
            raise ValueError(f"expected faces of shape (n_samples, height, width), got shape {faces.shape}")
        rng = self._generator(rng)
        n_samples = len(faces)
        if n_samples == 0 or self.is_identity:
            return faces.copy()

        if self.mirror or self._warps():
            augmented = self._warp(faces, rng)
        else:
            augmented = faces.copy()
        self._adjust_intensity(augmented, rng)
        self._blur_some(augmented, rng)
        if self.noise_std > 0:
            noise = rng.standard_normal(augmented.shape, dtype=np.float32)
            noise *= np.float32(self.noise_std * 255.0)
            augmented += noise
        np.clip(augmented, 0.0, 255.0, out=augmented)
        return augmented

    def _generator(self, rng):
        if isinstance(rng, np.random.Generator):
            return rng
        if rng is None:
            if self._rng is None:
                self._rng = np.random.default_rng(self.random_state)
            return self._rng
        if isinstance(rng, Integral) and not isinstance(rng, bool):
            return np.random.default_rng(rng)
        raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")

    def _warp(self, faces, rng):
        """Resample each face through its own random affine map."""
        n_samples, height, width = faces.shape
        angle = np.radians(rng.uniform(-self.max_rotation, self.max_rotation, n_samples))
        scale = rng.uniform(self.scale_range[0], self.scale_range[1], n_samples)
        shift_x = rng.uniform(-self.max_shift, self.max_shift, n_samples) * width
        shift_y = rng.uniform(-self.max_shift, self.max_shift, n_samples) * height
        if self.mirror:
            flip_sign = np.where(rng.random(n_samples) < 0.5, -1.0, 1.0)
        else:
            flip_sign = np.ones(n_samples)

        # The forward map takes a source point q to p = R S F (q - c) + c + t.
        # Sampling needs its inverse, q = F S^-1 R^-1 (p - c - t) + c, written
        # as q_x = a p_x + b p_y + e and q_y = f p_x + g p_y + k per face.
        centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
        cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
        a, b = flip_sign * cos, flip_sign * sin
        f, g = -sin, cos
        origin_x = centre_x + shift_x
        origin_y = centre_y + shift_y
        e = centre_x - a * origin_x - b * origin_y
        k = centre_y - f * origin_x - g * origin_y

        columns = np.arange(width, dtype=np.float32)[None, None, :]
        rows = np.arange(height, dtype=np.float32)[None, :, None]

        def per_face(values):
            return values.astype(np.float32)[:, None, None]

        source_x = per_face(a) * columns + (per_face(b) * rows + per_face(e))
        source_y = per_face(f) * columns + (per_face(g) * rows + per_face(k))
        return _sample_bilinear(faces, source_x, source_y)

    def _adjust_intensity(self, faces, rng):
        """Apply a random gain, contrast and gamma to each face, in place."""
        n_samples = len(faces)
        if self.brightness > 0 or self.contrast > 0:
            gain = 1.0 + rng.uniform(-self.brightness, self.brightness, n_samples)
            contrast = 1.0 + rng.uniform(-self.contrast, self.contrast, n_samples)
            mean = faces.mean(axis=(1, 2), dtype=np.float64)
            # gain * ((x - mean) * contrast + mean), folded into x * slope + offset.
            slope = (gain * contrast).astype(np.float32)[:, None, None]
            offset = (gain * mean * (1.0 - contrast)).astype(np.float32)[:, None, None]
            faces *= slope
            faces += offset
        if self.gamma > 0:
            exponent = np.exp(rng.uniform(-self.gamma, self.gamma, n_samples)).astype(np.float32)
            np.clip(faces, 0.0, 255.0, out=faces)
            faces *= np.float32(1.0 / 255.0)
            np.power(faces, exponent[:, None, None], out=faces)
            faces *= np.float32(255.0)

    def _blur_some(self, faces, rng):
        """Blur a random subset of the faces in place."""
        if self.blur_probability <= 0:
            return
        chosen = np.flatnonzero(rng.random(len(faces)) < self.blur_probability)
        if len(chosen) == 0:
            return
        faces[chosen] = _blur_121(_blur_121(faces[chosen], axis=2), axis=1)


def _sample_bilinear(faces, source_x, source_y):
    """Sample ``faces`` at float coordinates with replicated edges.

    ``source_x`` and ``source_y`` have shape (n_samples, height, width) and
    give, for each output pixel, the column and row to read in its own face.
    """
    n_samples, height, width = faces.shape
    np.clip(source_x, 0.0, width - 1, out=source_x)
    np.clip(source_y, 0.0, height - 1, out=source_y)
    column0 = source_x.astype(np.intp)  # truncation is floor because the values are >= 0
    row0 = source_y.astype(np.intp)
    weight_x = source_x - column0
    weight_y = source_y - row0
    step_x = (column0 < width - 1).astype(np.intp)
    step_y = (row0 < height - 1).astype(np.intp) * width

    flat = faces.reshape(-1)
    index = row0 * width
    index += column0
    index += (np.arange(n_samples, dtype=np.intp) * (height * width))[:, None, None]
    top_left = flat.take(index)
    top_right = flat.take(index + step_x)
    index += step_y
    bottom_left = flat.take(index)
    bottom_right = flat.take(index + step_x)

    top_right -= top_left
    top_right *= weight_x
    top_left += top_right
    bottom_right -= bottom_left
    bottom_right *= weight_x
    bottom_left += bottom_right
    bottom_left -= top_left
    bottom_left *= weight_y
    top_left += bottom_left
    return top_left


def _blur_121(faces, axis):
    """Filter with ``[1, 2, 1] / 4`` along ``axis`` (1 or 2), replicating the edge pixels."""
    length = faces.shape[axis]
    if length < 2:
        return faces.copy()
    padded = np.concatenate(
        [faces.take([0], axis=axis), faces, faces.take([length - 1], axis=axis)], axis=axis
    )
    before = [slice(None)] * 3
    after = [slice(None)] * 3
    before[axis] = slice(0, length)
    after[axis] = slice(2, length + 2)
    blurred = faces * np.float32(0.5)
    blurred += np.float32(0.25) * (padded[tuple(before)] + padded[tuple(after)])
    return blurred
