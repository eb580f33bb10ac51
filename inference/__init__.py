"""The Lambda, lowest floor: it ships alone (serverless.yml packages inference/).

Imports only the standard library, numpy, orjson, boto3/botocore and itself; never
scikit-learn, scipy, joblib or pickle (the model is plain arrays), never models_py or
apy_runway. contracts.py (standard library only) holds the facts every floor shares.
Inputs: settings, features (the binary file), validation; model/ (artefact, portable);
outputs: scoring, reasons, publication; health, monitoring, alerts, events; service.py
is the S3 I/O, hourly.py and http_api.py the two functions' work, aws.py and logs.py
their clients and log, and handler.py the thin entry point.
"""
