"""Create the MLflow artifact bucket on the S3-compatible store (MinIO) when it is missing; run before the server.

    python ensure_bucket.py BUCKET

Reads the endpoint from MLFLOW_S3_ENDPOINT_URL and the credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
as the MLflow server does. Retries while the store starts; exits non-zero with the store's error otherwise.
"""

from __future__ import annotations

import os
import sys
import time


def ensure_bucket(bucket: str, attempts: int = 30, delay_s: float = 2.0) -> None:
    """Create `bucket` unless it exists, retrying connection errors `attempts` times."""
    import boto3
    from botocore.exceptions import ClientError, EndpointConnectionError

    client = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])
    for attempt in range(1, attempts + 1):
        try:
            client.head_bucket(Bucket=bucket)
            return
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise
            client.create_bucket(Bucket=bucket)
            print(f"ensure_bucket: created s3://{bucket}", flush=True)
            return
        except EndpointConnectionError:
            if attempt == attempts:
                raise
            time.sleep(delay_s)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python ensure_bucket.py BUCKET")
    ensure_bucket(sys.argv[1])
