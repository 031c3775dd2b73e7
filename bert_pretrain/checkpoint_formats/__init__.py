"""Other people's checkpoint formats, one module each: Google's released BERT checkpoints in
(`google_research`), Hugging Face and KerasHub directories out (`hugging_face`, `keras_hub_preset`),
and `bert-pretrain export`, which writes a trained model in any of them (`exporter`)."""
