"""AWS clients for the Lambda, made from a botocore session (what
boto3.client does underneath, with the same credentials and region):
importing boto3 itself also imports s3transfer, 120 ms of a cold start the
Lambda never uses. The handler caches what this module makes."""

from __future__ import annotations

from typing import Any

import botocore.session
from botocore.config import Config


def new_session() -> Any:
    return botocore.session.get_session()


def new_client(session: Any, service_name: str, endpoint_url: str | None) -> Any:
    return session.create_client(
        service_name,
        endpoint_url=endpoint_url,
        config=Config(
            retries={"max_attempts": 3, "mode": "standard"},
            # bodies are not hashed for the signature (botocore's own choice over
            # https, made explicit for a local http endpoint), and no CRC32 is
            # computed or checked unless an operation requires one: TLS guards the
            # transfer, the features file carries its own sha256 (features.decode),
            # and 14 MB each way costs ~10 ms of CPU per checksum
            s3={"payload_signing_enabled": False},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
