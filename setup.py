"""avdigits: learning spoken and handwritten digits together (JAX/Flax)."""

import setuptools

# Lower bounds are the versions this code was developed and tested against.
INSTALL_REQUIRES = [
    "jax>=0.12",                       # arrays, jit, vmap, lax.scan
    "flax>=0.12.12",                   # the convnets and the aligner (linen)
    "optax>=0.2.8",                    # optimisers and schedules
    "numpy>=2.0",
    "scipy>=1.13",                     # resample_poly, wavfile, t-intervals
    "absl-py>=2.1",                    # flags, logging, app
    "ml-collections>=1.0",             # config files as code (ConfigDict)
    "orbax-checkpoint>=0.12.8",        # atomic checkpoints, keep-N, resume
    "python-speech-features>=0.6",     # reference log-mel filterbank
    "pillow>=10.0",                    # font rendering for synthetic digits
    "espeakng-loader>=0.2.4",          # eSpeak NG shared library + voices
    "matplotlib>=3.8",                 # report figures
    "tqdm>=4.66",                      # progress bars on long loops
]

EXTRAS_REQUIRE = {
    # TFDS (mnist, spoken_digit). TFDS needs TensorFlow for spoken_digit and
    # for preparing any dataset; its prepare step imports importlib_resources
    # without declaring it.
    "tfds": [
        "tensorflow-datasets>=4.9.6",
        "tensorflow-cpu>=2.16",
        "importlib-resources>=6.0",
    ],
}
# TensorBoard event files of every training stage (avdigits/metrics.py),
# written without TensorFlow.
EXTRAS_REQUIRE["tensorboard"] = ["tensorboardX>=2.6"]
EXTRAS_REQUIRE["test"] = EXTRAS_REQUIRE["tfds"] + EXTRAS_REQUIRE[
    "tensorboard"] + [
    "pytest>=8.0",
    "pytest-xdist>=3.5",                # the suite on 2 processes, by file
    "hypothesis>=6.100",                # property-based reader tests
    "kaldi-native-fbank>=1.20",         # Kaldi's fbank, the features' oracle
    "ruff>=0.6",
]

setuptools.setup(
    name="avdigits",
    version="0.1.0",
    description=("Spoken and handwritten digits learned together: "
                 "a JAX/Flax reproduction of 'Learning Digits via "
                 "Audio-Visual Representations'."),
    packages=setuptools.find_packages(include=["avdigits", "avdigits.*",
                                               "experiments",
                                               "experiments.*"]),
    python_requires=">=3.12",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
