"""Measure csmile against PyTorch, and its compiled kernels against the NumPy reference.

Run by hand on a quiet machine, from the repository root::

    python benchmarks/bench_speed.py                 # full run, writes docs/performance.md
    python benchmarks/bench_speed.py --quick --output /tmp/perf-quick.md

Every number is the median over ``--repeats`` runs. The contenders of one
measurement run in turn inside each repeat (compiled, reference, torch,
compiled, ...), so a slow drift of the machine affects all of them alike.
The script prints one Markdown table and writes it, with a description of
the machine, to ``--output``. See benchmarks/README.md for what it needs.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time

# These variables override OpenBLAS's CPU detection when it loads, so they
# must be gone before NumPy is imported.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
UNSET_MARKER = "CSMILE_BENCH_UNSET_OVERRIDES"
SPAWN_CLEAN_CHILD = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def reexec_without_openblas_overrides():
    """Restart this script with the OpenBLAS override variables removed, if any is set."""
    found = [name for name in OPENBLAS_OVERRIDES if name in os.environ]
    if not found:
        return
    env = {name: value for name, value in os.environ.items() if name not in OPENBLAS_OVERRIDES}
    env[UNSET_MARKER] = " ".join(f"{name}={os.environ[name]}" for name in found)
    print(f"bench_speed: unsetting {env[UNSET_MARKER]} and restarting", file=sys.stderr, flush=True)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


if __name__ == "__main__":
    reexec_without_openblas_overrides()

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

try:
    import csmile  # noqa: E402
except ImportError:  # run from a checkout without installing csmile
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import csmile  # noqa: E402

import csmile.kernels  # noqa: E402
from csmile import SmileNet  # noqa: E402

IMAGE_SIZE = 64
KERNEL_NAMES = ("conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward")
MEMORY_TARGET_BYTES = 10**9
TORCH_INSTALL_HINT = (
    "install the CPU build with 'pip install torch --index-url "
    "https://download.pytorch.org/whl/cpu', or the wheel of your platform"
)

# Each network as csmile builds it, where a conv block is conv, 2x2 max pool,
# then ReLU. csmile pools before the ReLU (same result, a quarter of the ReLU
# work), and the PyTorch twin uses the same order so both do the same arithmetic.
NETWORKS = {
    "paper": {"filters": (8,), "padding": "valid", "dense": (), "dropout": 0.0},
    "default": {"filters": (16, 32, 64), "padding": "same", "dense": (128,), "dropout": 0.5},
}

# Images (or calls) per measured run. The reference kernels are slower, so
# their runs are shorter. Throughput is per image, so the columns still compare.
FULL_SIZES = {
    "train32": {"paper": 1024, "default": 512},
    "train32_reference": {"paper": 256, "default": 128},
    "train1": {"paper": 128, "default": 64},
    "train1_reference": {"paper": 32, "default": 16},
    "infer1": 256,
    "infer1_reference": 64,
    "infer256": 2048,
    "infer256_reference": 512,
    "latency_calls": 300,
    "latency_calls_reference": 100,
    "kernel_calls": 10,
    "kernel_calls_reference": 3,
    "scaling": 512,
    "matmul_size": 2048,
    "memory_limit": None,
}
QUICK_SIZES = {
    "train32": {"paper": 64, "default": 64},
    "train32_reference": {"paper": 32, "default": 32},
    "train1": {"paper": 8, "default": 8},
    "train1_reference": {"paper": 4, "default": 4},
    "infer1": 16,
    "infer1_reference": 8,
    "infer256": 256,
    "infer256_reference": 256,
    "latency_calls": 30,
    "latency_calls_reference": 10,
    "kernel_calls": 2,
    "kernel_calls_reference": 1,
    "scaling": 64,
    "matmul_size": 1024,
    "memory_limit": 256,
}


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Measure csmile training and inference speed against PyTorch and "
        "the compiled kernels against the NumPy reference; print a Markdown table "
        "and write it with a description of the machine.",
    )
    parser.add_argument("--repeats", type=int, default=None,
                        help="measured runs per number, reported as the median "
                        "(default: 3, or 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: few images per run and the memory run on 256 images; "
                        "the numbers are not for claims")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the pure-NumPy reference kernels")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for csmile (n_jobs) and torch.set_num_threads "
                        "(default: the cores this process may use)")
    parser.add_argument("--output", default=None,
                        help="Markdown file to write (default: docs/performance.md for a full "
                        "run; a --quick run writes only when this is given)")
    parser.add_argument("--data", default=None,
                        help="SMILEsmileD folder for the memory run (default: $CSMILE_DATA)")
    parser.add_argument("--split", default=None,
                        help="training list for the memory run (default: "
                        "$CSMILE_SPLITS/smilesmiled-train.txt)")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1; got {args.repeats}")
    if args.threads is None:
        args.threads = available_cores()
    if args.threads < 1:
        parser.error(f"--threads must be at least 1; got {args.threads}")
    if args.output is None and not args.quick:
        args.output = os.path.join("docs", "performance.md")
    return args


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------


def interleaved(contenders, repeats):
    """Run each contender once per repeat, in turn; return the median of each.

    ``contenders`` maps a name to a function that runs one measured run and
    returns its number. A name mapped to None is skipped.
    """
    active = {name: run for name, run in contenders.items() if run is not None}
    values = {name: [] for name in active}
    for _ in range(repeats):
        for name, run in active.items():
            values[name].append(run())
    return {name: statistics.median(found) for name, found in values.items()}


@contextlib.contextmanager
def reference_kernels():
    """Make the csmile layers call the pure-NumPy reference kernels inside the block.

    The layers look up ``csmile.kernels.<name>`` on every call, so swapping
    the module attributes switches the backend of the real ``fit`` and
    ``predict_proba`` path.
    """
    saved = {name: getattr(csmile.kernels, name) for name in KERNEL_NAMES}
    try:
        for name in KERNEL_NAMES:
            setattr(csmile.kernels, name, getattr(csmile.kernels.reference, name))
        yield
    finally:
        for name, kernel in saved.items():
            setattr(csmile.kernels, name, kernel)


def backend_context(backend):
    return reference_kernels() if backend == "reference" else contextlib.nullcontext()


def random_faces(n_samples, seed=0):
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 256, size=(n_samples, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    labels = np.arange(n_samples) % 2
    return faces, labels


# ---------------------------------------------------------------------------
# csmile side
# ---------------------------------------------------------------------------


def make_smilenet(network, batch_size, n_jobs):
    """Return an unfitted SmileNet for one epoch of plain Adam training."""
    settings = dict(
        augment=False, validation_fraction=0, early_stopping=False, epochs=1,
        batch_size=batch_size, class_weight=None, optimizer="adam", n_jobs=n_jobs,
        random_state=0,
    )
    if network == "paper":
        return SmileNet.paper(filters=NETWORKS["paper"]["filters"][0], **settings)
    config = NETWORKS[network]
    return SmileNet(filters=config["filters"], dense=config["dense"], **settings)


def csmile_train_run(network, batch_size, n_samples, n_jobs, backend):
    """Return a function that times one ``fit`` epoch and returns images per second."""
    faces, labels = random_faces(n_samples)

    def run():
        model = make_smilenet(network, batch_size, n_jobs)
        with backend_context(backend):
            started = time.perf_counter()
            model.fit(faces, labels)
            elapsed = time.perf_counter() - started
        return n_samples / elapsed

    return run


def fitted_smilenet(network, n_jobs):
    faces, labels = random_faces(32, seed=1)
    return make_smilenet(network, 32, n_jobs).fit(faces, labels)


def csmile_infer_run(model, batch_size, n_samples, backend):
    """Return a function that times ``predict_proba`` in batches and returns images per second."""
    faces, _ = random_faces(n_samples, seed=2)
    n_samples = (n_samples // batch_size) * batch_size

    def run():
        with backend_context(backend):
            started = time.perf_counter()
            for start in range(0, n_samples, batch_size):
                model.predict_proba(faces[start:start + batch_size])
            elapsed = time.perf_counter() - started
        return n_samples / elapsed

    return run


def csmile_latency_run(model, n_calls, backend):
    """Return a function that returns the median microseconds of one one-face ``predict_proba``."""
    faces, _ = random_faces(1, seed=3)

    def run():
        times = []
        with backend_context(backend):
            for _ in range(n_calls):
                started = time.perf_counter()
                model.predict_proba(faces)
                times.append(time.perf_counter() - started)
        return statistics.median(times) * 1e6

    return run


# ---------------------------------------------------------------------------
# PyTorch side
# ---------------------------------------------------------------------------


def import_torch():
    try:
        import torch
    except ImportError as error:
        print(f"bench_speed: PyTorch is not available ({error}); skipping the torch columns. "
              f"To compare, {TORCH_INSTALL_HINT}.", flush=True)
        return None
    return torch


def build_torch_network(torch, network):
    """Build the PyTorch twin of a csmile network (NCHW, float32)."""
    nn = torch.nn
    config = NETWORKS[network]
    layers = []
    n_channels, size = 1, IMAGE_SIZE
    padding = 1 if config["padding"] == "same" else 0
    for n_filters in config["filters"]:
        layers += [nn.Conv2d(n_channels, n_filters, 3, padding=padding), nn.MaxPool2d(2), nn.ReLU()]
        size = (size - 2 + 2 * padding) // 2
        n_channels = n_filters
    layers.append(nn.Flatten())
    n_features = n_channels * size * size
    for n_units in config["dense"]:
        layers += [nn.Linear(n_features, n_units), nn.ReLU()]
        if config["dropout"] > 0:
            layers.append(nn.Dropout(config["dropout"]))
        n_features = n_units
    layers.append(nn.Linear(n_features, 2))
    return nn.Sequential(*layers)


def torch_faces(torch, faces):
    """Convert uint8 faces to a normalised (n, 1, H, W) tensor, as csmile's "standardize" does."""
    x = torch.from_numpy(faces).to(torch.float32)
    mean = x.mean(dim=(1, 2), keepdim=True)
    std = x.std(dim=(1, 2), keepdim=True, unbiased=False).clamp_min(1.0)
    return ((x - mean) / std).unsqueeze(1)


def torch_train_epoch(torch, network, faces, labels, batch_size, seed=0):
    """Train one epoch with Adam and cross-entropy, shuffled batches, normalising each batch."""
    torch.manual_seed(seed)
    model = build_torch_network(torch, network)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    labels = torch.from_numpy(labels)
    order = np.random.default_rng(seed).permutation(len(faces))
    for start in range(0, len(faces), batch_size):
        batch_indices = order[start:start + batch_size]
        x = torch_faces(torch, faces[batch_indices])
        loss = torch.nn.functional.cross_entropy(model(x), labels[batch_indices])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


def torch_train_run(torch, network, batch_size, n_samples, n_threads):
    faces, labels = random_faces(n_samples)

    def run():
        torch.set_num_threads(n_threads)
        started = time.perf_counter()
        torch_train_epoch(torch, network, faces, labels, batch_size)
        return n_samples / (time.perf_counter() - started)

    return run


def torch_eval_model(torch, network):
    torch.manual_seed(0)
    return build_torch_network(torch, network).eval()


def torch_predict_proba(torch, model, faces):
    with torch.no_grad():
        return torch.softmax(model(torch_faces(torch, faces)), dim=1).numpy()


def torch_infer_run(torch, model, batch_size, n_samples, n_threads):
    faces, _ = random_faces(n_samples, seed=2)
    n_samples = (n_samples // batch_size) * batch_size

    def run():
        torch.set_num_threads(n_threads)
        started = time.perf_counter()
        for start in range(0, n_samples, batch_size):
            torch_predict_proba(torch, model, faces[start:start + batch_size])
        return n_samples / (time.perf_counter() - started)

    return run


def torch_latency_run(torch, model, n_calls, n_threads):
    faces, _ = random_faces(1, seed=3)

    def run():
        torch.set_num_threads(n_threads)
        times = []
        for _ in range(n_calls):
            started = time.perf_counter()
            torch_predict_proba(torch, model, faces)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1e6

    return run


# ---------------------------------------------------------------------------
# Kernels alone
# ---------------------------------------------------------------------------


def conv_cases():
    """Return (name, input shape NHWC, n_filters, padding, first) of every conv layer, batch 32."""
    cases = [("paper conv 1->8 valid", (32, 64, 64, 1), 8, "valid", True)]
    n_channels, size = 1, IMAGE_SIZE
    for layer_idx, n_filters in enumerate(NETWORKS["default"]["filters"]):
        cases.append((f"default conv{layer_idx + 1} {n_channels}->{n_filters} same",
                      (32, size, size, n_channels), n_filters, "same", layer_idx == 0))
        n_channels, size = n_filters, size // 2
    return cases


def time_per_call(function, n_calls):
    """Return a function that calls ``function`` ``n_calls`` times and returns milliseconds per call."""
    def run():
        started = time.perf_counter()
        for _ in range(n_calls):
            function()
        return (time.perf_counter() - started) / n_calls * 1e3

    return run


def kernel_rows(args, sizes, torch):
    rows = []
    rng = np.random.default_rng(4)
    n_threads = args.threads
    modules = {"compiled": csmile.kernels}
    if not args.no_reference:
        modules["reference"] = csmile.kernels.reference
    calls = {"compiled": sizes["kernel_calls"], "reference": sizes["kernel_calls_reference"]}
    if torch is not None:
        torch.set_num_threads(n_threads)

    for name, shape, n_filters, padding, first in conv_cases():
        x = rng.standard_normal(shape).astype(np.float32)
        weights = (rng.standard_normal((3, 3, shape[3], n_filters)) * 0.1).astype(np.float32)
        bias = np.zeros(n_filters, dtype=np.float32)
        out = csmile.kernels.conv2d_forward(x, weights, bias, padding, n_threads=n_threads)
        grad_output = rng.standard_normal(out.shape).astype(np.float32)

        forward = {}
        backward = {}
        for label, module in modules.items():
            forward[label] = time_per_call(
                lambda m=module: m.conv2d_forward(x, weights, bias, padding, n_threads=n_threads),
                calls[label])
            backward[label] = time_per_call(
                lambda m=module: m.conv2d_backward(x, weights, grad_output, padding,
                                                   need_grad_input=not first, n_threads=n_threads),
                calls[label])
        if torch is not None:
            forward["torch"], backward["torch"] = torch_conv_runs(
                torch, x, weights, bias, grad_output, padding, first, calls["compiled"])
        rows.append(Row(f"{name} forward", "ms/call", False, interleaved(forward, args.repeats)))
        backward_name = f"{name} backward" + (" (no grad_input)" if first else "")
        rows.append(Row(backward_name, "ms/call", False, interleaved(backward, args.repeats)))

    pool_shapes = [("paper", (32, 62, 62, 8))]
    size = IMAGE_SIZE
    for layer_idx, n_filters in enumerate(NETWORKS["default"]["filters"]):
        pool_shapes.append((f"default pool{layer_idx + 1}", (32, size, size, n_filters)))
        size //= 2
    for name, shape in pool_shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        out, argmax = csmile.kernels.maxpool2d_forward(x, 2, 2, n_threads=n_threads)
        grad_output = rng.standard_normal(out.shape).astype(np.float32)
        forward = {}
        backward = {}
        for label, module in modules.items():
            forward[label] = time_per_call(
                lambda m=module: m.maxpool2d_forward(x, 2, 2, n_threads=n_threads), calls[label])
            backward[label] = time_per_call(
                lambda m=module: m.maxpool2d_backward(grad_output, argmax, x.shape, n_threads=n_threads),
                calls[label])
        if torch is not None:
            forward["torch"], backward["torch"] = torch_pool_runs(torch, x, grad_output, calls["compiled"])
        shape_text = "x".join(str(size) for size in shape[1:])
        rows.append(Row(f"{name} max pool {shape_text} forward", "ms/call", False,
                        interleaved(forward, args.repeats)))
        rows.append(Row(f"{name} max pool {shape_text} backward", "ms/call", False,
                        interleaved(backward, args.repeats)))
    return rows


def torch_conv_runs(torch, x, weights, bias, grad_output, padding, first, n_calls):
    """Return timed runs of torch's conv2d forward and of its two backward ops plus the bias sum."""
    functional = torch.nn.functional
    x_t = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    weights_t = torch.from_numpy(weights).permute(3, 2, 0, 1).contiguous()
    bias_t = torch.from_numpy(bias)
    grad_output_t = torch.from_numpy(grad_output).permute(0, 3, 1, 2).contiguous()
    padding_size = 1 if padding == "same" else 0

    def forward():
        with torch.no_grad():
            functional.conv2d(x_t, weights_t, bias_t, padding=padding_size)

    def backward():
        with torch.no_grad():
            if not first:
                torch.nn.grad.conv2d_input(x_t.shape, weights_t, grad_output_t, padding=padding_size)
            torch.nn.grad.conv2d_weight(x_t, weights_t.shape, grad_output_t, padding=padding_size)
            grad_output_t.sum(dim=(0, 2, 3))

    return time_per_call(forward, n_calls), time_per_call(backward, n_calls)


def torch_pool_runs(torch, x, grad_output, n_calls):
    x_t = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    grad_output_t = torch.from_numpy(grad_output).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        _, indices = torch.nn.functional.max_pool2d(x_t, 2, 2, return_indices=True)

    def forward():
        with torch.no_grad():
            torch.nn.functional.max_pool2d(x_t, 2, 2, return_indices=True)

    def backward():
        torch.ops.aten.max_pool2d_with_indices_backward(
            grad_output_t, x_t, [2, 2], [2, 2], [0, 0], [1, 1], False, indices)

    return time_per_call(forward, n_calls), time_per_call(backward, n_calls)


# ---------------------------------------------------------------------------
# FLOPs and the matmul ceiling
# ---------------------------------------------------------------------------


def training_flops_per_image(network):
    """Count the FLOPs of one training image: 3 x forward (2 per multiply-add), less the first grad_input.

    The backward pass of a conv or dense layer costs two forwards (grad_input
    and grad_weights), except the first conv, which skips its grad_input.
    Pooling, ReLU, softmax and the optimiser are left out.
    """
    config = NETWORKS[network]
    padding = 1 if config["padding"] == "same" else 0
    size, n_channels = IMAGE_SIZE, 1
    layer_macs = []
    for n_filters in config["filters"]:
        out_size = size - 2 + 2 * padding
        layer_macs.append(out_size * out_size * n_filters * 9 * n_channels)
        size, n_channels = out_size // 2, n_filters
    n_features = size * size * n_channels
    for n_units in (*config["dense"], 2):
        layer_macs.append(n_features * n_units)
        n_features = n_units
    forward_flops = 2 * sum(layer_macs)
    return 3 * forward_flops - 2 * layer_macs[0]


def matmul_gflops(size, n_threads, repeats):
    """Return the median GFLOP/s of a float32 ``size`` x ``size`` NumPy matmul with ``n_threads`` BLAS threads."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    rates = []
    with threadpool_limits(limits=n_threads, user_api="blas"):
        a @ b
        for _ in range(max(3, repeats)):
            started = time.perf_counter()
            a @ b
            rates.append(2.0 * size**3 / (time.perf_counter() - started) / 1e9)
    return statistics.median(rates)


# ---------------------------------------------------------------------------
# Peak memory (subprocess)
# ---------------------------------------------------------------------------


def max_rss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak if sys.platform == "darwin" else peak * 1024


def high_water_rss_bytes():
    """Return VmHWM of /proc/self/status (Linux only), a cross-check of ``ru_maxrss``; else None."""
    with contextlib.suppress(OSError):
        with open("/proc/self/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    return None


def data_paths(args):
    """Return (data folder, training list) from the arguments or the environment, or None."""
    root = args.data or os.environ.get("CSMILE_DATA")
    split = args.split
    if split is None and os.environ.get("CSMILE_SPLITS"):
        split = os.path.join(os.environ["CSMILE_SPLITS"], "smilesmiled-train.txt")
    if not root or not split:
        return None
    return root, split


def memory_child(args):
    """Load the training list, train the default net for one epoch and print the peak RSS as JSON."""
    from csmile.data import read_dataset

    paths = data_paths(args)
    if paths is None:
        raise SystemExit("bench_speed: --memory-child needs --data and --split, "
                         "or CSMILE_DATA and CSMILE_SPLITS")
    started = time.perf_counter()
    dataset = read_dataset(paths[0], split=paths[1])
    faces, labels = dataset.images, dataset.labels
    if args.limit is not None and args.limit < len(faces):
        # Evenly spaced, so both classes appear even in a list sorted by class.
        keep = np.linspace(0, len(faces) - 1, args.limit).astype(np.intp)
        faces, labels = faces[keep], labels[keep]
    loaded = time.perf_counter()
    config = NETWORKS["default"]
    model = SmileNet(filters=config["filters"], dense=config["dense"], epochs=1,
                     n_jobs=args.threads, random_state=0)
    model.fit(faces, labels)
    finished = time.perf_counter()
    print(json.dumps({
        "max_rss_bytes": max_rss_bytes(),
        "vm_hwm_bytes": high_water_rss_bytes(),
        "n_images": int(len(faces)),
        "load_seconds": loaded - started,
        "train_seconds": finished - loaded,
    }))


def run_memory_child(args):
    """Run the memory measurement in a fresh interpreter; return its JSON result or an error text."""
    paths = data_paths(args)
    command = [sys.executable, os.path.abspath(__file__), "--memory-child", "--threads", str(args.threads), "--data", paths[0], "--split", paths[1]]
    if args.quick:
        command += ["--limit", str(QUICK_SIZES["memory_limit"])]
    # Linux keeps the larger ru_maxrss across execve, and a child made by
    # fork or vfork starts from this process's resident set, which contains
    # PyTorch. A small Python in between forks the measured child from a
    # small process, so its ru_maxrss counts only its own memory.
    command = [sys.executable, "-c", SPAWN_CLEAN_CHILD, *command]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed (exit {completed.returncode}): {last_line}"
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


class Row:
    """One line of the results table.

    ``values`` maps "compiled", "reference" and "torch" to a number.
    ``target`` is None or (compared, operator, threshold) where ``compared``
    is "vs_torch" (the compiled / torch ratio) or "value" (the compiled value)
    and ``operator`` is "ge" or "le".
    """

    def __init__(self, name, unit, higher_is_better, values, target=None, note=""):
        self.name = name
        self.unit = unit
        self.higher_is_better = higher_is_better
        self.values = values
        self.target = target
        self.note = note

    def ratio(self, other):
        compiled = self.values.get("compiled")
        denominator = self.values.get(other)
        if compiled is None or not denominator:
            return None
        return compiled / denominator

    def verdict(self, quick):
        if self.target is None:
            return "", ""
        compared, operator, threshold = self.target
        value = self.ratio("torch") if compared == "vs_torch" else self.values.get("compiled")
        sign = ">=" if operator == "ge" else "<="
        subject = "ratio" if compared == "vs_torch" else "value"
        text = f"{subject} {sign} {format_number(threshold)}"
        if value is None:
            return text, "n/a"
        passed = value >= threshold if operator == "ge" else value <= threshold
        result = "PASS" if passed else "FAIL"
        return text, f"{result} (quick run)" if quick else result


def format_number(value):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def render_table(rows, quick):
    header = ("| Measurement | Unit | csmile compiled | csmile reference | PyTorch "
              "| compiled / PyTorch | compiled / reference | Target | Result |")
    lines = [header, "|" + "---|" * 9]
    for row in rows:
        target_text, result = row.verdict(quick)
        unit = f"{row.unit} ({'higher' if row.higher_is_better else 'lower'} is better)"
        cells = [
            row.name + (f" ({row.note})" if row.note else ""),
            unit,
            format_number(row.values.get("compiled")),
            format_number(row.values.get("reference")),
            format_number(row.values.get("torch")),
            format_number(row.ratio("torch")),
            format_number(row.ratio("reference")),
            target_text,
            result,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe_machine(torch, args):
    """Return Markdown lines describing the hardware and software of this run."""
    import threadpoolctl

    cpu_model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    lines = [
        f"- CPU: {cpu_model}; {os.cpu_count()} logical cores, {available_cores()} usable by this process",
        f"- System: {platform.platform()}, Python {platform.python_version()}",
    ]
    with contextlib.suppress(OSError):
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            total_kib = int(meminfo.readline().split()[1])
            lines.append(f"- Memory: {total_kib / 2**20:.1f} GiB")
    with contextlib.suppress(OSError, AttributeError):
        lines.append("- Load average at start: " + ", ".join(f"{load:.2f}" for load in os.getloadavg()))
    thread_variables = sorted(name for name in os.environ
                              if name.startswith(("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_")))
    if thread_variables:
        lines.append("- Environment: " + ", ".join(f"`{name}={os.environ[name]}`" for name in thread_variables))
    lines.append(f"- NumPy {np.__version__}")
    for pool in threadpoolctl.threadpool_info():
        details = ", ".join(f"{key} {pool[key]}" for key in ("version", "architecture", "threading_layer",
                                                            "num_threads") if pool.get(key))
        lines.append(f"- {pool['user_api']} library: {pool['internal_api']} ({details}), "
                     f"{os.path.basename(pool['filepath'])}")
    if torch is None:
        lines.append(f"- PyTorch: not installed ({TORCH_INSTALL_HINT})")
    else:
        lines.append(f"- PyTorch {torch.__version__}, {torch.get_num_threads()} threads set")
    lines.append(f"- csmile {csmile.__version__}, kernel backend: {csmile.backend()}")
    lines.append(f"- Threads: {args.threads} (csmile n_jobs and torch.set_num_threads)")
    return lines


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------


def training_rows(args, sizes, torch):
    rows = []
    targets = {"paper": ("vs_torch", "ge", 1.5), "default": ("vs_torch", "ge", 1.0)}
    for batch_size, key in ((32, "train32"), (1, "train1")):
        for network in NETWORKS:
            n_samples = sizes[key][network]
            n_reference = sizes[f"{key}_reference"][network]
            contenders = {
                "compiled": csmile_train_run(network, batch_size, n_samples, args.threads, "compiled"),
                "reference": None if args.no_reference else csmile_train_run(
                    network, batch_size, n_reference, args.threads, "reference"),
                "torch": None if torch is None else torch_train_run(
                    torch, network, batch_size, n_samples, args.threads),
            }
            warm_up(batch_size, network, torch, args.threads)
            note = f"{n_samples} images/run" + ("" if args.no_reference else f", reference {n_reference}")
            rows.append(Row(f"training {network}, batch {batch_size}", "img/s", True,
                            interleaved(contenders, args.repeats),
                            target=targets[network] if batch_size == 32 else None, note=note))
            print(render_table(rows[-1:], args.quick).splitlines()[-1], flush=True)
    return rows


def warm_up(batch_size, network, torch, n_threads):
    """Train csmile and torch once on one batch, so first-call costs stay out of the timing."""
    faces, labels = random_faces(max(batch_size, 2), seed=9)
    make_smilenet(network, batch_size, n_threads).fit(faces, labels)
    if torch is not None:
        torch.set_num_threads(n_threads)
        torch_train_epoch(torch, network, faces, labels, batch_size)


def inference_rows(args, sizes, torch):
    rows = []
    for network in NETWORKS:
        model = fitted_smilenet(network, args.threads)
        torch_model = None if torch is None else torch_eval_model(torch, network)
        for batch_size in (1, 256):
            key = "infer1" if batch_size == 1 else "infer256"
            n_samples = max(sizes[key], batch_size)
            n_reference = max(sizes[f"{key}_reference"], batch_size)
            contenders = {
                "compiled": csmile_infer_run(model, batch_size, n_samples, "compiled"),
                "reference": None if args.no_reference else csmile_infer_run(
                    model, batch_size, n_reference, "reference"),
                "torch": None if torch is None else torch_infer_run(
                    torch, torch_model, batch_size, n_samples, args.threads),
            }
            note = f"{n_samples} images/run" + ("" if args.no_reference else f", reference {n_reference}")
            rows.append(Row(f"inference {network}, batch {batch_size}", "img/s", True,
                            interleaved(contenders, args.repeats), note=note))
            print(render_table(rows[-1:], args.quick).splitlines()[-1], flush=True)

        contenders = {
            "compiled": csmile_latency_run(model, sizes["latency_calls"], "compiled"),
            "reference": None if args.no_reference else csmile_latency_run(
                model, sizes["latency_calls_reference"], "reference"),
            "torch": None if torch is None else torch_latency_run(
                torch, torch_model, sizes["latency_calls"], args.threads),
        }
        target = ("vs_torch", "le", 0.5 if network == "paper" else 1.0)
        note = f"median of {sizes['latency_calls']} calls"
        rows.append(Row(f"latency of one face, {network}", "µs", False,
                        interleaved(contenders, args.repeats), target=target, note=note))
        print(render_table(rows[-1:], args.quick).splitlines()[-1], flush=True)
    return rows


def flops_rows(args, sizes, training, torch):
    """Turn the default net's batch-32 training throughput into GFLOP/s, next to the matmul rate."""
    throughput = next(row for row in training if row.name == "training default, batch 32")
    flops = training_flops_per_image("default")
    rates = {name: value * flops / 1e9 for name, value in throughput.values.items()}
    matmul_size = sizes["matmul_size"]
    matmul = matmul_gflops(matmul_size, args.threads, args.repeats)
    share = {name: rate / matmul for name, rate in rates.items()}
    return [
        Row("training default, batch 32, achieved", "GFLOP/s", True, rates,
            note=f"{flops / 1e6:.1f} MFLOP per image"),
        Row(f"NumPy float32 matmul {matmul_size}x{matmul_size}", "GFLOP/s", True,
            {"compiled": matmul}, note="BLAS ceiling, same threads"),
        Row("training default, share of the matmul rate", "fraction", True, share),
    ]


def scaling_rows(args, sizes, torch):
    if available_cores() < 2:
        print("bench_speed: fewer than 2 usable cores; skipping the thread scaling.", flush=True)
        return []
    n_samples = sizes["scaling"]
    contenders = {}
    for n_threads in (1, 2):
        contenders[f"compiled{n_threads}"] = csmile_train_run("default", 32, n_samples, n_threads, "compiled")
        if torch is not None:
            contenders[f"torch{n_threads}"] = torch_train_run(torch, "default", 32, n_samples, n_threads)
    warm_up(32, "default", torch, 2)
    medians = interleaved(contenders, args.repeats)
    note = f"{n_samples} images/run"
    rows = [
        Row(f"training default, batch 32, {n_threads} thread{'s' if n_threads > 1 else ''}",
            "img/s", True,
            {"compiled": medians[f"compiled{n_threads}"], "torch": medians.get(f"torch{n_threads}")},
            note=note)
        for n_threads in (1, 2)
    ]
    speedup = {"compiled": medians["compiled2"] / medians["compiled1"]}
    if torch is not None:
        speedup["torch"] = medians["torch2"] / medians["torch1"]
    rows.append(Row("thread scaling, 2 threads / 1 thread", "ratio", True, speedup,
                    target=("value", "ge", 1.6)))
    for row in rows:
        print(render_table([row], args.quick).splitlines()[-1], flush=True)
    return rows


def memory_rows(args):
    """Measure csmile only: a PyTorch run over the full list would add minutes to the run."""
    if data_paths(args) is None:
        message = ("skipped: no data; pass --data and --split or set CSMILE_DATA and CSMILE_SPLITS")
        print(f"bench_speed: peak memory {message}", flush=True)
        return [], message
    values = {}
    result = run_memory_child(args)
    if isinstance(result, str):
        details = f"The run {result}"
    else:
        values["compiled"] = result["max_rss_bytes"] / 1e6
        hwm = result.get("vm_hwm_bytes")
        hwm_text = "" if hwm is None else f", VmHWM {hwm / 1e6:.0f} MB"
        details = (f"Measured: {result['n_images']} images, loading {result['load_seconds']:.1f} s, "
                   f"one epoch {result['train_seconds']:.1f} s{hwm_text}.")
    note = f"quick: {QUICK_SIZES['memory_limit']} images only" if args.quick else "full training list, data included"
    row = Row("peak memory, training default for 1 epoch", "MB", False, values,
              target=("value", "le", MEMORY_TARGET_BYTES / 1e6), note=note)
    print(render_table([row], args.quick).splitlines()[-1], flush=True)
    return [row], details


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def command_line():
    return " ".join(shlex.quote(part) for part in ["python", *sys.argv])


def write_report(path, args, sections, machine, notes):
    lines = [
        "# Performance",
        "",
        "Written by `benchmarks/bench_speed.py`; rerun it to update this page.",
        "",
    ]
    if args.quick:
        lines += ["**Quick run (`--quick`): a smoke test with few images per run. "
                  "These numbers support no claim.**", ""]
    lines += [
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Command: `{command_line()}`",
        *machine,
        "",
        "## Method",
        "",
        *notes,
        "",
    ]
    for title, table in sections:
        lines += [f"## {title}", "", table, ""]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as report:
        report.write("\n".join(lines))


def main(argv=None):
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args)
        return

    unset = os.environ.get(UNSET_MARKER)
    if unset:
        print(f"bench_speed: restarted with {unset} unset, so OpenBLAS picks its own kernels.")
    torch = import_torch()
    if csmile.backend() != "cython":
        print("bench_speed: the compiled kernels are not built, so the 'compiled' column runs "
              "the reference too. Build them with 'python setup.py build_ext --inplace'.", flush=True)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    machine = describe_machine(torch, args)
    print("\n".join(machine), flush=True)

    print("\nMedians, printed as each row is measured:")
    print("\n".join(render_table([], args.quick).splitlines()[:2]), flush=True)
    started = time.perf_counter()
    # fit limits NumPy's BLAS to n_jobs threads itself; this limit covers the
    # rest (prediction, the reference kernels alone) with the same count.
    with threadpool_limits(limits=args.threads, user_api="blas"):
        training = training_rows(args, sizes, torch)
        inference = inference_rows(args, sizes, torch)
        kernels = kernel_rows(args, sizes, torch)
        flops = flops_rows(args, sizes, training, torch)
        scaling = scaling_rows(args, sizes, torch)
    memory, memory_details = memory_rows(args)
    elapsed = time.perf_counter() - started

    notes = [
        f"- Every number is the median of {args.repeats} measured run{'s' if args.repeats > 1 else ''}; "
        "within each repeat the "
        "contenders run in turn (compiled, reference, PyTorch), so drift affects all of them. "
        f"The whole run took {elapsed / 60:.1f} minutes.",
        "- Networks: \"paper\" is `SmileNet.paper(filters=8)` (3x3 valid conv with 8 filters, "
        "2x2 max pool, ReLU, dense 2). \"default\" is `SmileNet(filters=(16, 32, 64), dense=(128,))` "
        "(three 3x3 same convs, each followed by 2x2 max pool and ReLU, then dense 128, ReLU, "
        "dropout 0.5, dense 2). The PyTorch twins are `nn.Sequential` in NCHW with the same layers "
        "in the same order (pooling before ReLU, as csmile does), float32.",
        "- Training: one measured run is one epoch of `SmileNet.fit` on random uint8 64x64 faces "
        "(`augment=False, validation_fraction=0, early_stopping=False, epochs=1, class_weight=None, "
        "optimizer=\"adam\"`), timed whole with nothing subtracted. PyTorch: building the model, "
        "then per shuffled batch converting the uint8 faces to a tensor, standardising each face, "
        "forward, cross-entropy, backward and an Adam step.",
        "- Inference: `predict_proba` on uint8 faces; PyTorch: `model.eval()`, `torch.no_grad()`, "
        "the same uint8 conversion and standardisation, forward and softmax. Latency is the median "
        "of many one-face calls.",
        "- The reference column swaps the pure-NumPy kernels of `csmile.kernels.reference` into "
        "the same `fit` and `predict_proba` path; its runs use fewer images (noted per row) "
        "because it is slower. Throughput is per image, so the columns still compare.",
        "- Kernels alone: batch 32, channels-last for csmile; PyTorch runs `conv2d`, "
        "`torch.nn.grad.conv2d_input`/`conv2d_weight` plus the bias sum, and `max_pool2d` with "
        "indices and its backward, on NCHW tensors, for context.",
        f"- FLOPs: {training_flops_per_image('default') / 1e6:.1f} MFLOP per training image of the "
        "default net, counted as 3 x (2 x multiply-adds of the conv and dense forward) less the "
        "first conv's grad_input, which csmile does not compute. Pooling, ReLU and the optimiser "
        "are not counted.",
        "- Peak memory: `ru_maxrss` of a separate process that reads the training list with "
        "`csmile.data.read_dataset` and trains the default `SmileNet` (default settings, "
        f"`epochs=1`) for one epoch. Target: at most {MEMORY_TARGET_BYTES / 1e9:.0f} GB "
        f"(10^9 bytes). {memory_details}",
    ]
    if args.no_reference:
        notes.append("- The reference kernels were skipped (`--no-reference`).")
    if unset:
        notes.append(f"- The script restarted itself with {unset} unset.")
    if torch is None:
        notes.append(f"- PyTorch was not installed, so its columns are empty ({TORCH_INSTALL_HINT}).")

    sections = [
        ("Training and inference", render_table(training + inference, args.quick)),
        ("Compute rate", render_table(flops, args.quick)),
        ("Thread scaling", render_table(scaling, args.quick) if scaling else "Skipped: fewer than 2 cores."),
        ("Peak memory", render_table(memory, args.quick) if memory else memory_details),
        ("Kernels alone", render_table(kernels, args.quick)),
    ]
    print()
    for title, table in sections:
        print(f"## {title}\n\n{table}\n")
    print("\n".join(notes))
    if args.output:
        write_report(args.output, args, sections, machine, notes)
        print(f"\nbench_speed: wrote {args.output}")
    else:
        print("\nbench_speed: --quick without --output; no file written.")


if __name__ == "__main__":
    main()
