"""Training curves, ROC curves, contact sheets and history files.

:func:`plot_history` and :func:`plot_roc` need matplotlib (``pip install
"csmile[plot]"``). They draw on an Agg canvas without touching
``matplotlib.pyplot``, so no window opens and the global backend stays as it
was. :func:`contact_sheet` needs only Pillow, and :func:`write_history_csv`
only the standard library.

Every function writes its file atomically: the output goes to a temporary
file in the same folder, which replaces the target only once it is complete.
A crash or an error leaves either the old file or none, never half a file.
"""

import csv
import math
import os

import numpy as np

from .atomic import atomic_output_path

MATPLOTLIB_HINT = 'Install it with: pip install "csmile[plot]" (or pip install matplotlib).'

# File suffixes that matplotlib's Agg canvas writes, mapped to its format names.
FIGURE_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg", ".jpg": "jpg", ".jpeg": "jpg"}


def _figure_format(path):
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix == "":
        return "png"
    if suffix not in FIGURE_FORMATS:
        raise ValueError(
            f"cannot write a plot to {path}: unsupported file type {suffix!r}; "
            f"use one of {', '.join(sorted(FIGURE_FORMATS))}."
        )
    return FIGURE_FORMATS[suffix]


def _new_figure(width, height):
    """Return a matplotlib Figure on an Agg canvas, or raise ImportError with the hint."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(f"plotting needs matplotlib, which failed to import ({error}). {MATPLOTLIB_HINT}") from error
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save_figure(figure, path):
    image_format = _figure_format(path)
    with atomic_output_path(path) as temp_path:
        figure.savefig(temp_path, format=image_format)


# ---------------------------------------------------------------------------
# Training history
# ---------------------------------------------------------------------------


def _history_column(history, key):
    """Return the values of ``key`` per epoch as floats, NaN where missing."""
    values = []
    for record in history:
        value = record.get(key)
        values.append(math.nan if value is None else float(value))
    return np.asarray(values, dtype=np.float64)


def _check_history(history):
    history = list(history)
    if not history:
        raise ValueError("history is empty; fit the model for at least one epoch first.")
    for epoch_idx, record in enumerate(history):
        if not isinstance(record, dict):
            raise TypeError(
                f"history must be a list of dicts, one per epoch; entry {epoch_idx} is a "
                f"{type(record).__name__}."
            )
    return history


def plot_history(history, path, best_epoch=None, title=None):
    """Plot loss and accuracy per epoch, for training and validation, to a file.

    Parameters
    ----------
    history : list of dict
        One dict per epoch, as ``SmileNet.history_``. Used keys: ``epoch``,
        ``loss``, ``val_loss``, ``accuracy``, ``val_accuracy``,
        ``balanced_accuracy`` and ``val_balanced_accuracy``. A key that is
        missing or None in every epoch is not drawn.
    path : str or path-like
        Output file; the suffix selects the format (.png by default, also
        .pdf, .svg, .jpg).
    best_epoch : int, default=None
        Epoch to mark with a vertical line, such as ``best_epoch_``.
    title : str, default=None
        Title above both panels.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    """
    history = _check_history(history)
    figure = _new_figure(10, 4)
    loss_axes, accuracy_axes = figure.subplots(1, 2)

    epochs = _history_column(history, "epoch")
    if np.isnan(epochs).any():
        epochs = np.arange(1, len(history) + 1, dtype=np.float64)

    panels = [
        (loss_axes, "loss", [("loss", "training", "C0"), ("val_loss", "validation", "C0")]),
        (
            accuracy_axes,
            "accuracy",
            [
                ("accuracy", "training accuracy", "C0"),
                ("val_accuracy", "validation accuracy", "C0"),
                ("balanced_accuracy", "training balanced accuracy", "C1"),
                ("val_balanced_accuracy", "validation balanced accuracy", "C1"),
            ],
        ),
    ]
    # Training is drawn solid and validation dashed, in the same colour per metric.
    for axes, ylabel, series in panels:
        for key, label, color in series:
            values = _history_column(history, key)
            if np.isnan(values).all():
                continue
            linestyle = "--" if key.startswith("val_") else "-"
            axes.plot(
                epochs, values, color=color, linestyle=linestyle, marker="o", markersize=3, label=label
            )
        if best_epoch is not None:
            axes.axvline(best_epoch, color="gray", linestyle=":", label=f"best epoch ({best_epoch})")
        axes.set_xlabel("epoch")
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")

    if title:
        figure.suptitle(title)
    figure.tight_layout()
    _save_figure(figure, path)


def write_history_csv(history, path):
    """Write the training history to a CSV file, one row per epoch.

    The columns are the keys of the history dicts in order of first
    appearance, with ``epoch`` first when present. A missing or None value
    becomes an empty cell.

    Parameters
    ----------
    history : list of dict
        One dict per epoch, as ``SmileNet.history_``.
    path : str or path-like
        Output file.
    """
    history = _check_history(history)
    columns = []
    for record in history:
        for key in record:
            if key not in columns:
                columns.append(key)
    if "epoch" in columns:
        columns.remove("epoch")
        columns.insert(0, "epoch")

    with atomic_output_path(path) as temp_path:
        with open(temp_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for record in history:
                row = []
                for key in columns:
                    value = record.get(key)
                    row.append("" if value is None else value)
                writer.writerow(row)


# ---------------------------------------------------------------------------
# ROC curve
# ---------------------------------------------------------------------------


def plot_roc(fpr, tpr, auc, path, title=None):
    """Plot a ROC curve with the chance diagonal to a file.

    Parameters
    ----------
    fpr, tpr : array-like of shape (n_thresholds,)
        False and true positive rates, as returned by
        :func:`csmile.metrics.roc_curve`.
    auc : float or None
        Area under the curve, written in the legend when given.
    path : str or path-like
        Output file; the suffix selects the format (.png by default).
    title : str, default=None
        Title of the plot.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    if fpr.ndim != 1 or fpr.shape != tpr.shape or fpr.size < 2:
        raise ValueError(
            "fpr and tpr must be 1-D arrays of the same length, at least 2; "
            f"got shapes {fpr.shape} and {tpr.shape}."
        )

    figure = _new_figure(5, 5)
    axes = figure.subplots()
    label = "ROC curve" if auc is None else f"ROC curve (AUC = {auc:.4f})"
    axes.plot(fpr, tpr, label=label)
    axes.plot([0, 1], [0, 1], color="gray", linestyle="--", label="chance")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_aspect("equal")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right")
    if title:
        axes.set_title(title)
    figure.tight_layout()
    _save_figure(figure, path)


# ---------------------------------------------------------------------------
# Contact sheet
# ---------------------------------------------------------------------------


def _fit_text(draw, text, font, max_width):
    """Shorten ``text`` with an ellipsis until it fits in ``max_width`` pixels."""
    if draw.textlength(text, font=font) <= max_width:
        return text
    while text and draw.textlength(text + "...", font=font) > max_width:
        text = text[:-1]
    return text + "..."


def contact_sheet(images, captions, path, columns=10, scale=2):
    """Write a grid of grayscale images with a caption under each, using Pillow.

    Parameters
    ----------
    images : sequence of ndarray of shape (height, width), dtype uint8
        Images to show, such as misclassified faces. They may differ in size.
    captions : sequence of str
        One caption per image; a newline starts a second line. Text wider
        than a tile is shortened with "...".
    path : str or path-like
        Output file; the suffix selects the format (.png, .jpg, ...).
    columns : int, default=10
        Number of images per row.
    scale : int, default=2
        Integer magnification of each image (nearest neighbour, so pixels
        stay sharp).
    """
    from PIL import Image, ImageDraw, ImageFont

    images = list(images)
    captions = [str(caption) for caption in captions]
    if not images:
        raise ValueError("contact_sheet needs at least one image; got none.")
    if len(captions) != len(images):
        raise ValueError(
            f"contact_sheet needs one caption per image; got {len(images)} images and "
            f"{len(captions)} captions."
        )
    if int(columns) < 1 or int(scale) < 1:
        raise ValueError(f"columns and scale must be 1 or more; got columns={columns}, scale={scale}.")
    columns, scale = int(columns), int(scale)

    arrays = []
    for image_idx, image in enumerate(images):
        array = np.asarray(image)
        if array.ndim != 2 or array.dtype != np.uint8:
            raise ValueError(
                f"image {image_idx} must be a 2-D uint8 grayscale array; got shape "
                f"{array.shape} and dtype {array.dtype}."
            )
        arrays.append(array)

    extension = os.path.splitext(os.fspath(path))[1].lower()
    image_format = Image.registered_extensions().get(extension)
    if image_format is None:
        raise ValueError(
            f"cannot write a contact sheet to {path}: unknown image file type {extension!r}; "
            "use .png or .jpg."
        )

    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    line_height = probe.textbbox((0, 0), "Ag", font=font)[3] + 2
    n_caption_lines = max(caption.count("\n") + 1 for caption in captions)
    margin = 4

    tile_width = max(array.shape[1] for array in arrays) * scale
    tile_height = max(array.shape[0] for array in arrays) * scale
    cell_width = tile_width + 2 * margin
    cell_height = tile_height + n_caption_lines * line_height + 2 * margin
    n_rows = math.ceil(len(arrays) / columns)
    n_columns = min(columns, len(arrays))

    sheet = Image.new("L", (n_columns * cell_width, n_rows * cell_height), color=255)
    draw = ImageDraw.Draw(sheet)
    for image_idx, (array, caption) in enumerate(zip(arrays, captions)):
        row_idx, column_idx = divmod(image_idx, columns)
        left = column_idx * cell_width + margin
        top = row_idx * cell_height + margin

        tile = Image.fromarray(array)
        tile = tile.resize((array.shape[1] * scale, array.shape[0] * scale), Image.NEAREST)
        offset_x = (tile_width - tile.width) // 2
        offset_y = (tile_height - tile.height) // 2
        sheet.paste(tile, (left + offset_x, top + offset_y))

        for line_idx, text in enumerate(caption.split("\n")):
            text = _fit_text(draw, text, font, tile_width)
            draw.text((left, top + tile_height + 1 + line_idx * line_height), text, fill=0, font=font)

    with atomic_output_path(path) as temp_path:
        sheet.save(temp_path, format=image_format)


__all__ = [
    "atomic_output_path",
    "contact_sheet",
    "plot_history",
    "plot_roc",
    "write_history_csv",
]
