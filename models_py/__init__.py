"""Training and evaluation of the APY-runway classifiers (issue 4).

Pure modules (data, splits, pipelines, evaluate, artefact, report) take arrays or
DataFrames and return results; train.py is the thin CLI stage that wires them.
"""
