"""Authorization: route policies, first match wins, default deny."""

from gateway.policy.decide import Decision, decide
from gateway.policy.loader import load_policies
from gateway.policy.model import PolicySet, Rule

__all__ = ["Decision", "PolicySet", "Rule", "decide", "load_policies"]
