"""Packaging for kws: the folders at the top of the repository are mapped into one
``kws`` namespace (``edge/`` -> ``kws.edge`` ...), so nothing generic such as
``trainer`` is ever installed at the top level of site-packages.

The base install is the edge runtime (numpy, scipy, a TFLite runtime, sounddevice,
soundfile, click, pyyaml); TensorFlow only comes with the ``train`` extras.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PACKAGE_DIRS = {
    "kws": "commands",
    "kws.edge": "edge",
    "kws.trainer": "trainer",
    "kws.converters": "converters",
    "kws.synth": "synth",
    "kws.evaluation": "evaluation",
    "kws.serving": "serving",
}


class FreshBuildPy(build_py):
    """build_py that first removes the kws package it built before: pip builds in the clone and
    setuptools only adds to build/lib/kws, so a module deleted from the tree (by a git pull) would
    stay in every later ``pip install .``."""

    def run(self):
        shutil.rmtree(Path(self.build_lib) / "kws", ignore_errors=True)
        super().run()


# ai-edge-litert has wheels for CPython 3.10-3.14 on x86_64/aarch64 (Linux) and arm64 macOS;
# tflite-runtime 2.14 is the fallback for 32-bit Raspberry Pi OS (armv7l, CPython 3.10-3.11 wheels
# only), and it needs numpy<2.
LITERT = ('ai-edge-litert>=1.2; platform_machine in "x86_64 aarch64 arm64 AMD64"')
TFLITE_RUNTIME = 'tflite-runtime==2.14.0; platform_machine == "armv7l"'

setup(
    name="kws",
    version="0.1.0",
    description="Edge keyword spotting: train, quantize and stream small convolutional keyword models",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=list(PACKAGE_DIRS),
    cmdclass={"build_py": FreshBuildPy},
    package_dir=PACKAGE_DIRS,
    package_data={
        "kws.serving": ["static/*"],
    },
    install_requires=[
        'numpy>=1.23; platform_machine != "armv7l"',
        'numpy>=1.23,<2; platform_machine == "armv7l"',
        "scipy>=1.9",
        "click>=8.0",
        "pyyaml>=6.0",
        "sounddevice>=0.4.6",
        # libsndfile: WAV, FLAC, OGG/Vorbis/Opus and MP3 (bundled in the x86_64/aarch64 wheels; armv7l
        # uses Debian's libsndfile1)
        "soundfile>=0.12",
        LITERT,
        TFLITE_RUNTIME,
    ],
    extras_require={
        # The TensorFlow side: training, conversion, the frozen graph. tensorflow-cpu is the
        # same code without CUDA; `make` picks it on machines without an NVIDIA driver.
        "train": ["tensorflow>=2.16", "tensorboard>=2.16", "matplotlib>=3.6", "tqdm>=4.60"],
        "train-cpu": ["tensorflow-cpu>=2.16", "tensorboard>=2.16", "matplotlib>=3.6", "tqdm>=4.60"],
        "plot": ["matplotlib>=3.6"],
        "api": ["deepaas==2.6.0"],
        # the embedding family (model.architecture: embedding): onnx reads the speech_embedding weights
        # (then: pip install --no-deps openwakeword==0.4.0, for its two .onnx files only); onnxruntime
        # only for the tests that compare kws's numpy mel frontend with the ONNX model
        "embedding": ["onnx>=1.14", "onnxruntime>=1.16"],
        "dev": ["pytest>=7", "pytest-timeout>=2.1", "hypothesis>=6.80", "matplotlib>=3.6", "tqdm>=4.60", "playwright>=1.40"],
    },
    entry_points={
        "console_scripts": [
            "kws=kws.cli:main",
            "kws-train=kws.trainer.cli:main",
            "kws-synth=kws.synth.cli:main",
            "kws-convert=kws.converters.cli:main",
            "kws-listen=kws.edge.listen_cli:main",
            "kws-predict=kws.evaluation.predict_cli:main",
            "kws-eval=kws.evaluation.eval_cli:main",
            "kws-mine=kws.evaluation.mine_cli:main",
            "kws-ensemble=kws.evaluation.ensemble_cli:main",
        ],
        "deepaas.v2.model": ["kws=kws.serving.deepaas_api"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: Speech",
    ],
)
