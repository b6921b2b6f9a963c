"""A family file as training sees it: the training set (training_set), fragments by coverage (fragments)
and redundancy weights (weights)."""
