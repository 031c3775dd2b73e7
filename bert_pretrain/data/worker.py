"""Turns one block of documents into serialised records: tokenise, make instances, encode.

A block is the unit of parallel work. Its random streams are seeded from (random_seed, block index)
only, never from which process runs it, so output is byte-identical for any number of workers.
The whole block is tokenised in one compiled tensorflow-text call (`tokenize`).
"""

import dataclasses

import numpy as np
import tensorflow as tf

from bert_pretrain.data import instances as instances_lib
from bert_pretrain.data import tfrecords
from bert_pretrain.data import vocab as vocab_lib


@dataclasses.dataclass
class BlockStats:
    documents: int = 0
    short_documents: int = 0   # fewer than min_document_sentences non-empty sentences after tokenisation
    sentences: int = 0
    tokens: int = 0
    unknown_tokens: int = 0
    instances: int = 0
    masked_tokens: int = 0

    def add(self, other: "BlockStats") -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    vocab_path: str
    lower_case: bool
    instance_config: instances_lib.InstanceConfig
    feature_names: str
    random_seed: int
    min_document_sentences: int = 1
    single_thread: bool = False


class BlockProcessor:
    """Holds the tokenizer and vocab facts; one per process."""

    def __init__(self, config: WorkerConfig):
        import tensorflow_text as text  # pylint: disable=import-outside-toplevel
        if config.single_thread:  # one process per core: TF's own thread pools would oversubscribe
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        self.config = config
        vocab = vocab_lib.load_vocab(config.vocab_path)
        self.unk_id = vocab.id("[UNK]")
        self.token_ids = instances_lib.TokenIds(
            cls=vocab.id("[CLS]"), sep=vocab.id("[SEP]"), mask=vocab.id("[MASK]"),
            vocab_size=vocab.size, continuation=vocab.continuation_mask())
        self.tokenizer = text.FastBertTokenizer(vocab=list(vocab.tokens), token_out_type=tf.int64,
                                                lower_case_nfd_strip_accents=config.lower_case)
        self._word_pieces = tf.function(self._word_pieces, input_signature=[tf.TensorSpec([None], tf.string)],
                                        autograph=False)   # one trace for blocks of any size

    def _word_pieces(self, sentences: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(piece ids, pieces per sentence). tensorflow-text's FastBertTokenizer gives the pieces of
        its BertTokenizer (the tests compare them on awkward text and the built-in corpora) in one op,
        about 3x faster than BertTokenizer's separate basic-tokenizer and WordPiece ops."""
        pieces = self.tokenizer.tokenize(sentences)
        return pieces.flat_values, pieces.row_lengths()

    def tokenize(self, documents: list[list[str]], stats: BlockStats) -> instances_lib.TokenizedBlock:
        """One tokenizer call for the block; drops empty sentences, then documents left with fewer
        than `min_document_sentences` (1 keeps a one-sentence document: it gives random-next pairs,
        as in google-research's create_pretraining_data)."""
        sentences = [s for document in documents for s in document]
        ids, lengths = (t.numpy() for t in self._word_pieces(tf.constant(sentences)))
        document_of = np.repeat(np.arange(len(documents)), [len(d) for d in documents])
        non_empty = lengths > 0
        keep_document = (np.bincount(document_of[non_empty], minlength=len(documents))
                         >= self.config.min_document_sentences)
        stats.short_documents += int((~keep_document).sum())
        keep_sentence = non_empty & keep_document[document_of]
        ids = ids[np.repeat(keep_sentence, lengths)]
        kept_lengths = lengths[keep_sentence]
        sentences_per_document = np.bincount(document_of[keep_sentence], minlength=len(documents))
        sentences_per_document = sentences_per_document[keep_document]
        stats.documents += len(sentences_per_document)
        stats.sentences += len(kept_lengths)
        stats.tokens += len(ids)
        stats.unknown_tokens += int((ids == self.unk_id).sum())
        return instances_lib.TokenizedBlock(
            ids, np.concatenate([[0], np.cumsum(kept_lengths)]).astype(np.int64),
            np.concatenate([[0], np.cumsum(sentences_per_document)]).astype(np.int64))

    def __call__(self, block_index: int, documents: list[list[str]]) -> tuple[int, list[bytes], BlockStats]:
        stats = BlockStats()
        return self.records(block_index, self.tokenize(documents, stats), stats)

    def records(self, block_index: int, block: instances_lib.TokenizedBlock,
                stats: BlockStats) -> tuple[int, list[bytes], BlockStats]:
        """A tokenised block's instances, serialised (the Python half of the work)."""
        if len(block.document_starts) < 2:
            return block_index, [], stats
        seed = np.random.SeedSequence([self.config.random_seed, block_index])
        features = instances_lib.create_instances(block, self.config.instance_config, self.token_ids, seed)
        stats.instances = len(features["input_ids"])
        stats.masked_tokens = int(features["masked_lm_weights"].sum()) if "masked_lm_weights" in features else 0
        return block_index, tfrecords.encode_examples(features, self.config.feature_names), stats
