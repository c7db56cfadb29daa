"""What a class accepts from the people in it: codes, names, pages, steps, exercise ids, result names,
values. Everything here is bounded and checked before it reaches the database, and every refusal is one
line that says what is wrong. Escaping for display is the page's (resnet_core.text.md); this module keeps
control characters and oversized text out of the database in the first place.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets

from resnet_core.errors import ExplorerError
from resnet_core.i18n import _
from resnet_core.text import plain


class ClassError(ExplorerError):
    """A request a class cannot take (bad input, an unknown or ended class): the message says why."""


class NotAllowed(ClassError):
    """The request needs the teacher's secret (or the student's own id) and did not carry it."""


CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud and typed from a projector
CODE_LENGTH = 6
MAX_NAME = 40  # a student's display name, characters
MAX_TITLE = 80
MAX_ANSWER = 200  # a wrong answer as the teacher reads it
MAX_TOKEN = 64  # a member id or a teacher secret as sent
MAX_SPEC_JSON = 200_000
MAX_HOURS = 24.0
_WORD = re.compile(r"[a-z0-9][a-z0-9_.-]{0,47}")  # pages, steps' keys, exercise ids, result names' keys
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _i in range(CODE_LENGTH))


def new_token() -> str:
    """A teacher secret or a student id: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def hash_secret(secret: str, salt: str) -> str:
    """The stored form of a teacher secret. The secret is 128 random bits (never a chosen password), so one
    salted SHA-256 is enough: there is nothing to guess; a slow hash would only slow every teacher action."""
    return hashlib.sha256((salt + ":" + secret).encode()).hexdigest()


def secret_matches(secret: object, salt: str, stored: str) -> bool:
    if not isinstance(secret, str) or not _TOKEN.fullmatch(secret):
        return False
    return hmac.compare_digest(hash_secret(secret, salt), stored)


def code(value: object) -> str:
    """A class code as typed: spaces and case forgiven ('abc 234' → 'ABC234'); anything else refused."""
    if not isinstance(value, str):
        raise ClassError(_("a class code is text"))
    if len(value) > 40:
        raise ClassError(_("a class code has {n} characters; this one has {got}", n=CODE_LENGTH, got=format(len(value), ",")))
    c = re.sub(r"[\s-]", "", value).upper()
    if len(c) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in c):
        raise ClassError(_("'{value}' is not a class code ({n} letters and digits, as the teacher shows it)",
                           value=plain(value, 20), n=CODE_LENGTH))
    return c


def token(value: object, what: str) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise NotAllowed(_("this {what} is not valid here", what=_(what)))
    return value


def display_name(value: object) -> str:
    """A student's name: one line, at most MAX_NAME characters, not empty."""
    if not isinstance(value, str):
        raise ClassError(_("a name is text"))
    if len(value) > 10_000:  # bounded before anything walks it
        raise ClassError(_("a name is at most {n} characters", n=MAX_NAME))
    name = " ".join(plain(value).split())
    if not name:
        raise ClassError(_("type a name (any name: only the teacher sees it)"))
    if len(name) > MAX_NAME:
        raise ClassError(_("a name is at most {n} characters; this one has {got}", n=MAX_NAME, got=len(name)))
    return name


def title(value: object) -> str:
    if not isinstance(value, str) or len(value) > 10_000:
        raise ClassError(_("a class title is text of at most {n} characters", n=MAX_TITLE))
    t = " ".join(plain(value).split())[:MAX_TITLE]
    return t or "Class"


def word(value: object, what: str, empty_ok: bool = False) -> str:
    """A page, a Learn step key, an exercise id or a result's key: lower-case letters, digits, '_.-'."""
    if empty_ok and value in ("", None):
        return ""
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        raise ClassError(_("the {what} '{value}' is not a name this class knows", what=_(what), value=plain(value, 30)))
    return value


def answer(value: object) -> str:
    if not isinstance(value, str) or len(value) > 10_000:
        raise ClassError(_("an answer is short text"))
    return plain(value, MAX_ANSWER).strip() or "(empty)"


def result_value(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClassError(_("a result is a number"))
    v = float(value)
    if math.isnan(v):
        raise ClassError(_("a result is a number, not NaN"))
    return v


def hours(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) <= MAX_HOURS:
        raise ClassError(_("a class lasts more than 0 and at most {n} hours", n=format(MAX_HOURS, "g")))
    return float(value)
