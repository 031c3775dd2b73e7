"""Data to make and store for static masking (google-research's scheme, dupe_factor 10) against
unmasked records (`--masking=none`, one copy, masked anew each epoch by training): time and bytes.

    python benchmarks/masking_data.py                     # the demo's corpus (builtin:python-docstrings)
    python benchmarks/masking_data.py --synthetic_mb=100  # and 100 MB of generated text

Both kinds are made by the real tool (sequence length 128, 20 predictions, 8 shards, default
workers) with one vocab, learned once outside the timing from the demo's corpus. The demo's corpus
is made twice in the order static, none, static, none and the faster time of each kind is kept.
Besides wall time it reports CPU time (this process and its worker processes): the tool runs one
worker per core for large static jobs and in-process for small ones, so on few cores the wall-time
ratio understates the work saved.
"""

import argparse
import os
import resource
import tempfile
import time

from data_creation import _synthetic_corpus   # pylint: disable=import-error

from bert_pretrain.data import Options, create_pretraining_data
from bert_pretrain.data import builtin_corpus, vocab as vocab_lib

KINDS = (("static", 10), ("none", 1))   # (masking, dupe_factor)


def _make(input_spec: str, vocab_file: str, masking: str, dupe_factor: int, workers: int,
          output_dir: str) -> tuple[float, int, int, float]:
    """(seconds, bytes of the shards, records, CPU seconds) of one run of the tool."""
    options = Options(input=input_spec, output_dir=output_dir, vocab_file=vocab_file, max_seq_length=128,
                      max_predictions_per_seq=20, dupe_factor=dupe_factor, masking=masking, num_shards=8,
                      workers=workers, progress=False, overwrite=True)
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    meta = create_pretraining_data(options)
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    size = sum(os.path.getsize(os.path.join(output_dir, name)) for name in os.listdir(output_dir)
               if name.endswith(".tfrecord"))
    return seconds, size, meta["counts"]["instances"], cpu


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished child processes."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def _compare(label: str, input_spec: str, vocab_file: str, workers: int, repeats: int, workdir: str) -> None:
    results = {}
    for _ in range(repeats):
        for masking, dupe_factor in KINDS:
            run = _make(input_spec, vocab_file, masking, dupe_factor, workers, os.path.join(workdir, masking))
            results[masking] = min(results.get(masking, run), run)
    for masking, dupe_factor in KINDS:
        seconds, size, records, cpu = results[masking]
        print(f"{label}, --masking={masking} dupe_factor {dupe_factor}: {records:,} records, "
              f"{size / 1e6:,.1f} MB, {seconds:.1f} s ({cpu:.1f} CPU s)", flush=True)
    (static_s, static_b, _, static_cpu), (none_s, none_b, _, none_cpu) = results["static"], results["none"]
    print(f"{label}: none is {static_b / none_b:.1f}x smaller, {static_s / none_s:.1f}x faster to make "
          f"({static_cpu / none_cpu:.1f}x less CPU time)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic_mb", type=int, default=0, help="also compare on generated text")
    parser.add_argument("--workers", type=int, default=0, help="0 = the tool's default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        sentences = [s for d in builtin_corpus.load("python-docstrings") for s in d]
        vocab = vocab_lib.learn_vocab(lambda: iter(sentences), os.path.join(workdir, "vocab.txt"), 8000,
                                      lower_case=True)
        _compare("builtin:python-docstrings", "builtin:python-docstrings", vocab.path, args.workers, 2, workdir)
        if args.synthetic_mb:
            corpus = os.path.join(workdir, "synthetic.txt")
            _synthetic_corpus(corpus, args.synthetic_mb, list(vocab.tokens))
            _compare(f"synthetic {args.synthetic_mb} MB", corpus, vocab.path, args.workers, 1, workdir)


if __name__ == "__main__":
    main()
