"""The forecasting ML pipeline: pure functions over numpy/pandas (torch only for training).

Importing this package, `inference`, `features`, `scaling`, `windows` or `evaluation` never
imports torch; `model`, `training`, `export` and `pipeline` do.
"""
