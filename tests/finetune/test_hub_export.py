"""--export_dir's TF Hub pair: the preprocessing model tokenizes text with our vocab and the encoder
model gives our encoder's outputs on it (its pooler is the pretrained next-sentence pooler)."""

import numpy as np
import tensorflow as tf

from bert_pretrain import export, vocab_record
from bert_pretrain.finetune import encoder
from finetune_helpers import pretrained_model_dir


def test_preprocess_then_encoder_match_our_model(tmp_path):
    import tensorflow_text  # noqa: F401  (registers the ops the preprocessing model uses)
    from official.nlp.tools import tokenization

    model_dir = pretrained_model_dir(str(tmp_path))
    pretrained = encoder.from_directory(model_dir, dropout=0.1)
    ours = encoder.load_pretrainer(pretrained)
    export.export(ours, pretrained.model_config, model_dir, str(tmp_path / "export"), log=lambda line: None)

    text = ["w5 w17 w9 w100", "w42"]
    preprocess = tf.saved_model.load(str(tmp_path / "export" / "hub_preprocess"))
    hub_encoder = tf.saved_model.load(str(tmp_path / "export" / "hub_encoder"))
    inputs = preprocess(tf.constant(text))
    tokenizer = tokenization.FullTokenizer(vocab_record.load(model_dir).vocab_file, do_lower_case=True)
    first = ["[CLS]"] + tokenizer.tokenize(text[0]) + ["[SEP]"]
    np.testing.assert_array_equal(inputs["input_word_ids"][0, :len(first)], tokenizer.convert_tokens_to_ids(first))
    assert int(tf.reduce_sum(inputs["input_mask"][0])) == len(first)

    theirs = hub_encoder(inputs, training=False)
    expected = ours.encoder_network(inputs, training=False)
    np.testing.assert_allclose(theirs["sequence_output"], expected["sequence_output"], atol=1e-5)
    cls = expected["sequence_output"][:, 0]
    nsp_pooler = ours.classification_heads[0].dense(cls)
    np.testing.assert_allclose(theirs["pooled_output"], nsp_pooler, atol=1e-5)
    # The directory is a fine-tuning starting point too: the classifier built from it has our
    # encoder's weights and, as its [CLS] pooler, the next-sentence head's.
    exported = encoder.from_directory(str(tmp_path / "export"), dropout=0.1)
    assert exported.exported
    classifier = encoder.classifier(exported, num_classes=3)
    assert len(classifier.checkpoint_items["encoder"].weights) == len(ours.encoder_network.weights) > 10
    assert len(classifier.checkpoint_items["sentence_prediction.pooler_dense"].weights) == 2
    for theirs_weight, ours_weight in zip(classifier.checkpoint_items["encoder"].weights,
                                          ours.encoder_network.weights):
        np.testing.assert_array_equal(theirs_weight.numpy(), ours_weight.numpy())
    for theirs_weight, ours_weight in zip(classifier.checkpoint_items["sentence_prediction.pooler_dense"].weights,
                                          ours.classification_heads[0].dense.weights):
        np.testing.assert_array_equal(theirs_weight.numpy(), ours_weight.numpy())
