"""Small synthetic corpora and a matching hand-made vocab for the data tests."""

import numpy as np

from bert_pretrain.data.vocab import RESERVED_TOKENS

WORDS = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "hill", "big", "small", "and", "then",
         "it", "was", "red", "blue", "over", "under", "tree", "house", "play", "jump", "walk"]
PIECES = ["##s", "##ing", "##ed"]   # "cats", "jumping" ... become two pieces


def write_vocab(path, extra=()):
    tokens = list(RESERVED_TOKENS) + WORDS + PIECES + [".", ","] + list(extra)
    path.write_text("".join(t + "\n" for t in tokens))
    return str(path)


def corpus_text(num_docs, seed=0, min_sentences=2, max_sentences=12):
    """BERT-format text: a blank line between documents, one sentence per line."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(num_docs):
        sentences = []
        for _ in range(rng.integers(min_sentences, max_sentences + 1)):
            words = [WORDS[i] + (PIECES[rng.integers(3)][2:] if rng.random() < 0.2 else "")
                     for i in rng.integers(0, len(WORDS), rng.integers(3, 15))]
            sentences.append(" ".join(words).capitalize() + ".")
        docs.append("\n".join(sentences))
    return "\n\n".join(docs) + "\n"
