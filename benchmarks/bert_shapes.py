"""BERT's trainable variables as (path, shape) pairs, named as in google-research/Model Garden
checkpoints so that the BERT exclusions (LayerNorm, bias) match what they match in a real run.

base: 110,106,428 parameters in 206 variables; large: 336,226,108 in 398.
"""

SIZES = {"mini": (4, 256), "base": (12, 768), "large": (24, 1024)}  # layers, hidden
VOCAB, POSITIONS, TYPES = 30522, 512, 2


def bert_variables(size="base"):
    layers, hidden = SIZES[size]
    ffn = 4 * hidden
    specs = [
        ("bert/embeddings/word_embeddings", (VOCAB, hidden)),
        ("bert/embeddings/position_embeddings", (POSITIONS, hidden)),
        ("bert/embeddings/token_type_embeddings", (TYPES, hidden)),
        ("bert/embeddings/LayerNorm/gamma", (hidden,)),
        ("bert/embeddings/LayerNorm/beta", (hidden,)),
    ]
    for layer in range(layers):
        prefix = f"bert/encoder/layer_{layer}"
        for part in ("attention/self/query", "attention/self/key", "attention/self/value",
                     "attention/output/dense"):
            specs += [(f"{prefix}/{part}/kernel", (hidden, hidden)),
                      (f"{prefix}/{part}/bias", (hidden,))]
        specs += [
            (f"{prefix}/attention/output/LayerNorm/gamma", (hidden,)),
            (f"{prefix}/attention/output/LayerNorm/beta", (hidden,)),
            (f"{prefix}/intermediate/dense/kernel", (hidden, ffn)),
            (f"{prefix}/intermediate/dense/bias", (ffn,)),
            (f"{prefix}/output/dense/kernel", (ffn, hidden)),
            (f"{prefix}/output/dense/bias", (hidden,)),
            (f"{prefix}/output/LayerNorm/gamma", (hidden,)),
            (f"{prefix}/output/LayerNorm/beta", (hidden,)),
        ]
    specs += [
        ("bert/pooler/dense/kernel", (hidden, hidden)),
        ("bert/pooler/dense/bias", (hidden,)),
        ("cls/predictions/transform/dense/kernel", (hidden, hidden)),
        ("cls/predictions/transform/dense/bias", (hidden,)),
        ("cls/predictions/transform/LayerNorm/gamma", (hidden,)),
        ("cls/predictions/transform/LayerNorm/beta", (hidden,)),
        ("cls/predictions/output_bias", (VOCAB,)),
        ("cls/seq_relationship/output_weights", (2, hidden)),
        ("cls/seq_relationship/output_bias", (2,)),
    ]
    return specs


def parameter_count(specs):
    total = 0
    for _, shape in specs:
        count = 1
        for dim in shape:
            count *= dim
        total += count
    return total
