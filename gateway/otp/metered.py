"""The OTP service with Prometheus counters: sends by result, verifies by outcome, lockouts.

A subclass rather than counters inside :class:`OtpService`: the service states the OTP rules,
this module only watches them. Outcomes come from the service's audit events (what happened)
and from the exception a call ends with (what the caller was told).
"""

from __future__ import annotations

from typing import Any

from gateway.errors import BadRequest, GatewayError, OtpLocked, RateLimited, UnknownUser
from gateway.metrics import Metrics
from gateway.otp.service import OtpInvalid, OtpService, SendResult


class MeteredOtpService(OtpService):
    def __init__(self, *args: Any, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._metrics = metrics

    def _audit(self, event: str, **fields: Any) -> None:
        metrics = self._metrics
        if event == "otp_sent":
            metrics.otp_sends.labels("sent").inc()
        elif event == "otp_not_sent":
            # Unknown user or no contact: the caller got the same 202 as for a real send.
            metrics.otp_sends.labels("not_sent").inc()
        elif event == "otp_locked":
            scope = fields.get("scope")
            metrics.otp_lockouts.labels(scope if scope in ("user", "challenge") else "user").inc()
        super()._audit(event, **fields)

    async def send(
        self, *, owner: str, user_id: str, client_ip: str, language: str | None
    ) -> SendResult:
        try:
            return await super().send(owner=owner, user_id=user_id, client_ip=client_ip,
                                      language=language)
        except GatewayError as error:
            self._metrics.otp_sends.labels(_send_result(error)).inc()
            raise

    async def verify(self, *, owner: str, code: object, client_ip: str) -> str:
        try:
            user_id = await super().verify(owner=owner, code=code, client_ip=client_ip)
        except GatewayError as error:
            self._metrics.otp_verifies.labels(_verify_outcome(error)).inc()
            raise
        self._metrics.otp_verifies.labels("ok").inc()
        return user_id


def _send_result(error: GatewayError) -> str:
    if isinstance(error, OtpLocked):
        return "locked"
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, UnknownUser):
        return "unknown_user"
    return "error"


def _verify_outcome(error: GatewayError) -> str:
    if isinstance(error, OtpLocked):
        return "locked"
    if isinstance(error, OtpInvalid):
        return "invalid"
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, BadRequest):
        return "malformed"
    return "error"
