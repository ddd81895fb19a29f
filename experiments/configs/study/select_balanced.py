r"""Nested selection candidate: every corpus drawn equally often (the smaller
corpora's utterances repeated).

The incumbent (`select`) with one change; see select.py.

  python -m experiments.study --suite=select --workdir=/tmp/select \
      --data_dir=DATA --seeds=1 --only=select,select_balanced
"""

import ml_collections

from experiments.configs.study import select


def get_config() -> ml_collections.ConfigDict:
  c = select.get_config()
  c.name = "select_balanced"
  c.title = "corpora balanced in speech batches"
  c.speech.balance_corpora = True
  return c
