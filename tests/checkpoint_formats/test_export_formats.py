"""`bert-pretrain export`: the hf directory read back by an independent reader (KerasHub's own
Hugging Face converter) gives our outputs; the keras_hub preset loads as KerasHub's BERT tasks with
our weights; the round trip google-research -> ours -> hf -> KerasHub keeps the paper's outputs;
a second export into a non-empty directory is refused unless asked."""

import json
import os

import numpy as np
import pytest

import bert_reference
import google_checkpoint
from bert_pretrain.checkpoint_formats import exporter
from bert_pretrain.errors import UsageError
from bert_pretrain.finetune import encoder


def _ours(source):
    """Our pretrainer loaded from `source`, and its outputs on the fixed batch."""
    model = encoder.load_pretrainer(encoder.from_directory(source, 0.1))
    ids, mask, segments, positions = google_checkpoint.batch()
    encoded = model.encoder_network({"input_word_ids": ids, "input_mask": mask, "input_type_ids": segments},
                                    training=False)
    outputs = model({"input_word_ids": ids, "input_mask": mask, "input_type_ids": segments,
                     "masked_lm_positions": positions}, training=False)
    pooled = model.classification_heads[0].dense(encoded["sequence_output"][:, 0])   # BERT's trained pooler
    return {"sequence_output": encoded["sequence_output"].numpy(), "pooled_output": pooled.numpy(),
            "mlm_logits": outputs["mlm_logits"].numpy()}


def _keras_hub_inputs():
    ids, mask, segments, positions = google_checkpoint.batch()
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask.astype(bool)}, positions


def test_hf_export_read_by_keras_hub_gives_our_outputs_and_the_papers(tmp_path):
    import keras_hub
    from safetensors.numpy import load_file

    source = str(tmp_path / "google")
    weights = google_checkpoint.write(source)
    out = exporter.export(source, str(tmp_path / "hf"), "hf", log=lambda line: None)
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["architectures"] == ["BertForPreTraining"] and config["num_hidden_layers"] == 2
    assert json.load(open(os.path.join(out, "tokenizer_config.json")))["do_lower_case"] is True
    # The heads KerasHub does not read, against Google's originals (PyTorch's [out, in] = Google's NSP layout).
    saved = load_file(os.path.join(out, "model.safetensors"))
    np.testing.assert_array_equal(saved["cls.seq_relationship.weight"], weights["cls/seq_relationship/output_weights"])
    np.testing.assert_array_equal(saved["cls.predictions.bias"], weights["cls/predictions/output_bias"])
    np.testing.assert_array_equal(saved["cls.predictions.transform.dense.weight"],
                                  weights["cls/predictions/transform/dense/kernel"].T)

    backbone = keras_hub.models.BertBackbone.from_preset(out)
    inputs, _ = _keras_hub_inputs()
    theirs = {k: np.asarray(v) for k, v in backbone(inputs).items()}
    ours = _ours(source)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(theirs[key], ours[key], atol=1e-5)
    # Round trip google-research -> ours -> hf -> KerasHub: still the paper's BERT on Google's weights.
    ids, mask, segments, _ = google_checkpoint.batch()
    want_sequence, want_pooled = bert_reference.encoder(weights, ids, mask, segments, 2, 2)
    real = mask.astype(bool)   # padding positions' outputs are unspecified
    np.testing.assert_allclose(theirs["sequence_output"][real], want_sequence[real], atol=1e-4)
    np.testing.assert_allclose(theirs["pooled_output"], want_pooled, atol=1e-4)
    tokenizer = keras_hub.models.BertTokenizer.from_preset(out)
    assert np.asarray(tokenizer("W5 w17")).tolist() == [5, 17]   # lower-cased, as recorded


def test_keras_hub_preset_loads_as_kerashub_tasks_with_our_weights(tmp_path):
    import keras_hub

    source = str(tmp_path / "google")
    weights = google_checkpoint.write(source)
    target = str(tmp_path / "preset")
    exporter.export(source, target, "keras_hub", log=lambda line: None)
    task = keras_hub.models.BertMaskedLM.from_preset(target)
    inputs, positions = _keras_hub_inputs()
    ours = _ours(source)
    theirs = {k: np.asarray(v) for k, v in task.backbone(inputs).items()}
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(theirs[key], ours[key], atol=1e-5)
    # KerasHub's MLM head computes exact GELU with LayerNorm epsilon 1e-5: our weights in it give the
    # paper's logits with those two choices.
    logits = np.asarray(task({**inputs, "mask_positions": positions}))
    ids, mask, segments, _ = google_checkpoint.batch()
    want, _ = bert_reference.pretraining_logits(weights, ids, mask, segments, positions, 2, 2,
                                                head_gelu=bert_reference.exact_gelu, head_epsilon=1e-5)
    np.testing.assert_allclose(logits, want, atol=1e-4)
    assert np.abs(logits - ours["mlm_logits"]).max() < 0.05   # and stay close to BERT's own head
    classifier = keras_hub.models.BertTextClassifier.from_preset(target, num_classes=2)
    np.testing.assert_allclose(np.asarray(classifier.backbone(inputs)["pooled_output"]), ours["pooled_output"],
                               atol=1e-5)
    assert classifier.preprocessor.tokenizer.lowercase

    with pytest.raises(UsageError, match=f"^--export_dir: {target} is not empty; choose a new directory, or pass "
                                         "--overwrite"):
        exporter.export(source, target, "hf", log=lambda line: None)
    exporter.export(source, target, "hf", overwrite=True, log=lambda line: None)
    assert "model.safetensors" in os.listdir(target) and not os.path.exists(target + ".partial")
    with pytest.raises(UsageError, match="^--export_dir: exports are written to a local directory"):
        exporter.export(source, "gs://bucket/preset", "keras_hub", log=lambda line: None)
    # --overwrite never replaces the model being exported, nor a directory holding it; a file is no target.
    for holder in (source, str(tmp_path)):
        with pytest.raises(UsageError, match="holds the model being exported"):
            exporter.export(source, holder, "hf", overwrite=True, log=lambda line: None)
    assert os.path.exists(os.path.join(source, "bert_model.ckpt.index"))
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        exporter.export(source, str(tmp_path / "a-file"), "hf", log=lambda line: None)


def test_export_command_end_to_end_with_tfhub_a_finetuning_start(tmp_path):
    """The command, with the format that was train --export_dir's only one: a finetune --init_from."""
    import subprocess
    import sys

    weights = google_checkpoint.write(str(tmp_path / "google"))
    target = tmp_path / "tfhub"
    command = [os.path.join(os.path.dirname(sys.executable), "bert-pretrain"), "export",
               f"--model_dir={tmp_path / 'google'}", f"--export_dir={target}"]
    done = subprocess.run(command + ["--format=tfhub"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"export: tfhub written to {target}" in done.stdout
    assert {"pretrainer.index", "encoder_savedmodel", "hub_encoder", "hub_preprocess", "bert_config.json",
            "vocab.txt", "vocab.json"} <= set(os.listdir(target))
    exported = encoder.from_directory(str(target), dropout=0.1)
    assert exported.exported and exported.vocab.do_lower_case and exported.model_config.num_layers == 2
    classifier = encoder.classifier(exported, num_classes=2)
    np.testing.assert_array_equal(classifier.checkpoint_items["encoder"].get_embedding_table().numpy(),
                                  weights["bert/embeddings/word_embeddings"])
