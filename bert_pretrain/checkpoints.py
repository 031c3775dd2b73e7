"""Checkpoints that survive damage: restore the newest one that reads; a write that fails leaves the
ones before it whole and the index pointing at them.

tf.train.CheckpointManager writes a checkpoint's files first and the `checkpoint` index file last
(atomically), so the index never names a checkpoint whose write did not finish. What remains is a
listed checkpoint damaged afterwards (a partial copy, a bad disk) and a write that fails (no space,
no permission, a network error on gs://): this module handles both, in one line each.
"""

import os
import re
import time

import tensorflow as tf

from bert_pretrain.errors import UsageError

# Errors worth a second try: a gs:// write can time out or be throttled and succeed moments later.
TRANSIENT = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError)
RETRY_DELAYS = (2.0, 8.0, 30.0)   # seconds before each retry
READ_ERRORS = (tf.errors.OpError, IndexError, ValueError, AssertionError)


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written; the ones written before are intact."""


INDEX = "checkpoint"


def listed(directory: str) -> list[str]:
    """The checkpoints of `directory`, newest first: those the index file lists or, when it is
    missing or cannot be parsed (TensorFlow then ignores it, as if there were none), every `ckpt-N`
    whose .index file is there."""
    state = tf.train.get_checkpoint_state(directory)
    if state is not None:
        paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    else:
        paths = [p[:-len(".index")] for p in tf.io.gfile.glob(os.path.join(directory, "ckpt-*.index"))]
    paths = [p if os.path.isabs(p) or "://" in p else os.path.join(directory, p) for p in paths if p]
    return sorted(set(paths), key=_number, reverse=True)


def manager(checkpoint: tf.train.Checkpoint, directory: str, keep: int, log=print) -> tf.train.CheckpointManager:
    """tf.train.CheckpointManager over `directory`, once the temporary directories of killed writes
    are removed and an index file that is missing or that it would ignore (damaged) is rewritten
    from the checkpoints present: otherwise the manager would count none, and its next save would
    list only the new one."""
    for orphan in tf.io.gfile.glob(os.path.join(directory, "ckpt-*_temp")):
        tf.io.gfile.rmtree(orphan)   # where a killed write was writing; never read
    index = os.path.join(directory, INDEX)
    if tf.io.gfile.isdir(directory) and tf.train.get_checkpoint_state(directory) is None:
        present = listed(directory)
        if present:
            log(f"checkpoint: the index file in {directory} is missing or cannot be read; rebuilt from the "
                f"{len(present)} checkpoint(s) present")
            _write_index(directory, present)
        elif tf.io.gfile.exists(index):
            tf.io.gfile.remove(index)
    return tf.train.CheckpointManager(checkpoint, directory, keep)


def _write_index(directory: str, newest_first: list[str]) -> None:
    """The index listing these checkpoints, with their files' times: CheckpointManager rotates only
    checkpoints whose time is after the index's last_preserved_timestamp, and forgets the others."""
    oldest_first = list(reversed(newest_first))
    times = [tf.io.gfile.stat(path + ".index").mtime_nsec / 1e9 for path in oldest_first]
    tf.compat.v1.train.update_checkpoint_state(directory, newest_first[0], oldest_first,
                                               all_model_checkpoint_timestamps=times,
                                               last_preserved_timestamp=min(times) - 1)


def _number(path: str) -> int:
    found = re.search(r"-(\d+)$", path)
    return int(found.group(1)) if found else -1


def restore_newest_readable(checkpoint: tf.train.Checkpoint, directory: str, log=print,
                            rewrite_index: bool = True) -> str | None:
    """Restores the newest checkpoint of `directory` that reads whole and returns its path (None if
    there is none). Each one that fails is named in one line; if some did, the index is rewritten
    (by the chief: `rewrite_index`) to list only the readable ones, so no later start tries them."""
    candidates = listed(directory)
    unreadable = []
    for path in candidates:
        try:
            # Every object of `checkpoint` must be found; entries it does not ask for may be left.
            checkpoint.restore(path).assert_existing_objects_matched().expect_partial()
        except READ_ERRORS as error:
            log(f"checkpoint: {path} cannot be read ({_reason(error)}); trying the one before it")
            unreadable.append(path)
            continue
        if unreadable:
            log(f"checkpoint: resuming from {path}, the newest that reads")
            if rewrite_index:
                _write_index(directory, [p for p in candidates if p not in unreadable])
        return path
    if candidates:
        raise UsageError("model_dir", f"none of the {len(candidates)} checkpoints in {directory} can be read",
                         "restore the directory from a copy, or use a new --model_dir to start over")
    return None


def save(manager: tf.train.CheckpointManager, step: int, log=print) -> str:
    """manager.save(step), retrying transient errors; any other failure removes what the failed write
    left and raises CheckpointWriteError naming the last intact checkpoint."""
    for attempt, delay in enumerate(RETRY_DELAYS + (None,)):
        try:
            return manager.save(checkpoint_number=step)
        except TRANSIENT as error:
            if delay is None:
                failure = error
                break
            log(f"checkpoint: writing step {step} failed ({_reason(error)}); retry {attempt + 1} in {delay:.0f} s")
            time.sleep(delay)
        except (tf.errors.OpError, OSError) as error:
            failure = error
            break
    prefix = os.path.join(manager.directory, f"ckpt-{step}")
    if prefix not in manager.checkpoints:
        _remove(prefix)
    raise CheckpointWriteError(
        f"could not write checkpoint {prefix} ({_reason(failure)}); the last written checkpoint, "
        f"{manager.latest_checkpoint or 'none'}, is intact; {_fix(failure)} and restart with the same flags")


def _remove(prefix: str) -> None:
    """The files of a checkpoint whose write failed: `<prefix>.*` and the `<prefix>_temp` directory
    TensorFlow writes into first."""
    for path in tf.io.gfile.glob(prefix + ".*") + tf.io.gfile.glob(prefix + "_temp"):
        try:
            if tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                tf.io.gfile.remove(path)
        except tf.errors.OpError:
            pass   # best effort: nothing lists these files


def _reason(error: BaseException) -> str:
    """An error's first line without TensorFlow's op decorations, its end kept if it is long (the
    system's message, e.g. "No space left on device", comes last)."""
    message = (getattr(error, "message", None) or str(error) or type(error).__name__).strip().splitlines()[0]
    message = re.sub(r"\s*\[Op:\w+\].*$", "", re.sub(r"\{\{[^}]*\}\}\s*", "", message))
    return message if len(message) <= 200 else "..." + message[-197:]


def _fix(error: BaseException) -> str:
    text = _reason(error).lower()
    if isinstance(error, tf.errors.ResourceExhaustedError) or "no space" in text or "quota" in text:
        return "free space (or raise the quota) where --model_dir is"
    if isinstance(error, tf.errors.PermissionDeniedError) or "permission" in text:
        return "make --model_dir writable by this account"
    return "check the storage under --model_dir"
