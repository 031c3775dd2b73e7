"""lamb-tf: the LAMB optimizer for TensorFlow/Keras and a BERT pretraining pipeline."""

from setuptools import find_packages, setup

setup(
    name="lamb-tf",
    version="0.1.0",
    description="LAMB (You et al., 2020) for Keras 3 and tf_keras, and BERT pretraining on TPU/GPU.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["lamb_tf", "lamb_tf.*", "bert_pretrain", "bert_pretrain.*"]),
    package_data={"bert_pretrain": ["plans/*.toml", "plans/finetune/*.toml"]},
    install_requires=[
        "tensorflow>=2.20,<2.21",
        "tf-keras>=2.20,<2.21",
        "tensorflow-text>=2.20,<2.21",
        "tf-models-official==2.20.0",
        "keras>=3.10,<4",
        "keras-hub>=0.29,<0.30",   # the Keras 3 path: KerasHub's BERT trained with LAMB
        "safetensors>=0.8,<0.9",   # export --format=hf (and KerasHub's reader of it)
        "absl-py",
        "numpy",
        "matplotlib",
    ],
    extras_require={
        # The Cloud TPU API client: finds a named TPU's hosts and health (multi-host slices).
        # 0.8+ pin google-api-python-client==1.8.0, which would pull google-auth back to 1.x.
        "tpu": ["cloud-tpu-client==0.7"],
        "test": ["pytest", "jax[cpu]", "cloud-tpu-client==0.7"],
    },
    entry_points={
        "console_scripts": [
            "bert-pretrain-data=bert_pretrain.data.cli:main",
            "bert-pretrain=bert_pretrain.cli:main",
        ],
    },
)
