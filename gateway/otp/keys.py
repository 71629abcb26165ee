"""The store keys of the OTP rules, in one place: the service writes them, GDPR finds them.

Users, client IPs and owners (session keys) appear only as keyed hashes: customer numbers and
IPs are guessable, so a plain SHA-256 of them would be reversed by trying them all. The key is
the OTP hash key, which is why every replica must share it (and why ``gateway users`` needs it
to find a user's counters). The layout is described in :mod:`gateway.otp.service`.
"""

from __future__ import annotations

import hashlib
import hmac


class OtpKeys:
    def __init__(self, hash_key: bytes) -> None:
        self._hash_key = hash_key

    def hash(self, kind: str, value: str) -> str:
        """A keyed hash of ``value``; ``kind`` keeps a user and an IP with one spelling apart."""
        message = f"{kind}:{value}".encode()
        return hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()[:32]

    def user(self, user_id: str) -> str:
        return self.hash("user", user_id)

    def challenge(self, owner: str) -> str:
        # The caller already passes a hash; hashing again keeps keys safe if one ever does not.
        return f"otp:ch:{self.hash('owner', owner)}"

    def ip(self, action: str, client_ip: str) -> str:
        return f"otp:ip:{action}:{self.hash('ip', client_ip)}"

    @staticmethod
    def attempts(challenge_id: str) -> str:
        return f"otp:att:{challenge_id}"

    # Per-user counters take ``user``, the keyed hash from :meth:`user`.

    @staticmethod
    def failures(user: str) -> str:
        return f"otp:fail:{user}"

    @staticmethod
    def last_send(user: str) -> str:
        return f"otp:last:{user}"

    @staticmethod
    def sends(user: str) -> str:
        return f"otp:sends:{user}"
