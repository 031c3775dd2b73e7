"""Fine-tuning a pretrained encoder and scoring it: `bert-pretrain finetune`.

`tasks` turns each task's files into model inputs (through Model Garden's `squad_lib` and
`classifier_data_lib`), `docstrings` is the built-in task made from Python's own source,
`encoder` says where the weights come from, `loop` trains and predicts, `metrics` scores.
"""
