"""Inference Lambda: handler.py (thin, S3 + events) over predict.py (pure scoring core).

Ships alone (serverless.yml packages only inference/); its libraries come from the
layer built by createlayer.sh from inference/requirements.txt. No pandas here.
"""
