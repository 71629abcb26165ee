"""Where shared state lives: sessions, OTP challenges, counters, links (memory or Redis)."""
