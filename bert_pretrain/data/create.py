"""Text → TFRecord shards: the Python API behind the `bert-pretrain-data` CLI.

Streaming and parallelism: the main process reads documents in order and cuts them into blocks of
about `block_bytes` of text; worker processes turn blocks into records (`worker`); the main process
writes the results in block order. A job too small to repay starting workers runs in-process, with
the next block tokenised on a second thread. At most two blocks per worker are in flight, so memory
does not grow with the corpus. Shard s holds a contiguous run of blocks, fixed by a cheap first pass
that counts them; shards are therefore finished one after another, each under a temporary name and
renamed when whole, and a re-run skips every shard whose final file exists.

Random-B pool: the reference picks B from any document of the whole (in-memory, shuffled) corpus. We
pick it uniformly from the other documents of the same block: ~256 KiB is about a hundred typical
documents (and never too few to avoid the A document itself unless the block has one document). For
next-sentence prediction what matters is that B comes from a different document, which a
pool of that size gives just as the whole corpus does unless the input is sorted by topic; instances
are shuffled within the block and readers shuffle again across files.
"""

import collections
import concurrent.futures
import dataclasses
import multiprocessing
import os
import sys
import time
from typing import Iterator

import tensorflow as tf

from bert_pretrain import atomic
from bert_pretrain.data import corpus as corpus_lib
from bert_pretrain.data import metadata as metadata_lib
from bert_pretrain.data import tfrecords
from bert_pretrain.data import vocab as vocab_lib
from bert_pretrain.data.instances import InstanceConfig
from bert_pretrain.data.options import Options
from bert_pretrain.data.progress import Progress
from bert_pretrain.data.worker import BlockProcessor, BlockStats, WorkerConfig
from bert_pretrain.errors import UsageError

VOCAB_FILENAME = "vocab.txt"
MASKINGS = ("static", "none")


def validate(options: Options) -> None:
    """Checks value ranges, so that a typo fails in a second rather than after the first pass."""
    checks = [
        ("max_seq_length", options.max_seq_length >= 5, "use at least 5 ([CLS] A [SEP] B [SEP])"),
        ("max_predictions_per_seq", 1 <= options.max_predictions_per_seq <= options.max_seq_length,
         "use a value between 1 and --max_seq_length (20 for 128, 80 for 512 is usual)"),
        ("masked_lm_prob", 0 < options.masked_lm_prob <= 1, "use a value in (0, 1], usually 0.15"),
        ("short_seq_prob", 0 <= options.short_seq_prob <= 1, "use a value in [0, 1], usually 0.1"),
        ("dupe_factor", options.dupe_factor >= 0, "use 1 or more (0: 10, or 1 with --masking=none)"),
        ("masking", options.masking in MASKINGS, "use static (google-research's masked records) or none "
         "(unmasked, for bert-pretrain train --masking=dynamic)"),
        ("num_shards", options.num_shards >= 1, "use 1 or more"),
        ("block_bytes", options.block_bytes >= 1024, "use at least 1024"),
        ("workers", options.workers >= 0, "use 0 (one per core) or more"),
        ("min_document_sentences", options.min_document_sentences in (1, 2),
         "use 1 (every document, as google-research) or 2 (skip one-sentence documents)"),
        ("vocab_size", options.vocab_size > len(vocab_lib.RESERVED_TOKENS), "use a larger value"),
        ("vocab_sample_mb", options.vocab_sample_mb > 0, "use a positive number of megabytes"),
        ("feature_names", options.feature_names in tfrecords.FEATURE_NAMES, "use v1 or v2"),
        ("random_seed", options.random_seed >= 0, "use a non-negative integer"),
        ("output_dir", bool(options.output_dir), "give a directory for the shards"),
    ]
    for flag, ok, fix in checks:
        if not ok:
            raise UsageError(flag, f"invalid value {getattr(options, flag)!r}", fix)


def blocks(source, block_bytes: int, stats: corpus_lib.ReadStats) -> Iterator[list[list[str]]]:
    """Consecutive documents grouped until each group holds at least block_bytes of text."""
    block, size = [], 0
    for document in source.documents(stats):
        block.append(document)
        size += sum(map(len, document))
        if size >= block_bytes:
            yield block
            block, size = [], 0
    if block:
        yield block


def _settings(options: Options, source, vocab: vocab_lib.Vocab | None) -> dict:
    """What the bytes of the output depend on; a re-run with equal settings may resume."""
    keys = ("input_format", "do_lower_case", "max_seq_length", "max_predictions_per_seq",
            "masked_lm_prob", "short_seq_prob", "dupe_factor", "do_whole_word_mask", "random_seed",
            "feature_names", "num_shards", "block_bytes", "min_document_sentences", "masking")
    settings = {k: getattr(options, k) for k in keys}
    settings["input"] = source.fingerprint()
    settings["vocab"] = {"sha256": vocab.sha256} if vocab else {
        "learned_size": options.vocab_size, "sample_mb": options.vocab_sample_mb}
    return settings


def _prepare_output_dir(options: Options, settings: dict) -> None:
    try:
        tf.io.gfile.makedirs(options.output_dir)
    except tf.errors.OpError as error:
        raise UsageError("output_dir", f"cannot create {options.output_dir!r} ({error.message})",
                         "choose a writable directory") from None
    existing = metadata_lib.read(options.output_dir)
    ours = [n for n in tf.io.gfile.listdir(options.output_dir)
            if n.startswith("pretrain-") or n in (metadata_lib.FILENAME, VOCAB_FILENAME)]
    if existing is None and any(n.startswith("pretrain-") for n in ours) and not options.overwrite:
        raise UsageError("overwrite", f"{options.output_dir} holds shards without {metadata_lib.FILENAME}",
                         "pass --overwrite to replace them, or choose another --output_dir")
    if options.overwrite:
        for name in ours:
            path = os.path.join(options.output_dir, name)
            if not (options.vocab_file and os.path.normpath(options.vocab_file) == os.path.normpath(path)):
                tf.io.gfile.remove(path)
    else:
        metadata_lib.refuse_other_settings(options.output_dir, settings, existing)


def _resolve_vocab(options: Options, source, given: vocab_lib.Vocab | None) -> vocab_lib.Vocab:
    """Copies --vocab_file next to the shards, reuses a vocab learned by an interrupted run, or learns
    one."""
    target = os.path.join(options.output_dir, VOCAB_FILENAME)
    if given:
        if os.path.normpath(options.vocab_file) != os.path.normpath(target):
            with atomic.replacing(target) as temporary:
                tf.io.gfile.copy(options.vocab_file, temporary, overwrite=True)
        return given
    if tf.io.gfile.exists(target):
        return vocab_lib.load_vocab(target)
    _log(f"learning a {options.vocab_size}-token WordPiece vocab from the input ...")

    def sentences():   # the first vocab_sample_mb of text: the learner's time grows with its input
        budget = options.vocab_sample_mb * 1e6
        for document in source.documents(corpus_lib.ReadStats()):
            yield from document
            budget -= sum(map(len, document))
            if budget <= 0:
                return
    return vocab_lib.learn_vocab(sentences, target, options.vocab_size, options.do_lower_case)


def create_pretraining_data(options: Options) -> dict:
    """Runs the whole job and returns the metadata written next to the shards."""
    validate(options)
    options = options.resolved()
    source = corpus_lib.open_source(options.input, options.input_format)
    given_vocab = vocab_lib.load_vocab(options.vocab_file) if options.vocab_file else None
    settings = _settings(options, source, given_vocab)
    _prepare_output_dir(options, settings)
    vocab = _resolve_vocab(options, source, given_vocab)
    started = time.monotonic()   # the summary's rate is for making data, not learning the vocab

    read_stats = corpus_lib.ReadStats()
    num_blocks = sum(1 for _ in blocks(source, options.block_bytes, read_stats))
    usable = read_stats.documents - (read_stats.one_sentence_documents if options.min_document_sentences == 2 else 0)
    if usable == 0:
        raise UsageError("input", "the input holds no document" + (
            " with 2 or more sentences" if options.min_document_sentences == 2 else ""),
                         "give text with one sentence per line and a blank line between documents "
                         "(or --input_format=paragraphs)")
    num_shards = _shards_to_write(options, num_blocks, read_stats.input_bytes)
    bounds = [s * num_blocks // num_shards for s in range(num_shards + 1)]
    metadata = metadata_lib.read(options.output_dir) or {}
    metadata.update(settings=settings, complete=False, input=dataclasses.asdict(read_stats),
                    vocab={"file": VOCAB_FILENAME, "size": vocab.size, "sha256": vocab.sha256},
                    shards=metadata.get("shards", {}))
    metadata_lib.write(options.output_dir, metadata)

    config = WorkerConfig(
        vocab_path=os.path.join(options.output_dir, VOCAB_FILENAME), lower_case=options.do_lower_case,
        instance_config=InstanceConfig(options.max_seq_length, options.max_predictions_per_seq,
                                       options.masked_lm_prob, options.short_seq_prob,
                                       options.dupe_factor, options.do_whole_word_mask,
                                       mask=options.masking == "static"),
        feature_names=options.feature_names, random_seed=options.random_seed,
        min_document_sentences=options.min_document_sentences)
    _write_shards(options, source, bounds, config, metadata, read_stats.documents)

    totals = BlockStats()
    for shard_stats in metadata["shards"].values():
        totals.add(BlockStats(**{f.name: shard_stats[f.name] for f in dataclasses.fields(BlockStats)}))
    metadata.update(complete=True, counts=dataclasses.asdict(totals),
                    unk_rate=totals.unknown_tokens / max(totals.tokens, 1))
    metadata_lib.write(options.output_dir, metadata)
    _print_summary(metadata, time.monotonic() - started)
    return metadata


def _shards_to_write(options: Options, num_blocks: int, input_bytes: int) -> int:
    """--num_shards, or the number of blocks if that is smaller: a block is the unit of work, so more
    shards than blocks would leave some empty, and a host of a TPU pod handed an empty file has no
    records to read. Says so in one line. The records are the same for any shard count."""
    if num_blocks >= options.num_shards:
        return options.num_shards
    smaller = max(1024, input_bytes // (2 * options.num_shards))
    _log(f"--num_shards={options.num_shards}: the input makes only {num_blocks} block(s) of --block_bytes="
         f"{options.block_bytes} (the unit of work), so {num_blocks} shard(s) are written rather than "
         f"{options.num_shards - num_blocks} empty ones; --block_bytes={smaller} should give {options.num_shards}")
    return num_blocks


def _write_shards(options, source, bounds, config, metadata, total_documents) -> None:
    num_shards = len(bounds) - 1
    shard_of_block = [s for s in range(num_shards) for _ in range(bounds[s], bounds[s + 1])]
    paths = [os.path.join(options.output_dir, tfrecords.shard_name(s, num_shards))
             for s in range(num_shards)]
    done = {s for s in range(num_shards)   # whole file and recorded counts: a crash can leave one only
            if tf.io.gfile.exists(paths[s]) and os.path.basename(paths[s]) in metadata["shards"]}
    if done:
        _log(f"resuming: {len(done)} of {num_shards} shards already complete")

    progress = Progress(total_documents, options.progress)
    writer, shard_stats, seen = None, BlockStats(), [0, 0]   # documents, instances

    def consume(result):
        nonlocal writer, shard_stats
        block_index, records, stats = result
        shard = shard_of_block[block_index]
        if writer is None:
            writer, shard_stats = tfrecords.ShardWriter(paths[shard]), BlockStats()
        writer.write(records)
        shard_stats.add(stats)
        seen[0] += stats.documents + stats.short_documents
        seen[1] += stats.instances
        if block_index == bounds[shard + 1] - 1:
            writer.close()
            writer = None
            metadata["shards"][os.path.basename(paths[shard])] = _shard_entry(paths[shard], shard_stats)
            metadata_lib.write(options.output_dir, metadata)
        progress.update(seen[0], seen[1])

    work = ((b, docs) for b, docs in enumerate(blocks(source, options.block_bytes, corpus_lib.ReadStats()))
            if shard_of_block[b] not in done)
    workers = options.workers or _default_workers(sum(source.sizes), options.dupe_factor)
    if workers == 1:
        _run_in_process(work, BlockProcessor(config), consume)
    else:
        _run_pool(work, dataclasses.replace(config, single_thread=True), workers, consume)
    progress.update(seen[0], seen[1], final=True)


def _shard_entry(path: str, stats: BlockStats) -> dict:
    """A finished shard's metadata: its counts and its size in bytes, by which training and
    `--verify` recognise a truncated copy without reading it."""
    return dataclasses.asdict(stats) | {"bytes": tf.io.gfile.stat(path).length}


def _default_workers(input_bytes: int, dupe_factor: int) -> int:
    """One process per core, unless the job is small: a spawned worker pays ~5 s of CPU to import
    TensorFlow, about what one process needs for 300 MB of text-passes (input x dupe_factor); measured
    on 2 cores, 20 MB x 10 took 10.8 s in-process and 12.8 s with two workers, which ran at 62k
    instances/s once started against 35k in-process."""
    cores = os.cpu_count() or 1
    return 1 if cores == 1 or input_bytes * dupe_factor < 300e6 else cores


def _run_in_process(work, processor: BlockProcessor, consume) -> None:
    """One process, two threads: block n+1 is tokenised on a thread while this one reads text and
    builds and writes block n's records. The tokenizer's ops run without the GIL, so this uses a
    second core for them without a spawned worker's ~5 s of importing TensorFlow."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tokenize") as tokenizer:
        pending = collections.deque()

        def finish_one():
            block_index, stats, tokenized = pending.popleft()
            consume(processor.records(block_index, tokenized.result(), stats))

        for block_index, documents in work:
            stats = BlockStats()
            pending.append((block_index, stats, tokenizer.submit(processor.tokenize, documents, stats)))
            if len(pending) > 1:
                finish_one()
        while pending:
            finish_one()


_processor = None


def _init_worker(config: WorkerConfig) -> None:
    global _processor  # pylint: disable=global-statement
    _processor = BlockProcessor(config)


def _process(block_index: int, documents: list[list[str]]):
    return _processor(block_index, documents)


def _run_pool(work, config: WorkerConfig, workers: int, consume) -> None:
    """Spawned (not forked: TensorFlow is not fork-safe) workers, results consumed in block order,
    at most two blocks per worker in flight. A worker that dies raises BrokenProcessPool here
    instead of hanging, which is why this is not multiprocessing.Pool."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                                initargs=(config,)) as pool:
        pending = collections.deque()
        for block_index, documents in work:
            pending.append(pool.submit(_process, block_index, documents))
            while len(pending) >= 2 * workers:
                consume(pending.popleft().result())
        while pending:
            consume(pending.popleft().result())


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_summary(metadata: dict, seconds: float) -> None:
    counts, read = metadata["counts"], metadata["input"]
    lines = [
        f"input: {read['files']:,} file(s), {read['input_bytes'] / 1e6:,.1f} MB; "
        f"{read['empty_files']:,} empty file(s) skipped; {read['replaced_bytes']:,} invalid UTF-8 "
        f"byte(s) replaced by U+FFFD",
        f"documents: {counts['documents']:,} used, "
        + (f"{read['one_sentence_documents']:,} of them of one sentence"
           if metadata["settings"]["min_document_sentences"] == 1 else
           f"{counts['short_documents']:,} with fewer than 2 sentences skipped"),
        f"sentences: {counts['sentences']:,}  tokens: {counts['tokens']:,}  "
        f"[UNK] rate: {100 * metadata['unk_rate']:.3f}%",
        f"instances: {counts['instances']:,} ("
        + (f"{counts['masked_tokens']:,} masked tokens" if metadata["settings"]["masking"] == "static"
           else "unmasked") + ") in "
        f"{len(metadata['shards'])} shard(s), {seconds:.1f} s, "
        f"{counts['instances'] / seconds:,.0f} instances/s",
    ]
    _log("\n".join(lines))
