"""The Keras 3 classes on the JAX backend, with TensorFlow made unimportable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def run_without_tensorflow(args, **env):
    pytest.importorskip("jax")
    environment = dict(os.environ, KERAS_BACKEND="jax", LAMB_TF_BLOCK_TENSORFLOW="1",
                       JAX_PLATFORMS="cpu", **env)
    return subprocess.run([sys.executable, *args], cwd=TESTS.parent, env=environment,
                          capture_output=True, text=True, timeout=600)


def test_keras3_flavour_matches_reference_on_jax():
    result = run_without_tensorflow(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:warnings",
         str(TESTS / "test_reference.py"), str(TESTS / "test_norms_and_stacking.py"),
         str(TESTS / "test_keras3_contract.py")])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_lamb_tf_imports_without_tensorflow():
    code = ("import sys; sys.modules['tensorflow'] = None\n"
            "import keras, lamb_tf\n"
            "assert keras.backend.backend() == 'jax'\n"
            "assert lamb_tf.flavour() == 'keras3'\n"
            "from lamb_tf import LAMB, LARS\n"
            "import lamb_tf.keras3\n"
            "assert LAMB is lamb_tf.keras3.LAMB and LARS is lamb_tf.keras3.LARS\n"
            "assert 'tensorflow' not in {m.split('.')[0] for m in sys.modules\n"
            "                            if sys.modules[m] is not None}\n"
            "print('ok')\n")
    result = run_without_tensorflow(["-c", code])
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-4000:]
