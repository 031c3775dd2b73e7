"""Masked-LM + next-sentence instances from tokenised documents (docs/data.md, Instance creation).

Semantics follow google-research/bert's create_pretraining_data:

* per document a target length of max_seq_length - 3, or with probability short_seq_prob a random one
  in [2, max_seq_length - 3] (drawn once per document, as the reference does);
* sentences are gathered until the target is reached; A is a random number of leading sentences of
  that chunk; with probability 0.5 (always for a one-sentence chunk) B is a run of sentences from a
  random other document starting at a random sentence (label 1) and the unused sentences of the chunk
  are put back, else B is the rest of the chunk (label 0);
* an overlong pair loses one token at a time from the longer segment (B on ties), from its front or
  back at random;
* masked_lm_prob of the tokens (at least 1, at most max_predictions_per_seq, rounded half to even as
  Python's round does) are predicted; [CLS]/[SEP] never are; a chosen token becomes [MASK] with
  probability 0.8, stays itself with 0.1, becomes a uniformly random vocabulary id with 0.1; with
  whole-word masking, `##` pieces are chosen together with the piece before them (never across
  [SEP], where the reference would join a B-initial `##` piece to A's last word); positions sorted.

Only the per-sentence walk is a Python loop, and it handles spans (offsets into the block's flat token
array), never tokens: truncation, assembly and masking are NumPy operations over the whole block. The
random streams differ from the reference (it is not reproducible across machines anyway); the
distributions are the same, e.g. the tokens cut from the front follow Binomial(k, 1/2) exactly as k
coin flips would.

"Random other document" is drawn from the documents of the same block (see `create`): a bounded
pool instead of the whole corpus, which is what lets the tool stream.
"""

import dataclasses
import random

import numpy as np


@dataclasses.dataclass(frozen=True)
class InstanceConfig:
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    whole_word_mask: bool = False
    mask: bool = True             # False: unmasked pairs, masked during training (--masking=none)


@dataclasses.dataclass(frozen=True)
class TokenIds:
    """The vocabulary facts instance creation needs, without the vocabulary itself."""

    cls: int
    sep: int
    mask: int
    vocab_size: int
    continuation: np.ndarray  # bool per id: True for `##` pieces


@dataclasses.dataclass
class TokenizedBlock:
    """Documents as one flat token array: sentence s is ids[sentence_starts[s]:sentence_starts[s+1]],
    document d is sentences document_starts[d] to document_starts[d+1] - 1 (at least two each)."""

    ids: np.ndarray
    sentence_starts: np.ndarray
    document_starts: np.ndarray


def create_instances(block: TokenizedBlock, config: InstanceConfig, token_ids: TokenIds,
                     seed_sequence: np.random.SeedSequence) -> dict[str, np.ndarray]:
    """All dupe_factor passes over the block's documents, shuffled; arrays keyed by feature name.
    Unmasked instances are the masked ones before `mask_tokens`: the same pairs from the same seed."""
    py_seed, np_seed = seed_sequence.spawn(2)
    py_rng = random.Random(int(py_seed.generate_state(1, np.uint64)[0]))
    np_rng = np.random.Generator(np.random.PCG64(np_seed))
    spans = pair_spans(block, config, py_rng)
    spans = spans[np_rng.permutation(len(spans))]
    spans[:, :4] = truncate_pairs(spans[:, :4], config.max_seq_length - 3, np_rng)
    features = assemble(block.ids, spans, config.max_seq_length, token_ids)
    if not config.mask:
        features.pop("_candidates")
        return features
    features.update(mask_tokens(features, spans, config, token_ids, np_rng))
    return features


def pair_spans(block: TokenizedBlock, config: InstanceConfig, rng: random.Random) -> np.ndarray:
    """Returns rows (a_start, a_end, b_start, b_end, is_random_next) of untruncated pairs."""
    starts = block.sentence_starts.tolist()
    docs = block.document_starts.tolist()
    num_docs = len(docs) - 1
    max_tokens = config.max_seq_length - 3
    rows = []
    for _ in range(config.dupe_factor):
        for doc in range(num_docs):
            first, end = docs[doc], docs[doc + 1]
            target = max_tokens
            if rng.random() < config.short_seq_prob:
                target = rng.randint(2, max_tokens)
            chunk_first, i = first, first
            while i < end:
                if i == end - 1 or starts[i + 1] - starts[chunk_first] >= target:
                    count = i - chunk_first + 1
                    a_last = chunk_first + (rng.randint(1, count - 1) if count >= 2 else 1)
                    a_start, a_end = starts[chunk_first], starts[a_last]
                    if count == 1 or rng.random() < 0.5:
                        other = doc
                        for _ in range(10):
                            other = rng.randrange(num_docs)
                            if other != doc:
                                break
                        other_first, other_end = docs[other], docs[other + 1]
                        j = rng.randrange(other_first, other_end)
                        b_start, wanted = starts[j], target - (a_end - a_start)
                        j += 1
                        while j < other_end and starts[j] - b_start < wanted:
                            j += 1
                        rows.append((a_start, a_end, b_start, starts[j], 1))
                        i = a_last - 1  # the chunk's unused sentences are used again
                    else:
                        rows.append((a_start, a_end, a_end, starts[i + 1], 0))
                    chunk_first = i + 1
                i += 1
    return np.array(rows, dtype=np.int64).reshape(-1, 5)


def truncate_pairs(spans: np.ndarray, max_tokens: int, rng: np.random.Generator) -> np.ndarray:
    """Trims (a_start, a_end, b_start, b_end) rows so that len(A) + len(B) <= max_tokens.

    Removing one token at a time from the longer segment (B on ties) removes, in closed form, the
    length difference from the longer one and then alternates starting with B.
    """
    a_start, a_end, b_start, b_end = spans.T
    len_a, len_b = a_end - a_start, b_end - b_start
    excess = np.maximum(len_a + len_b - max_tokens, 0)
    a_longer = len_a > len_b
    levelling = np.minimum(excess, np.abs(len_a - len_b))
    rest = excess - levelling
    cut_a = np.where(a_longer, levelling, 0) + rest // 2
    cut_b = np.where(a_longer, 0, levelling) + (rest + 1) // 2
    front_a, front_b = rng.binomial(cut_a, 0.5), rng.binomial(cut_b, 0.5)
    return np.stack([a_start + front_a, a_end - (cut_a - front_a),
                     b_start + front_b, b_end - (cut_b - front_b)], axis=1)


def assemble(ids: np.ndarray, spans: np.ndarray, max_seq_length: int,
             token_ids: TokenIds) -> dict[str, np.ndarray]:
    """[CLS] A [SEP] B [SEP], zero-padded, for every row of spans at once."""
    a_start, a_end, b_start, b_end, label = (c[:, None] for c in spans.T)
    len_a, len_b = a_end - a_start, b_end - b_start
    pos = np.arange(max_seq_length)[None, :]
    in_a = (pos >= 1) & (pos <= len_a)
    in_b = (pos >= len_a + 2) & (pos <= len_a + len_b + 1)
    source = np.where(in_a, a_start + pos - 1, b_start + pos - len_a - 2)
    tokens = np.where(in_a | in_b, ids[np.where(in_a | in_b, source, 0)], 0)
    tokens[:, 0] = token_ids.cls
    rows = np.arange(len(spans))
    tokens[rows, len_a[:, 0] + 1] = token_ids.sep
    tokens[rows, (len_a + len_b)[:, 0] + 2] = token_ids.sep
    length = len_a + len_b + 3
    return {
        "input_ids": tokens.astype(np.int64),
        "input_mask": (pos < length).astype(np.int64),
        "segment_ids": ((pos >= len_a + 2) & (pos < length)).astype(np.int64),
        "next_sentence_labels": label.astype(np.int64),
        "_candidates": in_a | in_b,
    }


def mask_tokens(features: dict[str, np.ndarray], spans: np.ndarray, config: InstanceConfig,
                token_ids: TokenIds, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Chooses and replaces the tokens to predict, in place in features["input_ids"]."""
    tokens, candidates = features["input_ids"], features.pop("_candidates")
    num, seq = tokens.shape
    preds = config.max_predictions_per_seq
    length = features["input_mask"].sum(axis=1)
    wanted = np.minimum(preds, np.maximum(1, np.rint(length * config.masked_lm_prob))).astype(np.int64)
    keys = np.where(candidates, rng.random((num, seq)), 2.0)
    if config.whole_word_mask:
        chosen = _whole_word_choice(tokens, candidates, keys, wanted, preds, token_ids)
    else:
        order = np.argsort(keys, axis=1, kind="stable")[:, :preds]
        take = (np.arange(preds)[None, :] < wanted[:, None]) & (
            np.take_along_axis(keys, order, axis=1) < 2.0)
        chosen = np.where(take, order, seq)
    positions = np.sort(chosen, axis=1)
    real = positions < seq
    positions = np.where(real, positions, 0)
    labels = np.where(real, np.take_along_axis(tokens, positions, axis=1), 0)
    draw = rng.random((num, preds))
    random_ids = rng.integers(0, token_ids.vocab_size, (num, preds))
    replaced = np.where(draw < 0.8, token_ids.mask, np.where(draw < 0.9, labels, random_ids))
    rows, cols = np.nonzero(real)
    tokens[rows, positions[rows, cols]] = replaced[rows, cols]
    return {
        "masked_lm_positions": positions.astype(np.int64),
        "masked_lm_ids": labels.astype(np.int64),
        "masked_lm_weights": real.astype(np.float32),
    }


def _whole_word_choice(tokens, candidates, keys, wanted, preds, token_ids) -> np.ndarray:
    """Greedy whole-word choice in random word order, skipping words that would overshoot."""
    num, seq = tokens.shape
    previous_is_candidate = np.zeros_like(candidates)
    previous_is_candidate[:, 1:] = candidates[:, :-1]
    word_start = candidates & ~(token_ids.continuation[tokens] & previous_is_candidate)
    chosen = np.full((num, preds), seq, dtype=np.int64)
    for row in range(num):
        positions = np.flatnonzero(candidates[row])
        starts = np.flatnonzero(word_start[row, positions])
        words = np.split(positions, starts[1:])
        picked: list[int] = []
        for w in np.argsort(keys[row, positions[starts]], kind="stable").tolist():
            if len(picked) >= wanted[row]:
                break
            if len(picked) + len(words[w]) <= wanted[row]:
                picked.extend(words[w].tolist())
        chosen[row, :len(picked)] = picked
    return chosen
