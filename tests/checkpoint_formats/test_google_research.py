"""google-research BERT checkpoints in: a checkpoint written in google-research's layout loads into
our pretrainer, whose MLM and NSP logits then equal a float64 NumPy BERT (bert_reference.py) on
the same weights; every flaw of the directory is one line naming it."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import bert_reference
import google_checkpoint
from bert_pretrain import model as model_lib
from bert_pretrain.checkpoint_formats import google_research
from bert_pretrain.errors import UsageError


def _logits(pretrainer, ids, mask, segments, positions):
    outputs = pretrainer({"input_word_ids": tf.constant(ids), "input_mask": tf.constant(mask),
                          "input_type_ids": tf.constant(segments), "masked_lm_positions": tf.constant(positions)},
                         training=False)
    return outputs["mlm_logits"].numpy(), outputs[model_lib.NSP_HEAD].numpy()


def test_loaded_pretrainer_gives_the_papers_logits(tmp_path):
    weights = google_checkpoint.write(str(tmp_path), with_optimizer_slots=True)   # as run_pretraining.py leaves it
    config = google_research.model_config(str(tmp_path), dropout=0.1)
    assert (config.num_layers, config.hidden_size, config.num_heads, config.vocab_size) == (2, 32, 2, 120)
    pretrainer = model_lib.build_pretrainer(config)
    ids, mask, segments, positions = google_checkpoint.batch()
    _logits(pretrainer, ids, mask, segments, positions)   # builds the variables
    google_research.load_into(pretrainer, str(tmp_path))
    mlm, nsp = _logits(pretrainer, ids, mask, segments, positions)
    want_mlm, want_nsp = bert_reference.pretraining_logits(weights, ids, mask, segments, positions,
                                                           num_layers=2, num_heads=2)
    assert np.abs(want_mlm).max() > 0.5 and np.abs(want_nsp).max() > 0.1   # logits far from zero
    np.testing.assert_allclose(mlm, want_mlm, atol=1e-4)
    np.testing.assert_allclose(nsp, want_nsp, atol=1e-4)
    # The encoder's own pooler (what fine-tuning's pooled_output starts from) is Google's pooler too.
    _, want_pooled = bert_reference.encoder(weights, ids, mask, segments, 2, 2)
    pooled = pretrainer.encoder_network({"input_word_ids": ids, "input_mask": mask, "input_type_ids": segments},
                                        training=False)["pooled_output"]
    np.testing.assert_allclose(pooled, want_pooled, atol=1e-4)


@pytest.mark.parametrize("drop, extra, named", [
    (("bert/encoder/layer_1/output/dense/bias",), (), "has no variable bert/encoder/layer_1/output/dense/bias"),
    ((), ("cls/squad/output_weights",), "has a variable no BERT pretraining model has: cls/squad/output_weights"),
])
def test_a_missing_or_extra_variable_is_one_line_naming_it(tmp_path, drop, extra, named):
    google_checkpoint.write(str(tmp_path), layers=2, drop=drop, extra=extra)
    pretrainer = model_lib.build_pretrainer(google_research.model_config(str(tmp_path), 0.1))
    with pytest.raises(UsageError, match="^--init_from: .*" + named) as error:
        google_research.load_into(pretrainer, str(tmp_path))
    assert "\n" not in str(error.value)


def test_a_config_this_pipeline_cannot_build_or_a_contradicting_flag_is_one_line(tmp_path):
    google_checkpoint.write(str(tmp_path))
    path = tmp_path / "bert_config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps(dict(config, intermediate_size=100)))
    with pytest.raises(UsageError, match="^--init_from: .*intermediate_size=100, but the models built here have 128"):
        google_research.model_config(str(tmp_path), 0.1)
    path.write_text(json.dumps(config))
    loaded = google_research.model_config(str(tmp_path), 0.1)
    google_research.check_sizes(loaded, {"num_layers": 2, "hidden_size": None})   # agreeing or unset: fine
    with pytest.raises(UsageError, match=r"^--num_layers: 12 contradicts --init_from's bert_config.json \(num_layers 2\)"):
        google_research.check_sizes(loaded, {"num_layers": 12})
    # A damaged download: the config, or the checkpoint's index, unreadable.
    pretrainer = model_lib.build_pretrainer(loaded)
    (tmp_path / "bert_model.ckpt.index").write_bytes(b"not an index")
    with pytest.raises(UsageError, match="^--init_from: .*bert_model.ckpt cannot be read"):
        google_research.load_into(pretrainer, str(tmp_path))
    path.write_text("{")
    with pytest.raises(UsageError, match="^--init_from: .*bert_config.json is not JSON"):
        google_research.model_config(str(tmp_path), 0.1)


def test_vocab_casing_is_read_from_the_vocab(tmp_path):
    google_checkpoint.write(str(tmp_path))
    assert google_research.vocab(str(tmp_path)).do_lower_case
    with open(os.path.join(tmp_path, "vocab.txt"), "a") as handle:
        handle.write("Paris\n")
    assert not google_research.vocab(str(tmp_path)).do_lower_case
