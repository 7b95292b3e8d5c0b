"""The WSGI glue in front of moto's application.

For each AWS request, in order: count it (AssumeRoot credentials' requests also
in flight for their member account until answered), apply injected faults (an
entry fault is armed for moto's batch handler instead), refuse expired
AssumeRoot credentials, answer an S3 request signed for another region than its
bucket's with AWS's redirect (any credentials), then, for AssumeRoot
credentials, refuse out-of-scope calls, route the rest to the member account
(moto's `x-moto-account-id` header) and answer root-user IAM calls; answer
AssumeRoot and the IAM organization-features API; stamp the SQS SenderId; hand
everything else to moto unchanged.
"""

from __future__ import annotations

import time

from . import assume_root, batch_faults, control, features, identity, responses, root_iam, s3_regions, scope
from .awsrequest import AwsRequest
from .organization import forget_members
from .state import STATE

EXPIRED_MESSAGE = "The security token included in the request is expired"
_SENDS = frozenset({"SendMessage", "SendMessageBatch"})


class LocalAwsMiddleware:
    def __init__(self, moto_app) -> None:
        self.moto_app = moto_app

    def __call__(self, environ: dict, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(control.PREFIX):
            return control.handle(environ, start_response)
        if path.startswith("/moto-api"):
            return self._moto_api(path, environ, start_response)
        req = AwsRequest(environ)
        STATE.count(req.key)
        session = STATE.session(req.access_key) if req.access_key else None
        if session is None:
            return self._serve(req, None, environ, start_response)
        STATE.root_in_flight.enter(session.account_id)
        try:
            return self._serve(req, session, environ, start_response)
        finally:
            STATE.root_in_flight.leave(session.account_id)

    def _serve(self, req: AwsRequest, session, environ: dict, start_response):
        try:
            reply = self._intercept(req, session)
            if reply is not None:
                return reply(environ, start_response)
            if req.service == "sqs" and req.operation in _SENDS:
                return self._send_with_sender(req, environ, start_response)
            return self.moto_app(environ, start_response)
        finally:
            batch_faults.disarm()

    def _moto_api(self, path: str, environ: dict, start_response):
        result = self.moto_app(environ, start_response)
        if path.rstrip("/") == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
            STATE.reset()
            forget_members()
        return result

    def _intercept(self, req: AwsRequest, session) -> responses.Reply | None:
        """The extension's own answer to this request, or None to let moto answer."""
        reply = self._fault(req)
        if reply is not None:
            return reply
        if session is not None and session.expired():
            return responses.error(req, "ExpiredToken", EXPIRED_MESSAGE, 400)
        reply = s3_regions.redirect(req)
        if reply is not None:
            return reply
        if session is not None:
            reply = self._root_session(req, session)
            if reply is not None:
                return reply
        if req.service == "sts" and req.operation == "AssumeRoot":
            return assume_root.handle(req)
        if req.service == "iam" and req.operation in features.OPERATIONS:
            return features.handle(req)
        return None

    def _fault(self, req: AwsRequest) -> responses.Reply | None:
        firing = STATE.faults.check(req.service, req.operation)
        if firing is None:
            return None
        if firing.latency_ms:
            time.sleep(firing.latency_ms / 1000)
        if firing.error is None:
            return None
        if firing.entries:
            batch_faults.arm(firing.entries, firing.error)
            return None
        if req.service == "sts" and req.operation == "AssumeRoot":
            assume_root.log_fault(req, firing.error)
        message = f"Injected fault: {firing.error}"
        if firing.error.startswith("ExpiredToken"):
            message = EXPIRED_MESSAGE
        return responses.error(req, firing.error, message, firing.status)

    def _root_session(self, req: AwsRequest, session) -> responses.Reply | None:
        denial = scope.check(session, req)
        if denial is not None:
            return responses.error(req, denial.code, denial.message, 403)
        req.environ["HTTP_X_MOTO_ACCOUNT_ID"] = session.account_id
        return root_iam.handle(req, session)

    def _send_with_sender(self, req: AwsRequest, environ: dict, start_response):
        account = identity.caller_account(environ, req.access_key)
        identity.set_sender(identity.user_id(req.access_key, req.region, account))
        try:
            return self.moto_app(environ, start_response)
        finally:
            identity.set_sender(None)
