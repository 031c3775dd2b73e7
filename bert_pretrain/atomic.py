"""Files that appear whole or not at all: written under a temporary name, renamed when complete.

A crash, a kill or a full disk then leaves the previous file (or none), never a half-written file
under the real name that a later run would trust. Local paths and gs:// alike (tf.io.gfile).
"""

import contextlib

import tensorflow as tf


@contextlib.contextmanager
def replacing(path: str, suffix: str = ".tmp"):
    """Yields a temporary path to write; renames it to `path` when the block completes, and
    removes it when the block raises. `suffix` keeps an extension a writer needs (".tmp.png")."""
    temporary = path + suffix
    try:
        yield temporary
    except BaseException:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
        raise
    tf.io.gfile.rename(temporary, path, overwrite=True)


def write_text(path: str, text: str) -> None:
    """`text` to `path`, atomically."""
    with replacing(path) as temporary, tf.io.gfile.GFile(temporary, "w") as handle:
        handle.write(text)
