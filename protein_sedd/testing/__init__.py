"""Test fixtures users may build too: a tiny random-init ESMFold (tiny_esmfold) to run fold-eval without
the real weights."""
