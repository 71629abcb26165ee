"""Authentication: who is calling (JWT, session cookie, anonymous visitor)."""
