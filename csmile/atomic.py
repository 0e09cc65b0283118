"""Atomic file output: a file appears whole or not at all."""

import contextlib
import os
import secrets
import stat


@contextlib.contextmanager
def atomic_output_path(path):
    """Yield a temporary path that replaces ``path`` when the block succeeds.

    The temporary file is created in the folder of ``path``, so the final
    ``os.replace`` is atomic on POSIX and Windows file systems. It is removed
    when the block raises. Its permissions follow the process umask, as a
    file opened normally would.

    A symbolic link is followed, so the file it points to is replaced and the
    link stays. A path that exists but is not a regular file, such as the
    device ``/dev/null`` or a named pipe, is yielded unchanged and written in
    place, because renaming over it would replace the device itself. Such
    output is not atomic.

    Raises
    ------
    FileNotFoundError
        If the folder of ``path`` does not exist.
    IsADirectoryError
        If ``path`` is an existing folder.
    """
    path = os.path.realpath(os.fspath(path))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"cannot write {path}: folder {folder} does not exist; create it first."
        )
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name.")
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        yield path
        return

    temp_path = os.path.join(
        folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp"
    )
    # O_EXCL guards against a name clash; mode 0o666 is reduced by the umask.
    descriptor = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(descriptor)
    try:
        yield temp_path
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp_path)
        raise
