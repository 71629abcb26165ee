"""The words of a one-time-code message, in each supported language.

One table per language keeps a translator's work in one place. SMS texts stay short and use
only characters of the GSM 7-bit alphabet where the language allows it (German "ü" and French
"é" are in it), so a code fits one 160-character segment; Spanish needs "ó", which switches the
whole SMS to UCS-2 (70 characters per segment), so its SMS is kept under 70 characters. French
uses a plain space before ":" for the same reason (a no-break space is not in the GSM alphabet).

The subject never contains the code: subjects show up in lock-screen previews and mail logs.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from gateway.otp.model import CHANNELS, OutgoingCode

DEFAULT_LANGUAGE: Final = "en"


class _Texts(NamedTuple):
    minute: str
    minutes: str
    sms: str
    subject: str
    body: str


# Placeholders: {product}, {code}, {duration} (a number and its unit, e.g. "5 minutes").
_TEXTS: Final[dict[str, _Texts]] = {
    "en": _Texts(
        minute="minute",
        minutes="minutes",
        sms="Your {product} code: {code}. Valid for {duration}. Never share it.",
        subject="Your {product} verification code",
        body=(
            "Hello,\n\n"
            "Your one-time code for {product} is:\n\n"
            "    {code}\n\n"
            "It is valid for {duration}. Never share it with anyone.\n\n"
            "If you did not ask for it, ignore this message.\n"
        ),
    ),
    "de": _Texts(
        minute="Minute",
        minutes="Minuten",
        sms="Ihr {product}-Code: {code}. Gültig für {duration}. Geben Sie ihn niemals weiter.",
        subject="Ihr Bestätigungscode für {product}",
        body=(
            "Hallo,\n\n"
            "Ihr Einmalcode für {product} lautet:\n\n"
            "    {code}\n\n"
            "Er ist {duration} gültig. Geben Sie ihn niemals an andere weiter.\n\n"
            "Falls Sie ihn nicht angefordert haben, ignorieren Sie diese Nachricht.\n"
        ),
    ),
    "es": _Texts(
        minute="minuto",
        minutes="minutos",
        sms="Tu código de {product}: {code}. Caduca en {duration}. No lo compartas.",
        subject="Tu código de verificación de {product}",
        body=(
            "Hola:\n\n"
            "Tu código de un solo uso para {product} es:\n\n"
            "    {code}\n\n"
            "Es válido durante {duration}. No lo compartas con nadie.\n\n"
            "Si no lo has solicitado, ignora este mensaje.\n"
        ),
    ),
    "fr": _Texts(
        minute="minute",
        minutes="minutes",
        sms="Votre code {product} : {code}. Valable {duration}. Ne le partagez jamais.",
        subject="Votre code de vérification {product}",
        body=(
            "Bonjour,\n\n"
            "Votre code à usage unique pour {product} est :\n\n"
            "    {code}\n\n"
            "Il est valable {duration}. Ne le communiquez jamais à personne.\n\n"
            "Si vous ne l'avez pas demandé, ignorez ce message.\n"
        ),
    ),
}


def language_for(language: str | None) -> str:
    """The supported language for a tag such as "de", "de-AT" or "FR"; "en" when unsupported."""
    if not language:
        return DEFAULT_LANGUAGE
    primary = language.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in _TEXTS else DEFAULT_LANGUAGE


def expires_minutes(seconds: int) -> int:
    """Whole minutes to announce for a TTL, rounded down (never promise more than is left)."""
    return max(1, seconds // 60)


def render(
    language: str, channel: str, code: str, expires_minutes: int, product: str = "Chat"
) -> tuple[str | None, str]:
    """(subject, text) of the message: subject is None for SMS. Unknown languages use English."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
    texts = _TEXTS[language_for(language)]
    unit = texts.minute if expires_minutes == 1 else texts.minutes
    values = {"product": product, "code": code, "duration": f"{expires_minutes} {unit}"}
    if channel == "sms":
        return None, texts.sms.format(**values)
    return texts.subject.format(**values), texts.body.format(**values)


def render_code(message: OutgoingCode, product: str = "Chat") -> tuple[str, str | None, str]:
    """(language, subject, text) of an outgoing code, in its channel and (supported) language."""
    language = language_for(message.language)
    minutes = expires_minutes(message.expires_in)
    subject, text = render(language, message.channel, message.code, minutes, product)
    return language, subject, text
