"""Operations on trained models and served predictions.

train.py (train, write the run), retrain.py, promote.py,
explore_labels.py, runs.py (naming run folders), publish.py, score.py (the Lambda's
core on a local S3), ledger.py, backtest.py. May import warehouse, landing,
foundation, models_py, inference and libraries; never board or cli.
"""
