"""The entry points (flags only) and their configs."""

import os

# The user's own TF_CPP_MIN_LOG_LEVEL (None if unset), read before any entry
# point imports JAX, which sets it to "1" when unset; cli.run keeps a user's
# value and otherwise sets its own.
USER_TF_CPP_MIN_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
