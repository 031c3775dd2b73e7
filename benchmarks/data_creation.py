"""Throughput of bert-pretrain-data: seq-128 instances/s and input MB/s.

Runs the real pipeline (default worker count, writing shards) on the built-in corpus and, with
--synthetic_mb, on a generated BERT-format corpus of that size. The vocab is learned once, outside
the timing. Timing covers the whole job after the vocab: reading, the counting pass, worker
start-up, tokenisation, instance creation, encoding and writing. The built-in corpus is timed twice:
cold (including the one-off parse of the standard library's sources) and warm (already parsed).

  python benchmarks/data_creation.py [--workers=0] [--dupe_factor=10] [--synthetic_mb=0]
"""

import argparse
import os
import random
import tempfile
import time

from bert_pretrain.data import Options, create_pretraining_data
from bert_pretrain.data import builtin_corpus, create, vocab as vocab_lib


def _synthetic_corpus(path: str, megabytes: int, vocab_words: list[str]) -> None:
    """Documents of 5-40 sentences of 5-30 words drawn from the vocab's whole words (fixed seed)."""
    rng = random.Random(0)
    words = [w for w in vocab_words if w.isalpha()] or ["word"]
    with open(path, "w", encoding="utf-8") as handle:
        while handle.tell() < megabytes * 1_000_000:
            sentences = (" ".join(rng.choices(words, k=rng.randint(5, 30))) + "."
                         for _ in range(rng.randint(5, 40)))
            handle.write("\n".join(sentences) + "\n\n")


def _run(label: str, input_spec: str, vocab_file: str, args, workdir: str) -> None:
    options = Options(input=input_spec, output_dir=os.path.join(workdir, label.split()[0]),
                      vocab_file=vocab_file, max_seq_length=128, max_predictions_per_seq=20,
                      dupe_factor=args.dupe_factor, num_shards=8, workers=args.workers,
                      progress=False, overwrite=True)
    start = time.perf_counter()
    meta = create_pretraining_data(options)
    seconds = time.perf_counter() - start
    instances, megabytes = meta["counts"]["instances"], meta["input"]["input_bytes"] / 1e6
    workers = args.workers or create._default_workers(  # pylint: disable=protected-access
        meta["input"]["input_bytes"], args.dupe_factor)
    print(f"{label}: {instances:,} instances from {megabytes:.1f} MB in {seconds:.1f} s → "
          f"{instances / seconds:,.0f} instances/s, {megabytes / seconds:.2f} input MB/s "
          f"(seq 128, dupe_factor {args.dupe_factor}, workers {workers})",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=0, help="0 = one per core")
    parser.add_argument("--dupe_factor", type=int, default=10)
    parser.add_argument("--synthetic_mb", type=int, default=0, help="also run on a synthetic corpus")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        sentences = [s for d in builtin_corpus.load("python-docs") for s in d]
        vocab = vocab_lib.learn_vocab(lambda: iter(sentences), os.path.join(workdir, "vocab.txt"),
                                      8000, lower_case=True)
        builtin_corpus.load.cache_clear()
        _run("builtin:python-docs (cold)", "builtin:python-docs", vocab.path, args, workdir)
        _run("builtin:python-docs (warm)", "builtin:python-docs", vocab.path, args, workdir)
        if args.synthetic_mb:
            corpus = os.path.join(workdir, "synthetic.txt")
            _synthetic_corpus(corpus, args.synthetic_mb, list(vocab.tokens))
            _run(f"synthetic {args.synthetic_mb} MB", corpus, vocab.path, args, workdir)


if __name__ == "__main__":
    main()
