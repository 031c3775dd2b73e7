"""What a user configures in the data tool: `Options`, one field per `bert-pretrain-data` flag.

Plain Python (no TensorFlow), so the command line can read its defaults before TensorFlow loads.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Options:
    """Everything `create_pretraining_data` needs; the CLI flags map one to one."""

    input: str
    output_dir: str
    input_format: str = "bert"
    vocab_file: str | None = None
    vocab_size: int = 30522
    vocab_sample_mb: float = 100.0   # learn the vocab from the first this-many MB of text
    do_lower_case: bool = True
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 0        # 0: 10 for static masking, 1 for --masking=none (`resolved`)
    do_whole_word_mask: bool = False
    random_seed: int = 12345
    feature_names: str = "v1"
    num_shards: int = 8
    block_bytes: int = 256 * 1024
    workers: int = 0            # 0: one per core unless the job is small, see create._default_workers
    min_document_sentences: int = 1   # 1: every non-empty document, as google-research
    masking: str = "static"     # static: google-research's masked records; none: unmasked pairs
    overwrite: bool = False
    progress: bool = True

    def resolved(self) -> "Options":
        """The options with dupe_factor 0 replaced by its default: 10 masked copies (static, as
        google-research), or 1 unmasked copy, which training masks anew each epoch."""
        if self.dupe_factor:
            return self
        return dataclasses.replace(self, dupe_factor=1 if self.masking == "none" else 10)
