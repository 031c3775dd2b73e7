"""Test-wide settings.

LAMB_TF_BLOCK_TENSORFLOW=1 makes `import tensorflow` fail, to prove that the Keras 3 flavour
runs where TensorFlow is not installed (test_jax_backend.py sets it for a JAX subprocess).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("LAMB_TF_BLOCK_TENSORFLOW") == "1":
    sys.modules["tensorflow"] = None  # `import tensorflow` now raises ImportError
