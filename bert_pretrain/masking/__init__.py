"""Masked-LM masks chosen in the training input pipeline instead of when the data is made
(`dynamic`); docs/data.md, "Dynamic masking"."""
