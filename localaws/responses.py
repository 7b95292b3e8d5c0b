"""Success and error bodies in each service's own wire format.

SDKs decide retry versus failure from the error code and HTTP status they
parse, so an error the extension makes must look exactly like the service's:
query-protocol XML for STS, IAM and SQS-query; AWS JSON 1.0 with the
`x-amzn-query-error` header for SQS-JSON; JSON 1.1 for Organizations; and
S3's bare `<Error>` document.
"""

from __future__ import annotations

import json
import uuid
from xml.sax.saxutils import escape

from .awsrequest import JSON, REST_XML, AwsRequest

NAMESPACES = {
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sqs": "http://queue.amazonaws.com/doc/2012-11-05/",
}

# Default HTTP status of the error codes the extension produces.
STATUS = {
    "AccessDenied": 403, "AccessDeniedException": 403, "ExpiredToken": 400,
    "ExpiredTokenException": 400, "Throttling": 400, "ThrottlingException": 400,
    "TooManyRequestsException": 400, "RequestLimitExceeded": 400, "SlowDown": 503,
    "ServiceUnavailable": 503, "InternalError": 500, "InternalFailure": 500,
    "NoSuchBucket": 404, "NoSuchEntity": 404, "EntityAlreadyExists": 409,
    "ValidationError": 400, "NoSuchBucketPolicy": 404,
}

_REASONS = {200: "OK", 301: "Moved Permanently", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            409: "Conflict", 500: "Internal Server Error", 503: "Service Unavailable"}

# How a generic error code is spelled by services that spell it differently.
_S3_CODES = {"Throttling": "SlowDown", "ThrottlingException": "SlowDown"}
_JSON11_CODES = {"AccessDenied": "AccessDeniedException", "Throttling": "TooManyRequestsException"}


class Reply:
    """A complete WSGI response the extension answers with instead of moto."""

    def __init__(self, status: int, body: bytes, content_type: str, headers: list | None = None):
        self.status, self.body, self.content_type = status, body, content_type
        self.headers = headers or []

    def __call__(self, environ: dict, start_response) -> list[bytes]:
        reason = _REASONS.get(self.status, "Error")
        headers = [("Content-Type", self.content_type), ("Content-Length", str(len(self.body))),
                   ("x-amzn-RequestId", str(uuid.uuid4())), *self.headers]
        start_response(f"{self.status} {reason}", headers)
        return [self.body]


def xml_value(value: object) -> str:
    """Render a value (str, int, bool, list of str, or dict) as query-protocol XML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "".join(f"<{k}>{xml_value(v)}</{k}>" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return "".join(f"<member>{xml_value(v)}</member>" for v in value)
    return escape(str(value))


def query_result(service: str, action: str, result: dict | None) -> Reply:
    """A query-protocol success: `<ActionResponse><ActionResult>...` (no Result if None)."""
    inner = "" if result is None else f"<{action}Result>{xml_value(result)}</{action}Result>"
    body = (f'<{action}Response xmlns="{NAMESPACES[service]}">{inner}'
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            f"</{action}Response>")
    return Reply(200, body.encode(), "text/xml")


def error(req: AwsRequest, code: str, message: str, status: int | None = None) -> Reply:
    """An error in the format of the service (and protocol) the request used."""
    if req.service == "s3" or req.protocol == REST_XML:
        code = _S3_CODES.get(code, code)
        return _s3_error(code, message, status or STATUS.get(code, 400))
    status = status or STATUS.get(code, 400)
    if req.protocol == JSON:
        return _json_error(req.service, code, message, status)
    return _query_error(req.service, code, message, status)


def _s3_error(code: str, message: str, status: int) -> Reply:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message><RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId>"
            f"<HostId>localaws</HostId></Error>")
    return Reply(status, body.encode(), "application/xml")


def _query_error(service: str, code: str, message: str, status: int) -> Reply:
    fault = "Receiver" if status >= 500 else "Sender"
    namespace = NAMESPACES.get(service, NAMESPACES["iam"])
    body = (f'<ErrorResponse xmlns="{namespace}"><Error><Type>{fault}</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
    return Reply(status, body.encode(), "text/xml")


def _json_error(service: str, code: str, message: str, status: int) -> Reply:
    fault = "Receiver" if status >= 500 else "Sender"
    if service == "sqs":
        # SQS is awsQueryCompatible: SDKs take the query-style code from the header.
        body = {"__type": f"com.amazonaws.sqs#{code}", "message": message}
        return Reply(status, json.dumps(body).encode(), "application/x-amz-json-1.0",
                     [("x-amzn-query-error", f"{code};{fault}")])
    code = _JSON11_CODES.get(code, code)
    body = {"__type": code, "Message": message}
    return Reply(status, json.dumps(body).encode(), "application/x-amz-json-1.1",
                 [("X-Amzn-Errortype", code)])
