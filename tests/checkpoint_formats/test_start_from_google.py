"""--init_from with a google-research directory: `train` (and a plan's first phase, through the same
Job) starts from its weights and records its vocab; `finetune` builds on its encoder; a flag that
contradicts its bert_config.json, or data made with another vocab, is one line."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

import bert_reference
import google_checkpoint
from bert_pretrain import job as job_lib
from bert_pretrain import vocab_record
from bert_pretrain.checkpoint_formats import google_research
from bert_pretrain.config import TrainConfig
from bert_pretrain.errors import UsageError
from bert_pretrain.finetune import encoder
from training_helpers import PRED, SEQ, write_shards

def _job(root, google_dir, model_dir="model"):
    data = job_lib.data_from_globs(os.path.join(root, "data", "*.tfrecord"), SEQ, PRED, "train_files")
    return job_lib.Job(google_research.model_config(google_dir, 0.0),
                       TrainConfig(train_steps=1, global_batch_size=8, learning_rate=1e-3, warmup_steps=0,
                                   steps_per_loop=1, checkpoint_every=0),
                       os.path.join(root, model_dir), data, init_from=google_dir)


def test_train_starts_from_the_checkpoint_and_records_its_vocab(tmp_path):
    root, google_dir = str(tmp_path), str(tmp_path / "google")
    weights = google_checkpoint.write(google_dir)
    write_shards(os.path.join(root, "data"), files=1, records=16)
    trainer = job_lib.build_trainer(_job(root, google_dir), tf.distribute.get_strategy())
    ids, mask, segments, positions = google_checkpoint.batch()
    outputs = trainer.model({"input_word_ids": ids, "input_mask": mask, "input_type_ids": segments,
                             "masked_lm_positions": positions}, training=False)
    want_mlm, want_nsp = bert_reference.pretraining_logits(weights, ids, mask, segments, positions, 2, 2)
    np.testing.assert_allclose(outputs["mlm_logits"], want_mlm, atol=1e-4)
    np.testing.assert_allclose(outputs["next_sentence"], want_nsp, atol=1e-4)
    record = vocab_record.load(os.path.join(root, "model"))
    assert record.sha256 == google_research.vocab(google_dir).sha256 and record.do_lower_case
    # A model_dir with a checkpoint resumes from it, not from Google's weights again.
    trainer.model.masked_lm.bias.assign(tf.ones_like(trainer.model.masked_lm.bias))
    trainer.save(log=lambda line: None)
    again = job_lib.build_trainer(_job(root, google_dir), tf.distribute.get_strategy())
    again.restore(log=lambda line: None)
    np.testing.assert_array_equal(again.model.masked_lm.bias.numpy(), np.ones(120))


def test_data_of_another_vocab_is_refused(tmp_path):
    root, google_dir = str(tmp_path), str(tmp_path / "google")
    google_checkpoint.write(google_dir)
    with open(os.path.join(google_dir, "vocab.txt"), "a") as handle:
        handle.write("extra\n")   # now not the data's vocab
    write_shards(os.path.join(root, "data"), files=1, records=16)
    with pytest.raises(UsageError, match="^--train_files: the data was not made with --init_from's vocab"):
        job_lib.build_trainer(_job(root, google_dir), tf.distribute.get_strategy())


def test_finetune_builds_on_its_encoder_and_nsp_pooler(tmp_path):
    weights = google_checkpoint.write(str(tmp_path))
    pretrained = encoder.from_directory(str(tmp_path), dropout=0.1)
    assert pretrained.google_research and pretrained.vocab.do_lower_case
    classifier = encoder.classifier(pretrained, num_classes=3)
    pooler = classifier.checkpoint_items["sentence_prediction.pooler_dense"]
    np.testing.assert_array_equal(pooler.kernel.numpy(), weights["bert/pooler/dense/kernel"])
    embeddings = classifier.checkpoint_items["encoder"].get_embedding_table()
    np.testing.assert_array_equal(embeddings.numpy(), weights["bert/embeddings/word_embeddings"])


@pytest.mark.parametrize("flag, message", [
    ("--num_layers=4", "--num_layers: 4 contradicts --init_from's bert_config.json (num_layers 2)"),
    ("--preset=base", "--preset: base contradicts --init_from's bert_config.json (2 layers, hidden 32, 2 heads)"),
])
def test_a_contradicting_size_flag_is_one_line(tmp_path, flag, message):
    from absl import flags

    from bert_pretrain import cli

    google_checkpoint.write(str(tmp_path))
    flags.FLAGS(["bert-pretrain", f"--init_from={tmp_path}", flag])
    try:
        with pytest.raises(UsageError) as error:
            cli._init_from_config()   # pylint: disable=protected-access
        assert str(error.value).startswith(message) and "\n" not in str(error.value)
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["bert-pretrain", f"--init_from={tmp_path}", "--num_layers=2", "--dropout=0.2"])
        assert cli._init_from_config().dropout == 0.2   # pylint: disable=protected-access
    finally:
        flags.FLAGS.unparse_flags()


def test_a_plan_checks_the_checkpoint_before_making_data(tmp_path):
    from bert_pretrain import phases, plans

    google_checkpoint.write(str(tmp_path))
    plan = plans.load_plan("continue-base-phase2")   # BERT-Base's size; the test checkpoint is 2 layers
    assert plan.model == "base" and plan.phases[0].max_seq_length == 512
    with pytest.raises(UsageError, match="^--plan: continue-base-phase2's model has num_layers 12, --init_from's "
                                         r"bert_config.json 2; use a plan whose model is the checkpoint's size"):
        phases.check_start(plan, str(tmp_path))
    tiny = dataclasses.replace(plan, num_layers=2, hidden_size=32, num_heads=2)
    assert phases.check_start(tiny, str(tmp_path)).do_lower_case


def test_a_plans_first_phase_starts_from_the_checkpoint(tmp_path):
    from bert_pretrain import phases, plans

    weights = google_checkpoint.write(str(tmp_path / "google"))
    write_shards(str(tmp_path / "data" / "seq16"), files=1, records=16)
    path = tmp_path / "plan.toml"
    path.write_text('name = "continue"\nmodel = "tiny"\nnum_layers = 2\nhidden_size = 32\nnum_heads = 2\n'
                    'dropout = 0.0\n[[phases]]\nname = "phase1"\ndata = "seq16"\nmax_seq_length = 16\n'
                    'max_predictions_per_seq = 4\nglobal_batch_size = 8\ntrain_steps = 1\n'
                    'learning_rate = 1e-9\nwarmup_steps = 0\n')   # one step too small to move the weights
    phases.run_plan(plans.load_plan(str(path)), str(tmp_path / "data"), str(tmp_path / "model"),
                    tf.distribute.get_strategy(), 0, {"steps_per_loop": 1, "checkpoint_every": 0},
                    log=lambda line: None, init_from=str(tmp_path / "google"))
    trained = encoder.load_pretrainer(encoder.from_directory(str(tmp_path / "model" / "phase1"), 0.0))
    ids, mask, segments, positions = google_checkpoint.batch()
    outputs = trained({"input_word_ids": ids, "input_mask": mask, "input_type_ids": segments,
                       "masked_lm_positions": positions}, training=False)
    want_mlm, want_nsp = bert_reference.pretraining_logits(weights, ids, mask, segments, positions, 2, 2)
    np.testing.assert_allclose(outputs["mlm_logits"], want_mlm, atol=1e-4)
    np.testing.assert_allclose(outputs["next_sentence"], want_nsp, atol=1e-4)
    assert vocab_record.load(str(tmp_path / "model" / "phase1")).sha256 == \
        google_research.vocab(str(tmp_path / "google")).sha256
