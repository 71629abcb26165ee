"""Human answers for ``gateway policies check`` and ``gateway policies explain``.

Security teams read these, so they say where a rule lives (``FILE rule #N``, the same location
as the loader's messages), what the gateway would answer, and which later rules never get a
say because the first match wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from gateway.errors import PolicyLoadError
from gateway.identity.model import ANONYMOUS, AUTHENTICATED, OTP
from gateway.policy.decide import Decision, decide
from gateway.policy.loader import load_policies
from gateway.policy.matcher import rule_matches
from gateway.policy.model import METHODS, SHADOW, PolicySet, Rule

# What ``--level`` accepts; "none" stands for a request without any credentials.
EXPLAIN_LEVELS: Final[dict[str, str | None]] = {
    "none": None,
    ANONYMOUS: ANONYMOUS,
    AUTHENTICATED: AUTHENTICATED,
    OTP: OTP,
}
explain_level_choices: Final = tuple(EXPLAIN_LEVELS)

SHADOW_NOTE: Final = "logged only (mode 'shadow'): the request passes to the backend"
ANONYMOUS_NOTE: Final = (
    "the caller has no credentials, so the gateway first creates an anonymous session "
    "(a new session cookie) and decides on that"
)


def parse_level(choice: str) -> str | None:
    """The level for a ``--level`` choice; raises ValueError for anything else."""
    try:
        return EXPLAIN_LEVELS[choice]
    except KeyError:
        raise ValueError(
            f"level must be one of {', '.join(explain_level_choices)}, not {choice!r}"
        ) from None


def check(directory: str | Path) -> tuple[int, str]:
    """Exit code and text for ``gateway policies check``: a summary, or every error line."""
    try:
        policies = load_policies(directory)
    except PolicyLoadError as exc:
        return 1, "\n".join(exc.errors)
    rules, files = len(policies.rules), len(policies.files)
    return 0, (
        f"OK: {rules} rule{'' if rules == 1 else 's'} in {files} file{'' if files == 1 else 's'}"
        f", default {policies.default!r}"
    )


def verdict(decision: Decision) -> str:
    """``allow`` or ``refuse STATUS CODE``, the words the CLI and logs use."""
    if decision.error is None:
        return "allow"
    return f"refuse {decision.error.status} {decision.error.code}"


def _methods(rule: Rule) -> str:
    if rule.methods is None:
        return "any"
    return ", ".join(m for m in METHODS if m in rule.methods)


def _websocket(websocket: bool | None) -> str:
    if websocket is None:
        return "any (plain HTTP and WebSocket handshakes)"
    return "only WebSocket handshakes" if websocket else "only plain HTTP"


def explain(
    policies: PolicySet,
    method: str,
    path: str,
    level: str | None,
    websocket: bool = False,
) -> str:
    """What the gateway does with one request, as text (``path`` must be canonical)."""
    method = method.upper()
    kind = "WebSocket handshake" if websocket else "plain HTTP"
    lines = [f"request:  {method} {path} ({kind}), credentials: {level or 'none'}"]
    rule = policies.match(method, path, websocket)
    if rule is None:
        require = policies.default
        origin = f"set in {policies.default_file}" if policies.default_file else "built in"
        lines.append(f"rule:     no rule matched -> default {require!r} ({origin})")
    else:
        require = rule.require
        lines += [
            f"rule:     {rule.name!r} ({rule.where})",
            f"  pattern:      {rule.pattern}",
            f"  methods:      {_methods(rule)}",
            f"  websocket:    {_websocket(rule.websocket)}",
            f"  require:      {rule.require}",
            f"  mode:         {rule.mode}",
        ]
        if rule.body_user_id:
            lines.append(f"  body_user_id: {', '.join(rule.body_user_id)}")
    # CONTRACT §2: an 'anonymous' route creates a session when none comes with the request, and
    # the pipeline decides after that, so the explanation does the same.
    created = require == ANONYMOUS and level is None
    decision = decide(require, ANONYMOUS if created else level)
    lines.append(f"decision: {verdict(decision)}")
    if rule is not None and rule.mode == SHADOW:
        lines.append(f"effect:   {SHADOW_NOTE}")
    why = decision.why
    if rule is None:
        why = f"no rule matched, so the default {require!r} applies ({why})"
    lines.append(f"why:      {why}")
    if created:
        lines.append(f"note:     {ANONYMOUS_NOTE}")
    if rule is not None:
        later = [
            other for other in policies.rules
            if other.index > rule.index and rule_matches(other, method, path, websocket)
        ]
        if later:
            lines.append("also matching, but never reached because the first match wins:")
            lines += [f"  - {o.name!r} ({o.where}): require {o.require}" for o in later]
    return "\n".join(lines)
