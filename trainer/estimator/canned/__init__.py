"""The pre-made estimators: ``LinearClassifier`` and ``DNNClassifier`` over numeric feature columns."""
