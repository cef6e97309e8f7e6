"""TPU tooling: ahead-of-time compilation of the train step for a libtpu topology."""
