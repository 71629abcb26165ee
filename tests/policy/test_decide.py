"""The decision table: every requirement against every caller level."""

from __future__ import annotations

import pytest

from gateway.errors import Forbidden, GatewayError, OtpRequired, TokenMissing
from gateway.policy.decide import Decision, decide

ALLOW = None

# require -> decision for (no credentials, anonymous, authenticated, otp).
TABLE: dict[str, tuple[type[GatewayError] | None, ...]] = {
    "public": (ALLOW, ALLOW, ALLOW, ALLOW),
    "anonymous": (TokenMissing, ALLOW, ALLOW, ALLOW),
    "authenticated": (TokenMissing, TokenMissing, ALLOW, ALLOW),
    "otp": (OtpRequired, OtpRequired, OtpRequired, ALLOW),
    "deny": (Forbidden, Forbidden, Forbidden, Forbidden),
}
LEVELS = (None, "anonymous", "authenticated", "otp")


@pytest.mark.parametrize(
    ("require", "level", "error"),
    [(require, level, error) for require, row in TABLE.items()
     for level, error in zip(LEVELS, row, strict=True)],
)
def test_decision_table(
    require: str, level: str | None, error: type[GatewayError] | None
) -> None:
    decision = decide(require, level)
    assert decision.error is error
    assert decision.allowed is (error is None)


@pytest.mark.parametrize(("require", "level", "why"), [
    ("deny", "otp", "policy denies this route"),
    ("public", None, "the route is public: no credentials are needed"),
    ("anonymous", None, "the route requires 'anonymous' but the request carries no credentials"),
    ("authenticated", "anonymous",
     "the route requires 'authenticated' but the caller is only 'anonymous'"),
    ("authenticated", "otp", "the route requires 'authenticated' and the caller is 'otp'"),
    ("otp", "authenticated", "the route requires 'otp' but the caller is only 'authenticated'"),
])
def test_why_is_one_readable_sentence(require: str, level: str | None, why: str) -> None:
    assert decide(require, level).why == why


def test_refusals_map_to_the_contract_vocabulary() -> None:
    assert [(e.status, e.code) for e in (TokenMissing, OtpRequired, Forbidden)] == [
        (401, "token_missing"), (401, "otp_required"), (403, "forbidden")]


def test_decisions_are_shared_immutable_values() -> None:
    assert decide("otp", "otp") is decide("otp", "otp")
    assert decide("public", None) == Decision(
        True, None, "the route is public: no credentials are needed")


def test_unknown_vocabulary_is_a_bug_not_a_refusal() -> None:
    with pytest.raises(KeyError):
        decide("admin", "otp")
    with pytest.raises(KeyError):
        decide("otp", "root")
