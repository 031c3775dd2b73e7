"""Random records in google-research's schema, for the benchmarks that need data of a given shape
rather than text: every id in range, every mask and weight well formed."""

import numpy as np


def random_features(rng: np.random.Generator, count: int, seq: int, pred: int, vocab: int) -> dict:
    """`count` instances as the arrays `bert_pretrain.data.tfrecords.encode_examples` takes."""
    return {"input_ids": rng.integers(5, vocab, (count, seq)), "input_mask": np.ones((count, seq), int),
            "segment_ids": (np.arange(seq) >= seq // 2).astype(int)[None].repeat(count, 0),
            "masked_lm_positions": np.sort(rng.integers(1, seq, (count, pred)), 1),
            "masked_lm_ids": rng.integers(5, vocab, (count, pred)),
            "masked_lm_weights": np.ones((count, pred), np.float32),
            "next_sentence_labels": rng.integers(0, 2, (count, 1))}
