"""A float64 NumPy BERT forward pass written from the paper (Devlin et al. 2019, section 3) and the
Transformer it builds on (Vaswani et al. 2017, section 3.2), with google-research/bert's choices
where the papers leave them open: LayerNorm epsilon 1e-12, GELU's tanh form, -10000 on masked
attention logits, the MLM output tied to the word embeddings. Weights are keyed by
google-research's variable names, so it reads the same dict the test writes as a checkpoint.

Deliberately independent of the code under test: plain loops over layers and heads.
"""

import numpy as np


def layer_norm(x, gamma, beta, epsilon=1e-12):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(variance + epsilon) + beta


def gelu(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def encoder(w, ids, mask, segments, num_layers, num_heads):
    """Returns (sequence output [B, T, H], pooled output [B, H])."""
    w = {k: np.asarray(v, np.float64) for k, v in w.items()}
    length = ids.shape[1]
    x = (w["bert/embeddings/word_embeddings"][ids] + w["bert/embeddings/position_embeddings"][:length]
         + w["bert/embeddings/token_type_embeddings"][segments])
    x = layer_norm(x, w["bert/embeddings/LayerNorm/gamma"], w["bert/embeddings/LayerNorm/beta"])
    hidden = x.shape[-1]
    size = hidden // num_heads
    blocked = (1.0 - mask[:, None, :].astype(np.float64)) * -10000.0   # [B, 1, T]: keys that are padding
    for index in range(num_layers):
        p = f"bert/encoder/layer_{index}/"
        q = x @ w[p + "attention/self/query/kernel"] + w[p + "attention/self/query/bias"]
        k = x @ w[p + "attention/self/key/kernel"] + w[p + "attention/self/key/bias"]
        v = x @ w[p + "attention/self/value/kernel"] + w[p + "attention/self/value/bias"]
        heads = []
        for h in range(num_heads):
            part = slice(h * size, (h + 1) * size)
            scores = q[..., part] @ k[..., part].transpose(0, 2, 1) / np.sqrt(size) + blocked
            heads.append(softmax(scores) @ v[..., part])
        attention = np.concatenate(heads, -1) @ w[p + "attention/output/dense/kernel"] \
            + w[p + "attention/output/dense/bias"]
        x = layer_norm(x + attention, w[p + "attention/output/LayerNorm/gamma"],
                       w[p + "attention/output/LayerNorm/beta"])
        inner = gelu(x @ w[p + "intermediate/dense/kernel"] + w[p + "intermediate/dense/bias"])
        x = layer_norm(x + inner @ w[p + "output/dense/kernel"] + w[p + "output/dense/bias"],
                       w[p + "output/LayerNorm/gamma"], w[p + "output/LayerNorm/beta"])
    pooled = np.tanh(x[:, 0] @ w["bert/pooler/dense/kernel"] + w["bert/pooler/dense/bias"])
    return x, pooled


def exact_gelu(x):
    from math import erf   # pylint: disable=import-outside-toplevel
    return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))


def pretraining_logits(w, ids, mask, segments, positions, num_layers, num_heads, head_gelu=gelu,
                       head_epsilon=1e-12):
    """(MLM logits [B, P, V] at `positions`, NSP logits [B, 2]). `head_gelu`, `head_epsilon`: the
    MLM transform's activation and LayerNorm epsilon (KerasHub's BertMaskedLM: exact_gelu, 1e-5)."""
    sequence, pooled = encoder(w, ids, mask, segments, num_layers, num_heads)
    w = {k: np.asarray(v, np.float64) for k, v in w.items()}
    picked = np.stack([sequence[b, positions[b]] for b in range(len(ids))])
    t = head_gelu(picked @ w["cls/predictions/transform/dense/kernel"] + w["cls/predictions/transform/dense/bias"])
    t = layer_norm(t, w["cls/predictions/transform/LayerNorm/gamma"], w["cls/predictions/transform/LayerNorm/beta"],
                   head_epsilon)
    mlm = t @ w["bert/embeddings/word_embeddings"].T + w["cls/predictions/output_bias"]
    nsp = pooled @ w["cls/seq_relationship/output_weights"].T + w["cls/seq_relationship/output_bias"]
    return mlm, nsp
