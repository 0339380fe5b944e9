"""Training the estimator: ``step`` (state, losses, the jitted train/predict steps), ``loop``
(the resumable, sharded training loop), ``evaluation`` (in-training prediction and validation
metrics), ``config`` (config validation and device checks)."""
