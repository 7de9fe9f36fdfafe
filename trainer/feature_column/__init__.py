"""``tf.feature_column``: how the pre-made estimators turn a dict of feature tensors into one dense input.

emberflow supports numeric columns (``numeric_column``); categorical, bucketized, embedding and
crossed columns are not supported.

Example:
    >>> columns = [tf.feature_column.numeric_column("pixels", shape=(64,))]
    >>> classifier = tf.estimator.DNNClassifier(hidden_units=[32], feature_columns=columns, n_classes=10)
"""

from trainer.feature_column.numeric import NumericColumn, dense_input, numeric_column

__all__ = ["NumericColumn", "dense_input", "numeric_column"]
