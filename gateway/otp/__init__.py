"""Step-up with one-time codes: directory look-up, senders, the OTP rules."""
