"""S3 regions as AWS has them: ListBuckets' regions and pages, and the redirect
of a request signed for a region other than its bucket's.

moto 5.2.1 stores each bucket's region, and its ListBuckets filters by `prefix`
and `bucket-region` and cuts the list at `max-buckets`; but it never says where
a bucket is, never returns a ContinuationToken (a cut list cannot be continued,
and `continuation-token` is ignored), does not echo `Prefix`, lists buckets in
creation order, and serves every bucket whatever region the request was signed
for. AWS:

* ListBuckets lists the account's buckets by name. A request that carries at
  least one of `max-buckets`, `bucket-region`, `prefix`, `continuation-token` is
  paginated: each bucket has its `BucketRegion`, pages hold `max-buckets`
  buckets (1..10000, default 10000), a page with more after it carries a
  `ContinuationToken` for the next, and `Prefix` is echoed when it was sent.
* A request on a bucket, signed for another region than the bucket's, is
  answered 301 `PermanentRedirect` with the bucket's region in the
  `x-amz-bucket-region` header (SDKs that follow S3 redirects, such as botocore,
  re-sign for that region and retry). CreateBucket and GetBucketLocation are
  not redirected, nor unsigned requests.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from xml.sax.saxutils import escape

from moto.core.common_types import TYPE_RESPONSE
from moto.core.responses import ActionResult
from moto.s3.exceptions import InvalidArgumentError, InvalidContinuationToken
from moto.s3.models import FakeBucket, s3_backends
from moto.s3.responses import S3Response

from .awsrequest import AwsRequest
from .responses import Reply

PAGINATION_PARAMETERS = ("max-buckets", "bucket-region", "prefix", "continuation-token")
MAX_BUCKETS = 10_000  # the largest page, and the page when max-buckets is not given
_NOT_REDIRECTED = frozenset({"ListBuckets", "CreateBucket", "GetBucketLocation"})
REDIRECT_MESSAGE = ("The bucket you are attempting to access must be addressed using the specified endpoint. "
                    "Please send all future requests to this endpoint.")


def bucket_of(name: str) -> FakeBucket | None:
    """The bucket called `name` in whichever account and partition holds it."""
    owner = s3_backends.bucket_accounts.get(name)
    if owner is None:
        return None
    partition, account_id = owner
    account = dict.get(s3_backends, account_id)  # never make backends for a lookup
    backend = None if account is None else dict.get(account, partition)
    return None if backend is None else backend.buckets.get(name)


def redirect(req: AwsRequest) -> Reply | None:
    """AWS's 301 PermanentRedirect when the request is signed for another region than its bucket's."""
    if req.service != "s3" or req.access_key is None or req.operation in _NOT_REDIRECTED:
        return None
    name = req.s3_bucket()
    bucket = None if name is None else bucket_of(name)
    if bucket is None or bucket.region_name == req.region:
        return None
    region = bucket.region_name
    endpoint = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
    body = b""
    if req.method != "HEAD":
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PermanentRedirect</Code>'
                f"<Message>{REDIRECT_MESSAGE}</Message><Endpoint>{endpoint}</Endpoint>"
                f"<Bucket>{escape(bucket.name)}</Bucket><RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId>"
                f"<HostId>localaws</HostId></Error>").encode()
    return Reply(301, body, "application/xml", [("x-amz-bucket-region", region)])


def encode_token(after: str) -> str:
    return base64.urlsafe_b64encode(after.encode()).decode()


def _decode_token(token: str) -> str | None:
    """The name a continuation token continues after (None: from the start)."""
    if token == "":
        return None
    try:
        after = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        after = ""
    if not after or encode_token(after) != token:
        raise InvalidContinuationToken()
    return after


def _max_buckets(text: str | None) -> int:
    if text is None:
        return MAX_BUCKETS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_BUCKETS:
        raise InvalidArgumentError(f"Argument max-buckets must be an integer between 1 and {MAX_BUCKETS}.",
                                   "max-buckets", text)
    return value


def list_buckets(self: S3Response) -> TYPE_RESPONSE:
    """S3Response.all_buckets (ListBuckets) as AWS answers it."""
    self.data["Action"] = "ListAllMyBuckets"
    self._authenticate_and_authorize_s3_action()
    query = {name: self.querystring[name][0] for name in PAGINATION_PARAMETERS if name in self.querystring}
    buckets = sorted(self.backend.buckets.values(), key=lambda b: b.name)
    result: dict = {"Owner": {"ID": "bcaf1ffd86f41161ca5fb16fd081034f", "DisplayName": "webfile"}}
    if not query:
        result["Buckets"] = [{"Name": b.name, "CreationDate": b.creation_date_ISO8601} for b in buckets]
    else:
        page_size = _max_buckets(query.get("max-buckets"))
        after = _decode_token(query.get("continuation-token", ""))
        prefix, region = query.get("prefix"), query.get("bucket-region")
        matching = [b for b in buckets
                    if (after is None or b.name > after) and (not prefix or b.name.startswith(prefix))
                    and (not region or b.region_name == region)]
        page = matching[:page_size]
        result["Buckets"] = [{"Name": b.name, "CreationDate": b.creation_date_ISO8601, "BucketRegion": b.region_name}
                             for b in page]
        if len(matching) > page_size:
            result["ContinuationToken"] = encode_token(page[-1].name)
        if prefix is not None:
            result["Prefix"] = prefix
    self.data["Action"] = "ListBuckets"
    return self.serialized(ActionResult(result))


def install() -> None:
    """Patch moto's ListBuckets (idempotent)."""
    S3Response.all_buckets = list_buckets  # type: ignore[method-assign]
