"""Instance creation against hand-computed cases, a literal reference loop and statistical invariants."""

import random

import numpy as np
import pytest

from bert_pretrain.data import instances as inst

CLS, SEP, MASK, VOCAB = 2, 3, 4, 1000
CONTINUATION = np.zeros(VOCAB, dtype=bool)
CONTINUATION[900:] = True   # ids >= 900 play the role of `##` pieces
IDS = inst.TokenIds(cls=CLS, sep=SEP, mask=MASK, vocab_size=VOCAB, continuation=CONTINUATION)


def make_block(docs, rng=None):
    """docs: list of documents, each a list of sentence lengths. Token ids are random words >= 10."""
    rng = rng or np.random.default_rng(0)
    lengths = [n for d in docs for n in d]
    return inst.TokenizedBlock(
        ids=rng.integers(10, 900, sum(lengths)),
        sentence_starts=np.concatenate([[0], np.cumsum(lengths)]),
        document_starts=np.concatenate([[0], np.cumsum([len(d) for d in docs])]))


def test_two_sentence_documents_give_the_hand_computed_pairs():
    # Everything fits, so each document is one chunk of two sentences and A is its first sentence;
    # after a random B the second sentence is put back and becomes a one-sentence chunk, whose B is
    # always random.
    block = make_block([[3, 4], [5, 6]])   # sentences at [0,3) [3,7) | [7,12) [12,18)
    config = inst.InstanceConfig(max_seq_length=128, short_seq_prob=0.0, dupe_factor=30)
    rows = inst.pair_spans(block, config, random.Random(1)).tolist()
    other_doc_b = {0: [(7, 18), (12, 18)], 7: [(0, 7), (3, 7)]}
    expected_count, k = 0, 0
    while k < len(rows):
        a0, a1, b0, b1, label = rows[k]
        first = {0: 3, 7: 12}
        assert a0 in first and a1 == first[a0]
        expected_count += 1
        if label == 0:
            assert (b0, b1) == (a1, {0: 7, 7: 18}[a0])
        else:
            assert (b0, b1) in other_doc_b[a0]
            k += 1
            expected_count += 1
            assert rows[k][:2] == [a1, {0: 7, 7: 18}[a0]] and rows[k][4] == 1
            assert tuple(rows[k][2:4]) in other_doc_b[a0]
        k += 1
    assert expected_count == len(rows)
    labels = [r[4] for r in rows if r[0] in (0, 7)]
    assert len(labels) == 60 and 15 < sum(labels) < 45   # B random with probability 1/2


def reference_truncate(len_a, len_b, max_tokens):
    """The reference's loop: drop one token from the longer segment (B on ties)."""
    cut_a = cut_b = 0
    while len_a + len_b > max_tokens:
        if len_a > len_b:
            len_a, cut_a = len_a - 1, cut_a + 1
        else:
            len_b, cut_b = len_b - 1, cut_b + 1
    return cut_a, cut_b


def test_truncation_matches_the_reference_loop():
    rng = np.random.default_rng(0)
    len_a, len_b = rng.integers(1, 200, 500), rng.integers(1, 200, 500)
    spans = np.stack([np.full(500, 1000), 1000 + len_a, np.full(500, 5000), 5000 + len_b], axis=1)
    out = inst.truncate_pairs(spans, 125, rng)
    for row, (la, lb) in enumerate(zip(len_a.tolist(), len_b.tolist())):
        cut_a, cut_b = reference_truncate(la, lb, 125)
        assert out[row, 1] - out[row, 0] == la - cut_a
        assert out[row, 3] - out[row, 2] == lb - cut_b
        assert 1000 <= out[row, 0] <= out[row, 1] <= 1000 + la   # a window inside the original span


def test_truncation_cuts_front_and_back_evenly():
    spans = np.tile([[0, 300, 1000, 1001]], (2000, 1))   # A loses 176 tokens every time
    out = inst.truncate_pairs(spans, 125, np.random.default_rng(0))
    front = out[:, 0]
    assert abs(front.mean() - 88) < 1.0 and 0 < front.min() and front.max() < 176


def test_assemble_hand_computed():
    ids = np.arange(100, 120)
    spans = np.array([[0, 3, 10, 12, 1]])
    out = inst.assemble(ids, spans, 10, IDS)
    assert out["input_ids"][0].tolist() == [CLS, 100, 101, 102, SEP, 110, 111, SEP, 0, 0]
    assert out["segment_ids"][0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 0, 0]
    assert out["input_mask"][0].tolist() == [1] * 8 + [0, 0]
    assert out["next_sentence_labels"].tolist() == [[1]]


def masked_batch(whole_word, n=4000, seq=64, preds=10, prob=0.15, seed=0):
    rng = np.random.default_rng(seed)
    len_a = rng.integers(1, 30, n)
    len_b = rng.integers(1, 30, n)
    ids = rng.integers(10, VOCAB, 100_000)   # ~10% continuation pieces
    starts = rng.integers(0, 90_000, (n, 2))
    spans = np.stack([starts[:, 0], starts[:, 0] + len_a, starts[:, 1], starts[:, 1] + len_b,
                      np.zeros(n, dtype=int)], axis=1)
    features = inst.assemble(ids, spans, seq, IDS)
    original = features["input_ids"].copy()
    config = inst.InstanceConfig(max_seq_length=seq, max_predictions_per_seq=preds,
                                 masked_lm_prob=prob, whole_word_mask=whole_word)
    masked = inst.mask_tokens(features, spans, config, IDS, rng)
    return original, features, masked, len_a + len_b + 3


@pytest.mark.parametrize("whole_word", [False, True])
def test_masking_invariants(whole_word):
    original, features, masked, length = masked_batch(whole_word)
    positions, labels, weights = (masked[k] for k in ("masked_lm_positions", "masked_lm_ids",
                                                      "masked_lm_weights"))
    count = weights.sum(axis=1).astype(int)
    wanted = np.minimum(10, np.maximum(1, np.array([round(x * 0.15) for x in length])))
    if whole_word:
        assert (count <= wanted).all() and (count >= wanted - 2).mean() > 0.95
    else:
        assert (count == wanted).all()
    rows = np.arange(len(original))[:, None]
    real = weights > 0
    assert ((np.diff(positions, axis=1) > 0) | ~real[:, 1:]).all()   # sorted, distinct
    assert (positions[~real] == 0).all() and (labels[~real] == 0).all()
    assert (labels[real] == original[rows, positions][real]).all()
    assert not np.isin(original[rows, positions][real], [CLS, SEP, 0]).any()
    unmasked = np.ones_like(original, dtype=bool)
    unmasked[np.nonzero(real)[0], positions[real]] = False
    assert (features["input_ids"][unmasked] == original[unmasked]).all()


def test_masking_80_10_10():
    original, features, masked, _ = masked_batch(False, n=20000)
    real = masked["masked_lm_weights"] > 0
    rows = np.nonzero(real)[0]
    now = features["input_ids"][rows, masked["masked_lm_positions"][real]]
    before = masked["masked_lm_ids"][real]
    total = real.sum()
    share_mask = (now == MASK).mean()
    share_kept = (now == before).mean()
    share_random = ((now != MASK) & (now != before)).mean()
    tolerance = 4 * np.sqrt(0.09 / total)   # 4 standard deviations of a 0.1 share
    assert abs(share_mask - 0.8) < tolerance
    assert abs(share_kept - (0.1 + 0.1 / VOCAB)) < tolerance
    assert abs(share_random - 0.1 * (1 - 1 / VOCAB)) < tolerance


def test_whole_word_masking_takes_whole_words_only():
    original, _, masked, length = masked_batch(True)
    continuation = CONTINUATION[original]
    for row in range(300):
        chosen = set(masked["masked_lm_positions"][row][masked["masked_lm_weights"][row] > 0].tolist())
        for pos in chosen:
            # the word extends right while `##` pieces follow (not across [SEP]) ...
            nxt = pos + 1
            if nxt < length[row] and continuation[row, nxt] and original[row, nxt] not in (CLS, SEP):
                assert nxt in chosen
            # ... and a `##` piece is only chosen with the piece before it, unless that is [CLS]/[SEP]
            if continuation[row, pos] and original[row, pos - 1] not in (CLS, SEP):
                assert pos - 1 in chosen


def test_create_instances_is_deterministic_and_seed_dependent():
    block = make_block([[20, 30, 25, 40], [15, 10, 50], [60, 70]])
    config = inst.InstanceConfig(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=3)
    one = inst.create_instances(block, config, IDS, np.random.SeedSequence([7, 0]))
    two = inst.create_instances(block, config, IDS, np.random.SeedSequence([7, 0]))
    other = inst.create_instances(block, config, IDS, np.random.SeedSequence([7, 1]))
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])
    assert not np.array_equal(one["input_ids"], other["input_ids"])
    assert one["input_ids"].shape[1] == 64 and one["masked_lm_positions"].shape[1] == 10
    assert (one["input_ids"][:, 0] == CLS).all()
    assert ((one["input_ids"] == SEP).sum(axis=1) == 2).all()
    assert (one["input_mask"].sum(axis=1) <= 64).all()


def test_short_seq_prob_gives_shorter_targets():
    block = make_block([[10] * 40 for _ in range(10)])
    long_only = inst.InstanceConfig(max_seq_length=128, short_seq_prob=0.0, dupe_factor=10)
    always_short = inst.InstanceConfig(max_seq_length=128, short_seq_prob=1.0, dupe_factor=10)
    mean_len = {}
    for name, config in [("long", long_only), ("short", always_short)]:
        out = inst.create_instances(block, config, IDS, np.random.SeedSequence(3))
        mean_len[name] = out["input_mask"].sum(axis=1).mean()
    # long: chunks fill the 125-token target except at document ends; short: target ~ U[2, 125]
    assert mean_len["long"] > 110 and mean_len["short"] < 85, mean_len
