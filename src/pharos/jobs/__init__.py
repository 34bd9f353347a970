"""The jobs engine (see `engine`)."""
