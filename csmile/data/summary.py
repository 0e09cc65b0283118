"""Count classes and find exact duplicates in a labelled data set."""

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DatasetSummary", "summarize"]

# Groups and files listed by DatasetSummary.to_text before it prints "... and N more".
MAX_LISTED = 20


@dataclass
class DatasetSummary:
    """Class counts, unreadable files and exact duplicates of a data set.

    Attributes
    ----------
    counts : dict of str to int
        Number of images per class name, in label order.
    bad_files : list of (str, str)
        (path, reason) of each file that failed to load.
    duplicate_groups : list of list of int
        Indices of images whose pixels are identical, one list per group of
        two or more, each sorted, groups ordered by their first index.
    conflicting_groups : list of list of int
        The duplicate groups whose images carry different labels.
    conflicting_indices : ndarray of shape (n_conflicting,), dtype intp
        Every index in a conflicting group, sorted. Training drops these by
        default because the same pixels cannot be both classes.
    redundant_indices : ndarray of shape (n_redundant,), dtype intp
        In each duplicate group whose labels agree, every index after the
        first, sorted.
    n_samples : int
        Number of images summarised.
    """

    counts: dict
    bad_files: list
    duplicate_groups: list
    conflicting_groups: list
    conflicting_indices: np.ndarray
    redundant_indices: np.ndarray
    n_samples: int
    paths: list = field(default_factory=list, repr=False)
    labels: np.ndarray = field(default=None, repr=False)
    class_names: tuple = field(default=(), repr=False)

    def to_text(self):
        """Return a short report naming the unreadable and conflicting files."""
        counts = ", ".join(f"{count:,} {name}" for name, count in self.counts.items())
        lines = [f"{self.n_samples:,} images: {counts}"]

        lines.append(f"unreadable files skipped: {len(self.bad_files)}")
        for path, reason in self.bad_files[:MAX_LISTED]:
            lines.append(f"  {path}: {reason}")
        lines.extend(_more_line(len(self.bad_files)))

        n_duplicated = sum(len(group) for group in self.duplicate_groups)
        lines.append(
            f"exact duplicates: {len(self.duplicate_groups)} groups ({n_duplicated} images), "
            f"{len(self.redundant_indices)} redundant copies with the same label"
        )

        n_conflicting = len(self.conflicting_indices)
        lines.append(
            f"conflicting labels: {len(self.conflicting_groups)} groups ({n_conflicting} images "
            "with identical pixels but different labels)"
        )
        for group in self.conflicting_groups[:MAX_LISTED]:
            lines.append("  " + " = ".join(self._describe(index) for index in group))
        lines.extend(_more_line(len(self.conflicting_groups)))
        return "\n".join(lines)

    def _describe(self, index):
        path = self.paths[index] if index < len(self.paths) else f"#{index}"
        if self.labels is None or not self.class_names:
            return path
        return f"{path} ({self.class_names[int(self.labels[index])]})"


def _more_line(n_items):
    return [f"  ... and {n_items - MAX_LISTED} more"] if n_items > MAX_LISTED else []


def summarize(dataset):
    """Summarise a :class:`~csmile.data.LabelledImages`.

    Duplicates are found by hashing the bytes of ``dataset.images``, so they
    are exact pixel matches at the loaded size. For SMILEsmileD, whose files
    are already 64x64, that is the same as comparing the decoded files.

    Parameters
    ----------
    dataset : LabelledImages

    Returns
    -------
    summary : DatasetSummary

    Examples
    --------
    >>> from csmile.data import read_dataset, summarize
    >>> print(summarize(read_dataset("SMILEsmileD")).to_text())  # doctest: +SKIP
    """
    images = np.ascontiguousarray(dataset.images)
    labels = np.asarray(dataset.labels)

    groups_by_digest = defaultdict(list)
    for index in range(len(images)):
        digest = hashlib.blake2b(images[index].tobytes(), digest_size=16).digest()
        groups_by_digest[digest].append(index)
    duplicate_groups = sorted(group for group in groups_by_digest.values() if len(group) > 1)

    conflicting_groups, redundant = [], []
    for group in duplicate_groups:
        if len(set(labels[group].tolist())) > 1:
            conflicting_groups.append(group)
        else:
            redundant.extend(group[1:])
    conflicting = [index for group in conflicting_groups for index in group]

    counts = {
        name: int(np.count_nonzero(labels == label)) for label, name in enumerate(dataset.class_names)
    }
    return DatasetSummary(
        counts=counts,
        bad_files=list(dataset.bad_files),
        duplicate_groups=duplicate_groups,
        conflicting_groups=conflicting_groups,
        conflicting_indices=np.array(sorted(conflicting), dtype=np.intp),
        redundant_indices=np.array(sorted(redundant), dtype=np.intp),
        n_samples=len(images),
        paths=list(dataset.paths),
        labels=labels,
        class_names=tuple(dataset.class_names),
    )
