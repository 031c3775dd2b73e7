"""BERT pretraining with LAMB: corpus -> TFRecords -> Model Garden BERT -> two-phase training."""
