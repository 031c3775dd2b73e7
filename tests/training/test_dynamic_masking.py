"""Dynamic masking (`masking.dynamic`) against hand-computed cases and invariants: the count rule
(15% of the selectable tokens rounded up, at most max_predictions_per_seq), never [CLS]/[SEP]/[PAD],
uniform positions and the 80/10/10 split within binomial bounds, whole words together and cut to the
limit, a mask that depends only on (seed, pipeline, stream position), and static records re-masked
from their original tokens."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf

from bert_pretrain import config, datasets, job, plans
from bert_pretrain.errors import UsageError
from bert_pretrain.masking import dynamic
from training_helpers import PRED, SEQ, VOCAB, write_shards

V, CLS, SEP, MASK = 1000, 2, 3, 4
CONTINUATION = np.arange(V) >= 500            # ids 500 and up are `##` pieces


def masker(max_predictions=5, whole_word=False):
    return dynamic.Masker(max_predictions, whole_word, V, CLS, SEP, MASK, 0, CONTINUATION)


def features(ids):
    ids = np.asarray(ids, np.int32)
    return {"input_ids": ids, "input_mask": (ids != 0).astype(np.int32), "segment_ids": np.zeros_like(ids),
            "next_sentence_labels": np.zeros(1, np.int32)}


def mask_all(records, m, seeds=None, positions=None):
    """Record i masked as the pipeline with seed seeds[i] (default 7) masks the record at stream
    position positions[i] (default i)."""
    stacked = {k: np.stack([r[k] for r in records]) for k in records[0]}
    seeds = np.full(len(records), 7) if seeds is None else np.asarray(seeds)
    positions = np.arange(len(records)) if positions is None else np.asarray(positions)
    dataset = tf.data.Dataset.from_tensor_slices((stacked, seeds, positions)).map(
        lambda r, seed, n: m(r, dynamic.record_seed(seed, 0, n)))
    out = [{k: v.numpy() for k, v in b.items()} for b in dataset.batch(1024)]
    return {k: np.concatenate([b[k] for b in out]) for k in out[0]}


def chosen_sets(out):
    return [tuple(p[w > 0].tolist()) for p, w in zip(out["masked_lm_positions"], out["masked_lm_weights"])]


def within_binomial(count, trials, p, sigmas=5.0):
    return abs(count - trials * p) <= sigmas * math.sqrt(trials * p * (1 - p)) + 1


def test_hand_computed_token_case():
    # 10 selectable tokens: ceil(0.15 x 10) = 2 predictions.
    record = features([CLS, 10, 11, 12, 13, 14, 15, 16, SEP, 17, 18, 19, SEP, 0, 0, 0])
    for limit, wanted in ((5, 2),):
        out = mask_all([record] * 300, masker(limit))
        assert (out["masked_lm_weights"].sum(axis=1) == wanted).all()
        assert out["masked_lm_positions"].shape == (300, limit)
        for row in range(300):
            positions = out["masked_lm_positions"][row][:wanted]
            assert list(positions) == sorted(positions) and set(positions) <= {1, 2, 3, 4, 5, 6, 7, 9, 10, 11}
            np.testing.assert_array_equal(out["masked_lm_ids"][row][:wanted], record["input_ids"][positions])
            untouched = np.setdiff1d(np.arange(16), positions)
            np.testing.assert_array_equal(out["input_ids"][row][untouched], record["input_ids"][untouched])
            assert (out["masked_lm_ids"][row][wanted:] == 0).all() and (out["masked_lm_positions"][row][wanted:] == 0).all()
        np.testing.assert_array_equal(out["input_mask"], np.tile(record["input_mask"], (300, 1)))


def test_hand_computed_whole_word_case():
    # Words: [10 ##600 ##601] [11] [##602: after [SEP], a word of its own] [12]: ceil(0.15 x 4) = 1 word.
    record = features([CLS, 10, 600, 601, 11, SEP, 602, 12, SEP, 0])
    out = mask_all([record] * 400, masker(5, whole_word=True))
    seen = chosen_sets(out)
    assert set(seen) == {(1, 2, 3), (4,), (6,), (7,)}
    for word in set(seen):
        assert within_binomial(seen.count(word), 400, 0.25)
    # With a limit of 2 predictions the 3-piece word does not fit and is dropped whole.
    seen = chosen_sets(mask_all([record] * 200, masker(2, whole_word=True)))
    assert set(seen) == {(), (4,), (6,), (7,)}


def test_rate_positions_and_80_10_10_within_binomial_bounds():
    rng = np.random.default_rng(0)
    length, n = 40, 3000                   # 37 selectable: ceil(5.55) = 6 predictions, cut to the limit 5
    records = []
    for _ in range(n):
        ids = np.zeros(48, np.int32)
        ids[:length] = rng.integers(5, 500, length)
        ids[[0, 20, length - 1]] = [CLS, SEP, SEP]
        records.append(features(ids))
    out = mask_all(records, masker(5))
    assert (out["masked_lm_weights"].sum(axis=1) == 5).all()
    positions = out["masked_lm_positions"][:, :5]
    per_position = np.bincount(positions.ravel(), minlength=48)
    assert per_position[[0, 20, length - 1]].sum() == 0 and per_position[length:].sum() == 0   # specials, padding
    selectable = [p for p in range(1, length - 1) if p != 20]
    assert all(within_binomial(per_position[p], n, 5 / 37) for p in selectable)
    originals = np.stack([r["input_ids"] for r in records])
    rows = np.repeat(np.arange(n), 5)
    values, labels = out["input_ids"][rows, positions.ravel()], out["masked_lm_ids"][:, :5].ravel()
    np.testing.assert_array_equal(labels, originals[rows, positions.ravel()])
    trials = len(values)                                  # a random id is [MASK] or the original 1/V of the time
    assert within_binomial((values == MASK).sum(), trials, 0.8 + 0.1 / V)
    assert within_binomial((values == labels).sum(), trials, 0.1 + 0.1 / V)
    assert within_binomial(((values != MASK) & (values != labels)).sum(), trials, 0.1 * (V - 2) / V)
    assert (values >= 0).all() and (values < V).all()
    untouched = np.ones_like(originals, bool)
    untouched[rows, positions.ravel()] = False
    np.testing.assert_array_equal(out["input_ids"][untouched], originals[untouched])


def test_whole_words_stay_whole_and_within_the_limit():
    rng = np.random.default_rng(1)
    records = []

    def segment(size):   # words of 1 to 4 pieces, cut to `size` (a segment may start with a `##` piece)
        pieces = rng.integers(500, V, int(rng.integers(0, 3))).tolist()
        while len(pieces) < size:
            pieces += [int(rng.integers(5, 500))] + rng.integers(500, V, int(rng.integers(0, 4))).tolist()
        return pieces[:size]

    for _ in range(300):
        records.append(features([CLS] + segment(30) + [SEP] + segment(27) + [SEP] + [0] * 4))
    out = mask_all(records, masker(6, whole_word=True))
    counts = out["masked_lm_weights"].sum(axis=1)
    assert counts.max() == 6 and counts.min() >= 1          # the limit binds and is never passed
    for record, chosen in zip(records, chosen_sets(out)):
        ids = record["input_ids"]
        chosen = set(chosen)
        for p in chosen:
            assert ids[p] not in (CLS, SEP, 0)
            if CONTINUATION[ids[p]] and ids[p - 1] not in (CLS, SEP):
                assert p - 1 in chosen                        # the piece before it, back to the word start
            if p + 1 < len(ids) and CONTINUATION[ids[p + 1]]:
                assert p + 1 in chosen                        # and the pieces after it
    # Below the limit each record gets ceil(0.15 x its words) words, each word equally likely: the
    # expected pieces are k / words x pieces per record (the reference count, by the `##` rule).
    out = mask_all(records, masker(60, whole_word=True))
    expected = 0.0
    for record in records:
        ids = record["input_ids"][record["input_ids"] > 0]
        special = np.isin(ids, (CLS, SEP))
        starts = ~CONTINUATION[ids] | special | np.concatenate([[True], special[:-1]])
        words = int((starts & ~special).sum())
        expected += math.ceil(0.15 * words) / words * int((~special).sum())
    assert abs(out["masked_lm_weights"].sum() / expected - 1) < 0.03


def test_a_mask_is_a_function_of_seed_and_stream_position():
    record = features([CLS] + list(range(10, 40)) + [SEP])
    # Positions 0-49 twice (a second run), 50-99 (the same records an epoch on), 0-49 with seed 8.
    positions = np.concatenate([np.arange(50), np.arange(50), np.arange(50, 100), np.arange(50)])
    seeds = np.array([7] * 150 + [8] * 50)
    out = mask_all([record] * 200, masker(8), seeds, positions)
    first, again, later, other_seed = (chosen_sets(out)[i:i + 50] for i in range(0, 200, 50))
    assert first == again and len(set(first)) > 40             # the same run; positions vary by record
    np.testing.assert_array_equal(out["input_ids"][:50], out["input_ids"][50:100])
    assert sum(a != b for a, b in zip(first, later)) > 40
    assert sum(a != b for a, b in zip(first, other_seed)) > 40


def test_static_records_regain_their_tokens():
    record = features([CLS, 10, 11, 12, SEP, 0])
    record["input_ids"][[1, 3]] = [MASK, 777]
    record.update(masked_lm_positions=np.array([1, 3, 0], np.int32), masked_lm_ids=np.array([10, 12, 0], np.int32),
                  masked_lm_weights=np.array([1, 1, 0], np.float32))
    restored = dynamic.original_tokens({k: tf.constant(v) for k, v in record.items()})
    assert restored["input_ids"].numpy().tolist() == [CLS, 10, 11, 12, SEP, 0]
    assert sorted(restored) == ["input_ids", "input_mask", "next_sentence_labels", "segment_ids"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("static"))
    write_shards(directory, files=2, records=24)
    return datasets.data_spec(datasets.resolve_files(os.path.join(directory, "*.tfrecord"), "train_files"),
                              SEQ, PRED)


def batches(spec, n, **kwargs):
    dataset = datasets.train_dataset_fn(spec, 8, seed=3, window=48, **kwargs)(tf.distribute.InputContext())
    return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(n)]


def test_pipeline_re_masks_static_records_and_resumes_exactly(shards):
    static = batches(shards, 12)                              # 96 records: 2 epochs of 48, 2 windows
    run = batches(shards, 12, masking="dynamic")
    resumed = batches(shards, 5, masking="dynamic", consumed_steps=7)
    for a, b in zip(run[7:], resumed):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)

    def originals(batch):
        ids = batch["input_ids"].copy()
        rows, cols = np.nonzero(batch["masked_lm_weights"])
        ids[rows, batch["masked_lm_positions"][rows, cols]] = batch["masked_lm_ids"][rows, cols]
        return ids

    masks = {}
    for s, d in zip(static, run):                              # same records, same order, new masks
        np.testing.assert_array_equal(originals(s), originals(d))
        np.testing.assert_array_equal(s["segment_ids"], d["segment_ids"])
        for row, ids in enumerate(originals(d)):
            masks.setdefault(ids.tobytes(), []).append(tuple(d["masked_lm_positions"][row]))
    assert len(masks) == 48 and all(len(m) == 2 for m in masks.values())
    assert sum(m[0] != m[1] for m in masks.values()) > 40      # epoch 2 masks the records anew


def test_masking_errors_are_one_line_naming_the_flag(tmp_path, shards):
    unmasked = datasets.DataSpec(shards.files, SEQ, PRED, masking="none")
    model = config.ModelConfig(VOCAB, 1, 32, 2)
    training = config.TrainConfig(10, 8, 1e-3, 1)
    with pytest.raises(UsageError, match=r"^--masking: static masking reads .* unmasked records .*; "
                                         r"pass --masking=dynamic or --masking=dynamic_whole_word$"):
        job.build_trainer(job.Job(model, training, str(tmp_path / "model"), unmasked), None)
    assert not (tmp_path / "model").exists()                  # refused before anything is built
    with pytest.raises(UsageError, match=r"^--eval_files: .* unmasked records .*; make the held-out data with"):
        datasets.check_masking(unmasked, "dynamic", "eval_files", held_out=True)
    datasets.check_masking(unmasked, "dynamic", "train_files")
    bare = tmp_path / "bare"
    write_shards(str(bare), files=1, records=8, metadata=False)
    spec = datasets.data_spec((str(bare / "pretrain-00000-of-00001.tfrecord"),), SEQ, PRED)
    with pytest.raises(UsageError, match=r"^--masking: dynamic masking needs the data's vocab and .*vocab.txt "
                                         r"does not exist; put the vocab"):
        datasets.check_masking(spec, "dynamic_whole_word", "train_files")


def test_a_plan_sets_masking_for_its_phases(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text('name = "p"\nmodel = "tiny"\n[[phases]]\nname = "one"\ndata = "d"\nmax_seq_length = 16\n'
                    'max_predictions_per_seq = 4\nglobal_batch_size = 8\ntrain_steps = 4\nlearning_rate = 1e-3\n'
                    'warmup_steps = 1\n[engine]\nmasking = "dynamic_whole_word"\n')
    engine = plans.load_plan(str(path)).engine
    assert config.TrainConfig(4, 8, 1e-3, 1, **engine).masking == "dynamic_whole_word"


def test_a_phase_sets_its_own_masking_over_the_engine_and_under_the_flag(tmp_path):
    from bert_pretrain import phases   # pylint: disable=import-outside-toplevel

    phase = ('[[phases]]\nname = "{name}"\ndata = "d"\nmax_seq_length = 16\nmax_predictions_per_seq = 4\n'
             'global_batch_size = 8\ntrain_steps = 4\nlearning_rate = 1e-3\nwarmup_steps = 1\n{extra}')
    path = tmp_path / "plan.toml"
    path.write_text('name = "p"\nmodel = "tiny"\n' + phase.format(name="one", extra="")
                    + phase.format(name="two", extra='masking = "dynamic"\n') + '[engine]\nmasking = "static"\n')
    plan = plans.load_plan(str(path))
    assert [phases.phase_training(plan, p, {})["masking"] for p in plan.phases] == ["static", "dynamic"]
    flagged = {"masking": "dynamic_whole_word"}   # an explicit flag is for every phase
    assert [phases.phase_training(plan, p, flagged)["masking"] for p in plan.phases] == ["dynamic_whole_word"] * 2
    path.write_text(path.read_text().replace('masking = "dynamic"', 'masking = "random"'))
    with pytest.raises(UsageError, match=r"^--plan: .*phase 2 \(two\).*masking must be one of static"):
        plans.load_plan(str(path))
