"""Many experiments over the same pieces (`pipeline`), their tables and
figures (`report`) and the config checks (`validation`)."""
