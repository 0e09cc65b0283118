"""Random augmentation of grayscale face batches for training.

Each call draws new parameters for every face of the batch. It first warps
each face by a random affine map (mirror, rotation, scale, shift) with
bilinear sampling and replicated edges. Then it applies a random gain,
contrast and gamma, an occasional Gaussian blur, and Gaussian noise, in
that order. Everything is vectorised over the batch with NumPy, without Python
loops over pixels or faces.
"""

from numbers import Integral, Real

import numpy as np

__all__ = ["Augmenter"]

# Zoom factors outside this range shrink a face to a few pixels or show a
# small part of it.
MIN_SCALE = 0.25
MAX_SCALE = 4.0

# Smallest blur drawn. Below about half a pixel a Gaussian barely changes a face.
MIN_BLUR_SIGMA = 0.5

_PARAMETER_NAMES = (
    "mirror",
    "max_shift",
    "max_rotation",
    "scale_range",
    "brightness",
    "contrast",
    "gamma",
    "blur_probability",
    "max_blur_sigma",
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
    blur_probability : float, default=0.3
        Probability that a face is blurred by a Gaussian.
    max_blur_sigma : float, default=1.5
        The Gaussian's standard deviation, in pixels, is drawn for each
        blurred face from ``0.5 .. max_blur_sigma``. The larger sigmas
        imitate faces enlarged from small photos or webcam frames.
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
        blur_probability=0.3,
        max_blur_sigma=1.5,
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
        self.max_blur_sigma = max_blur_sigma
        self.noise_std = noise_std
        self.random_state = random_state
        self._validate()
        self._rng = None
        self._workspace = _Workspace()

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
            ("max_blur_sigma", 5.0),
            ("noise_std", 1.0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= value <= upper:
                raise ValueError(f"{name} must be a number in 0..{upper:g}, got {value!r}")
        if self.blur_probability > 0 and self.max_blur_sigma < MIN_BLUR_SIGMA:
            raise ValueError(
                f"max_blur_sigma must be at least {MIN_BLUR_SIGMA} when blur_probability > 0, "
                f"got {self.max_blur_sigma!r}; set blur_probability=0 to turn blurring off"
            )
        scale_range = self.scale_range
        valid_range = (
            isinstance(scale_range, (tuple, list))
            and len(scale_range) == 2
            and all(isinstance(value, Real) and not isinstance(value, bool) for value in scale_range)
            and MIN_SCALE <= scale_range[0] <= scale_range[1] <= MAX_SCALE
        )
        if not valid_range:
            raise ValueError(
                f"scale_range must be two numbers (low, high) with {MIN_SCALE} <= low <= high <= "
                f"{MAX_SCALE}, got {scale_range!r}"
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

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_workspace"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._workspace = _Workspace()

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
            noise = self._workspace.get("noise", augmented.shape, np.float32)
            rng.standard_normal(dtype=np.float32, out=noise)
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

        def per_face(values):
            return values.astype(np.float32)[:, None, None]

        columns = np.arange(width, dtype=np.float32)[None, None, :]
        rows = np.arange(height, dtype=np.float32)[None, :, None]
        source_x = self._workspace.get("source_x", faces.shape, np.float32)
        source_y = self._workspace.get("source_y", faces.shape, np.float32)
        np.add(per_face(a) * columns, per_face(b) * rows + per_face(e), out=source_x)
        np.add(per_face(f) * columns, per_face(g) * rows + per_face(k), out=source_y)
        return _sample_bilinear(faces, source_x, source_y, self._workspace)

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
        sigma = rng.uniform(MIN_BLUR_SIGMA, self.max_blur_sigma, len(chosen))
        faces[chosen] = _gaussian_blur(faces[chosen], sigma)


class _Workspace:
    """Scratch arrays reused between calls, one per name.

    Fresh multi-megabyte temporaries cost page faults on every call (the
    allocator returns them to the system), which made a batch of 32 faces of
    64x64 about three times slower in a measurement on Linux with glibc.
    Reusing them keeps the augmentation of such a batch within a few
    milliseconds. NOTE: an Augmenter shared between threads must not be
    called concurrently, because the calls would share these arrays.
    """

    def __init__(self):
        self._arrays = {}

    def get(self, name, shape, dtype):
        array = self._arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = np.empty(shape, dtype=dtype)
            self._arrays[name] = array
        return array


def _sample_bilinear(faces, source_x, source_y, workspace):
    """Sample ``faces`` at float coordinates with replicated edges.

    ``source_x`` and ``source_y`` have shape (n_samples, height, width) and
    give, for each output pixel, the column and row to read in its own face.
    They are overwritten. Returns a new float32 array.
    """
    shape = faces.shape
    n_samples, height, width = shape
    np.clip(source_x, 0.0, width - 1, out=source_x)
    np.clip(source_y, 0.0, height - 1, out=source_y)

    # Casting truncates, which is floor because the coordinates are >= 0.
    column0 = workspace.get("column0", shape, np.intp)
    row0 = workspace.get("row0", shape, np.intp)
    np.copyto(column0, source_x, casting="unsafe")
    np.copyto(row0, source_y, casting="unsafe")
    weight_x = workspace.get("weight_x", shape, np.float32)
    weight_y = workspace.get("weight_y", shape, np.float32)
    np.subtract(source_x, column0, out=weight_x, casting="unsafe")
    np.subtract(source_y, row0, out=weight_y, casting="unsafe")

    # Flat index of the top-left neighbour, and the steps to the right and
    # lower neighbours (0 on the last column or row, which replicates it).
    index = workspace.get("index", shape, np.intp)
    np.multiply(row0, width, out=index)
    index += column0
    index += (np.arange(n_samples, dtype=np.intp) * (height * width))[:, None, None]
    step_x = workspace.get("step_x", shape, np.intp)
    np.less(column0, width - 1, out=step_x, casting="unsafe")
    step_y = workspace.get("step_y", shape, np.intp)
    np.less(row0, height - 1, out=step_y, casting="unsafe")
    step_y *= width

    flat = faces.reshape(-1)
    neighbour = workspace.get("neighbour", shape, np.intp)
    top = np.empty(shape, dtype=np.float32)
    right = workspace.get("right", shape, np.float32)
    flat.take(index, out=top)
    np.add(index, step_x, out=neighbour)
    flat.take(neighbour, out=right)
    right -= top
    right *= weight_x
    top += right

    bottom = workspace.get("bottom", shape, np.float32)
    index += step_y
    flat.take(index, out=bottom)
    np.add(index, step_x, out=neighbour)
    flat.take(neighbour, out=right)
    right -= bottom
    right *= weight_x
    bottom += right

    bottom -= top
    bottom *= weight_y
    top += bottom
    return top


def _gaussian_blur(faces, sigma):
    """Blur each face with a Gaussian of its own ``sigma`` (pixels), replicating the edge pixels."""
    radius = max(1, int(np.ceil(3.0 * float(np.max(sigma)))))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    # One normalised kernel row per face, shape (n_samples, 2 * radius + 1).
    kernels = np.exp(-0.5 * (offsets[None, :] / np.asarray(sigma, dtype=np.float64)[:, None]) ** 2)
    kernels = (kernels / kernels.sum(axis=1, keepdims=True)).astype(np.float32)
    for axis in (2, 1):
        length = faces.shape[axis]
        # Replicated edges: clip the source positions to the valid range.
        positions = np.clip(np.arange(length)[None, :] + np.arange(-radius, radius + 1)[:, None], 0, length - 1)
        blurred = np.zeros_like(faces)
        for tap, source in enumerate(positions):
            weight = kernels[:, tap][:, None, None]
            blurred += weight * np.take(faces, source, axis=axis)
        faces = blurred
    return faces
