"""avdigits: spoken and handwritten digits learned together in JAX/Flax."""

__version__ = "0.1.0"
