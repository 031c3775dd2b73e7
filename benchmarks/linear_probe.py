"""Do pretrained features know more than random ones? A linear probe on the built-in docstring task.

    python benchmarks/linear_probe.py runs/demo/model/phase2

Fits scikit-learn's LogisticRegression on the frozen encoder's [CLS] and mean-pooled outputs of the
task's training examples, for the pretrained encoder and for the same architecture randomly
initialised, and prints both held-out accuracies (docs/finetune.md).
"""

import collections
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression

from bert_pretrain import vocab_record
from bert_pretrain.finetune import classification, docstrings, encoder


def features(model_encoder, inputs: dict) -> np.ndarray:
    outputs = model_encoder(inputs, training=False)["sequence_output"].numpy()
    mask = inputs["input_mask"][..., None]
    return np.concatenate([outputs[:, 0], (outputs * mask).sum(1) / mask.sum(1)], axis=-1)


def main(model_dir: str) -> None:
    from official.nlp.data.classifier_data_lib import InputExample
    from official.nlp.tools import tokenization

    pretrained = encoder.from_directory(model_dir, dropout=0.1)
    vocab_file, lower_case = vocab_record.resolve(pretrained.vocab, "", None)
    tokenizer = tokenization.FullTokenizer(vocab_file, lower_case)
    data = {}
    for split in ("train", "eval"):
        examples = classification.Examples(split, [InputExample(str(i), text, None, label) for i, (text, label)
                                                   in enumerate(docstrings.examples(split))], collections.Counter())
        data[split] = classification.features(examples, docstrings.PACKAGES, 64, tokenizer)
    for name, source in (("pretrained", pretrained), ("random", encoder.Pretrained(pretrained.model_config, None, None))):
        model_encoder = encoder.load_pretrainer(source).encoder_network
        (train, train_labels), (held_out, held_out_labels) = data["train"], data["eval"]
        probe = LogisticRegression(max_iter=3000).fit(features(model_encoder, train), train_labels)
        print(f"{name}: linear probe accuracy train {probe.score(features(model_encoder, train), train_labels):.3f}, "
              f"held-out {probe.score(features(model_encoder, held_out), held_out_labels):.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
