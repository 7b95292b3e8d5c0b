"""What an incoming AWS request is: service, operation, access key, parameters.

Every request is counted and may be faulted or scoped, so this runs on the hot
path: it reads only headers, plus the body of query-protocol calls (small forms
that carry the Action). JSON bodies and parameters are parsed lazily, and S3
bodies are never read.
"""

from __future__ import annotations

import io
import json
from urllib.parse import parse_qs

QUERY, JSON, REST_XML = "query", "json", "rest-xml"


class AwsRequest:
    def __init__(self, environ: dict) -> None:
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET")
        self.path = environ.get("PATH_INFO", "/")
        self.access_key, self.region, self.service = _credential_scope(environ)
        self._params: dict[str, str] | None = None
        self._json: dict | None = None
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            self.protocol = JSON
            self.operation = target.rsplit(".", 1)[-1]
        elif self.service == "s3":
            self.protocol = REST_XML
            self.operation = s3_operation(self.method, self.path, environ.get("QUERY_STRING", ""), environ)
        else:
            self.protocol = QUERY
            self.operation = self.params().get("Action", "Unknown")

    @property
    def key(self) -> str:
        """The call-count key, `<service>.<Operation>`."""
        return f"{self.service}.{self.operation}"

    def body(self) -> bytes:
        """The request body, read once and put back for moto."""
        cached = self.environ.get("localaws.body")
        if cached is not None:
            return cached
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        data = self.environ["wsgi.input"].read(length) if length > 0 else b""
        self.environ["wsgi.input"] = io.BytesIO(data)
        self.environ["localaws.body"] = data
        return data

    def params(self) -> dict[str, str]:
        """Query-protocol parameters (URL query and form body), first value of each."""
        if self._params is None:
            merged = parse_qs(self.environ.get("QUERY_STRING", ""), keep_blank_values=True)
            content_type = self.environ.get("CONTENT_TYPE", "")
            if self.method == "POST" and "json" not in content_type:
                body = self.body().decode("utf-8", "replace")
                merged.update(parse_qs(body, keep_blank_values=True))
            self._params = {k: v[0] for k, v in merged.items()}
        return self._params

    def json(self) -> dict:
        """The JSON-protocol body, or {} if absent or invalid."""
        if self._json is None:
            try:
                value = json.loads(self.body() or b"{}")
            except ValueError:
                value = {}
            self._json = value if isinstance(value, dict) else {}
        return self._json

    def param(self, name: str) -> str | None:
        """One top-level parameter, whichever protocol carried it."""
        if self.protocol == JSON:
            value = self.json().get(name)
            return value if value is None or isinstance(value, str) else str(value)
        return self.params().get(name)

    def s3_bucket(self) -> str | None:
        """The bucket of a path-style S3 request."""
        parts = self.path.lstrip("/").split("/", 1)
        return parts[0] or None


def _credential_scope(environ: dict) -> tuple[str | None, str, str]:
    """(access key, region, signing service) from a SigV4 Authorization header."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    marker = auth.find("Credential=")
    if marker >= 0:
        scope = auth[marker + 11:].split(",", 1)[0].strip()
        parts = scope.split("/")
        if len(parts) == 5:
            return parts[0], parts[2], parts[3].lower()
    query = environ.get("QUERY_STRING", "")
    if "X-Amz-Credential=" in query:  # presigned URL
        scope = parse_qs(query).get("X-Amz-Credential", [""])[0].split("/")
        if len(scope) == 5:
            return scope[0], scope[2], scope[3].lower()
    return None, "us-east-1", "unsigned"


_S3_BUCKET_SUBRESOURCES = {
    "policy": "BucketPolicy", "tagging": "BucketTagging", "versioning": "BucketVersioning",
    "acl": "BucketAcl", "cors": "BucketCors", "lifecycle": "BucketLifecycleConfiguration",
    "encryption": "BucketEncryption", "policyStatus": "BucketPolicyStatus",
    "publicAccessBlock": "PublicAccessBlock", "ownershipControls": "BucketOwnershipControls",
    "notification": "BucketNotificationConfiguration", "website": "BucketWebsite",
    "logging": "BucketLogging", "replication": "BucketReplication",
}
_VERB = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}


def s3_operation(method: str, path: str, query: str, environ: dict) -> str:
    """Name the S3 REST operation of a path-style request (`Other` when unmapped)."""
    keys = {part.split("=", 1)[0] for part in query.split("&") if part}
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return "ListBuckets" if method == "GET" else "Other"
    if key:
        return _s3_object_operation(method, keys, environ)
    for name, suffix in _S3_BUCKET_SUBRESOURCES.items():
        if name in keys:
            verb = _VERB.get(method)
            return f"{verb}{suffix}" if verb else "Other"
    if "location" in keys:
        return "GetBucketLocation"
    if method == "POST" and "delete" in keys:
        return "DeleteObjects"
    if "uploads" in keys and method == "GET":
        return "ListMultipartUploads"
    if "versions" in keys:
        return "ListObjectVersions"
    return {
        "PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket",
        "GET": "ListObjectsV2" if "list-type" in keys else "ListObjects",
    }.get(method, "Other")


def _s3_object_operation(method: str, keys: set[str], environ: dict) -> str:
    if "tagging" in keys:
        return {"GET": "GetObjectTagging", "PUT": "PutObjectTagging", "DELETE": "DeleteObjectTagging"}.get(method, "Other")
    if "uploads" in keys:
        return "CreateMultipartUpload"
    if "uploadId" in keys:
        return {"PUT": "UploadPart", "POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload",
                "GET": "ListParts"}.get(method, "Other")
    if method == "PUT":
        return "CopyObject" if environ.get("HTTP_X_AMZ_COPY_SOURCE") else "PutObject"
    return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, "Other")
