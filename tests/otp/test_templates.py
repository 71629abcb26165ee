"""Message texts: every language, both channels, the exact words a user reads."""

from __future__ import annotations

import pytest

from gateway.otp.model import LANGUAGES, OutgoingCode
from gateway.otp.templates import expires_minutes, language_for, render, render_code

CODE = "123456"

# The GSM 03.38 default alphabet (plus the space): an SMS using only these characters fits 160
# characters in one segment; any other character switches it to UCS-2 and 70 characters.
GSM_7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

SMS = {
    "en": "Your Chat code: 123456. Valid for 5 minutes. Never share it.",
    "de": "Ihr Chat-Code: 123456. Gültig für 5 Minuten. Geben Sie ihn niemals weiter.",
    "es": "Tu código de Chat: 123456. Caduca en 5 minutos. No lo compartas.",
    "fr": "Votre code Chat : 123456. Valable 5 minutes. Ne le partagez jamais.",
}

SUBJECTS = {
    "en": "Your Chat verification code",
    "de": "Ihr Bestätigungscode für Chat",
    "es": "Tu código de verificación de Chat",
    "fr": "Votre code de vérification Chat",
}

EMAIL_LINES = {
    "en": ("It is valid for 5 minutes.", "If you did not ask for it, ignore this message."),
    "de": (
        "Er ist 5 Minuten gültig.",
        "Falls Sie ihn nicht angefordert haben, ignorieren Sie diese Nachricht.",
    ),
    "es": ("Es válido durante 5 minutos.", "Si no lo has solicitado, ignora este mensaje."),
    "fr": ("Il est valable 5 minutes.", "Si vous ne l'avez pas demandé, ignorez ce message."),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_sms_text(language: str) -> None:
    subject, text = render(language, "sms", CODE, 5)
    assert subject is None
    assert text == SMS[language]
    assert len(text) < 160


@pytest.mark.parametrize("language", ["en", "de", "fr"])
def test_sms_fits_one_gsm_segment(language: str) -> None:
    _, text = render(language, "sms", CODE, 10, product="Acme Support")
    assert set(text) <= GSM_7 and len(text) <= 160


def test_spanish_sms_fits_one_ucs2_segment() -> None:
    # "ó" is not in the GSM alphabet, so the message is sent as UCS-2 (70 characters).
    _, text = render("es", "sms", CODE, 10)
    assert len(text) <= 70


@pytest.mark.parametrize("language", LANGUAGES)
def test_email_subject_and_body(language: str) -> None:
    subject, text = render(language, "email", CODE, 5)
    assert subject == SUBJECTS[language]
    assert f"\n\n    {CODE}\n\n" in text
    validity, ignore = EMAIL_LINES[language]
    assert validity in text and ignore in text
    assert text.endswith(ignore + "\n")


def test_the_code_is_never_in_a_subject() -> None:
    for language in LANGUAGES:
        subject, _ = render(language, "email", CODE, 5)
        assert subject is not None and CODE not in subject


def test_one_minute_is_singular() -> None:
    assert "Valid for 1 minute." in render("en", "sms", CODE, 1)[1]
    assert "Gültig für 1 Minute." in render("de", "sms", CODE, 1)[1]
    assert "Caduca en 1 minuto." in render("es", "sms", CODE, 1)[1]
    assert "Valable 1 minute." in render("fr", "sms", CODE, 1)[1]


def test_product_name_is_used() -> None:
    assert render("en", "email", CODE, 5, product="Acme")[0] == "Your Acme verification code"
    assert render("de", "sms", CODE, 5, product="Acme")[1].startswith("Ihr Acme-Code: ")


@pytest.mark.parametrize("language", ["it", "", "xx-YY", "EN-gb", "english"])
def test_unknown_language_falls_back_to_english(language: str) -> None:
    assert render(language, "sms", CODE, 5) == (None, SMS["en"])


@pytest.mark.parametrize(
    ("tag", "language"),
    [("de", "de"), ("de-AT", "de"), ("fr_CA", "fr"), ("ES", "es"), (None, "en"), ("pt", "en")],
)
def test_language_tags(tag: str | None, language: str) -> None:
    assert language_for(tag) == language


def test_unknown_channel_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        render("en", "fax", CODE, 5)


def test_expires_minutes_never_promises_more_than_is_left() -> None:
    assert [expires_minutes(s) for s in (300, 299, 90, 60, 30)] == [5, 4, 1, 1, 1]


def test_render_code_uses_the_message() -> None:
    message = OutgoingCode("email", "alice@example.com", CODE, "es-MX", 600)
    language, subject, text = render_code(message, product="Acme")
    assert (language, subject) == ("es", "Tu código de verificación de Acme")
    assert "Es válido durante 10 minutos." in text
