"""How large the batch can be: measured during training (`noise_scale`, docs/noise_scale.md)."""
