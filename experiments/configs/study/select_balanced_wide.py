r"""Nested selection candidate: the two best single changes together:
corpora balanced in speech batches and the larger speech encoder (128
maps, 1,024 units).

The incumbent (`select`) with two changes; see select.py.

  python -m experiments.study --suite=select --workdir=/tmp/select \
      --data_dir=DATA --seeds=1 --only=select,select_balanced_wide
"""

import ml_collections

from experiments.configs.study import select_wide


def get_config() -> ml_collections.ConfigDict:
  c = select_wide.get_config()
  c.name = "select_balanced_wide"
  c.title = "corpora balanced and larger speech encoder"
  c.speech.balance_corpora = True
  return c
