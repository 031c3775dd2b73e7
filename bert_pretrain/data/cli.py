"""`bert-pretrain-data`: text files (or builtin:python-docs) → BERT pretraining TFRecords.

Example:
  bert-pretrain-data --input='corpus/*.txt' --output_dir=data/seq128 --vocab_size=30522
  bert-pretrain-data --input=builtin:python-docs --output_dir=/tmp/demo --vocab_size=8000
  bert-pretrain-data --verify=data/seq128     # read every record; report damaged files (exit 1)
"""

import dataclasses
import sys

from absl import app, flags

from bert_pretrain import console
from bert_pretrain.data.options import Options

_DEFAULTS = Options(input="", output_dir="")

flags.DEFINE_string("input", None, "Comma-separated text files or globs (local or gs://), or "
                    "builtin:python-docs / python-topics / python-docstrings for the corpus shipped with Python.")
flags.DEFINE_string("output_dir", None, "Directory for the shards, metadata.json and vocab.txt.")
flags.DEFINE_enum("input_format", _DEFAULTS.input_format, ["bert", "paragraphs"],
                  "bert: one sentence per line; paragraphs: one paragraph per line, split into "
                  "sentences by a rule-based splitter. Both: a blank line between documents.")
flags.DEFINE_string("vocab_file", None, "Existing WordPiece vocab; omit to learn one from the input.")
flags.DEFINE_integer("vocab_size", _DEFAULTS.vocab_size, "Size of a learned vocab.")
flags.DEFINE_float("vocab_sample_mb", _DEFAULTS.vocab_sample_mb,
                   "Learn the vocab from the first this-many MB of text (learning is slow).")
flags.DEFINE_bool("do_lower_case", _DEFAULTS.do_lower_case, "Lower-case and strip accents.")
flags.DEFINE_integer("max_seq_length", _DEFAULTS.max_seq_length, "Tokens per instance.")
flags.DEFINE_integer("max_predictions_per_seq", _DEFAULTS.max_predictions_per_seq,
                     "Most masked positions per instance (20 for 128, 80 for 512).")
flags.DEFINE_float("masked_lm_prob", _DEFAULTS.masked_lm_prob, "Share of tokens to predict.")
flags.DEFINE_float("short_seq_prob", _DEFAULTS.short_seq_prob, "Probability of a shorter target length.")
flags.DEFINE_integer("dupe_factor", _DEFAULTS.dupe_factor, "Passes over the input, each masked anew; "
                     "0: 10 with --masking=static, 1 with --masking=none.")
flags.DEFINE_enum("masking", _DEFAULTS.masking, ["static", "none"],
                  "static: google-research's masked records; none: unmasked sentence pairs, masked anew "
                  "each epoch by bert-pretrain train --masking=dynamic (about 10x less data to make).")
flags.DEFINE_bool("do_whole_word_mask", _DEFAULTS.do_whole_word_mask, "Mask whole words.")
flags.DEFINE_integer("random_seed", _DEFAULTS.random_seed, "Seed; same seed + input = same bytes.")
flags.DEFINE_enum("feature_names", _DEFAULTS.feature_names, ["v1", "v2"],
                  "v1: google-research names; v2: Model Garden's input_word_ids/input_type_ids.")
flags.DEFINE_integer("num_shards", _DEFAULTS.num_shards, "Number of output TFRecord files.")
flags.DEFINE_integer("block_bytes", _DEFAULTS.block_bytes,
                     "Text per work unit; also the pool random next sentences are drawn from.")
flags.DEFINE_integer("workers", _DEFAULTS.workers, "Worker processes; 1 = in-process; 0 = one per "
                     "core, or in-process for small jobs (input MB x dupe_factor < 300).")
flags.DEFINE_integer("min_document_sentences", _DEFAULTS.min_document_sentences,
                     "1 keeps every non-empty document, as google-research does (one sentence gives a "
                     "random-next pair); 2 skips (and counts) one-sentence documents.")
flags.DEFINE_string("verify", None, "Instead of making data: read every record of this data directory "
                    "(local or gs://) and report each file's problems; exit status 1 if any.")
flags.DEFINE_bool("overwrite", _DEFAULTS.overwrite, "Replace data made with other settings.")
flags.DEFINE_bool("progress", _DEFAULTS.progress, "Show a progress line on stderr.")
flags.DEFINE_bool("verbose", False, "Show TensorFlow's own log lines too.")

HELP_GROUPS = [
    ("input and output", ["input", "output_dir", "input_format", "overwrite", "progress"]),
    ("checking existing data", ["verify"]),
    ("vocab", ["vocab_file", "vocab_size", "vocab_sample_mb", "do_lower_case"]),
    ("instances", ["max_seq_length", "max_predictions_per_seq", "masked_lm_prob", "short_seq_prob",
                   "masking", "dupe_factor", "do_whole_word_mask", "random_seed", "feature_names",
                   "min_document_sentences"]),
    ("shards and processes", ["num_shards", "block_bytes", "workers"]),
    ("console", ["verbose"]),
]


def main(argv=None) -> None:
    """Console-script entry point."""
    argv = list(sys.argv if argv is None else argv)
    if console.wants_help(argv):
        print(console.help_text(__doc__, HELP_GROUPS, flags.FLAGS), end="")
        return
    console.quiet_tensorflow(argv)
    app.run(_run, argv=argv)


def _run(argv) -> None:
    from bert_pretrain.data.create import create_pretraining_data
    from bert_pretrain.errors import UsageError

    console.quiet_absl_logging(flags.FLAGS.verbose)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    values = {f.name: flags.FLAGS[f.name].value for f in dataclasses.fields(Options)}
    try:
        if flags.FLAGS.verify:
            from bert_pretrain.data.verify import verify_directory
            reports = verify_directory(flags.FLAGS.verify, workers=flags.FLAGS.workers)
            sys.exit(0 if all(report.ok for report in reports) else 1)
        for name in ("input", "output_dir"):
            if not values[name]:
                raise UsageError(name, "is required", f"pass --{name}=... (or --verify=DIR to check made data)")
        create_pretraining_data(Options(**values))
    except UsageError as error:
        print(f"bert-pretrain-data: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
