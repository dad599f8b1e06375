"""Blocklist terms: how prompts and terms are normalised, parsed, validated and matched.

Plain functions and a compiled ``TermSet``, no storage and no event loop: the service
(services.blocklist) caches one TermSet per server and runs the pattern part in a thread.

Normalisation makes look-alike spellings one spelling, so that a member cannot slip a term
past the check with characters that read the same: drop every default-ignorable code point
(Unicode's Default_Ignorable_Code_Point ranges, assigned or not: zero-width characters,
joiners, soft hyphens, variation selectors, tags, Hangul fillers) and the narrow spaces
(unseen inside a word, yet a space between words: a text with them is read both ways, see
``readings``), NFKC (fullwidth and mathematical letters become plain ones), map Greek and
Cyrillic capitals that look like Latin capitals (before casefolding, which would turn
Greek H into eta, an `n`), casefold, drop combining marks, then map the lowercase
look-alikes (Cyrillic, Greek, small capitals, Cherokee, Lisu, letters in black squares) to
Latin letters. The tables below are compact excerpts of Unicode's confusables.txt (letters
it maps to a single Latin letter). No library is used: confusable-homoglyphs detects mixed
scripts but has no skeleton to match against, and a full TR39 skeleton maps far more than
prompts need, at the price of a dependency.

Patterns run on RE2 (google-re2), not a backtracking engine: matching takes time linear
in the text (prompts are at most 2000 characters), so `(a+)+$` is as quick as `a+$`, and
compiling is bounded too: RE2 refuses repeat counts over 1000 (nested ones multiplied)
and programs over ``PATTERN_MAX_MEMORY``, in microseconds, without holding the GIL for
seconds the way a backtracking engine expanding `x{1000000000}` does. The price: no
backreferences and no lookaround, which are refused with a message saying so.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import re2  # type: ignore[import-untyped]  # google-re2 ships no type hints

from services.errors import ValidationError

MAX_TERM_LENGTH = 100
MAX_TERMS = 200
# A new pattern slower than this on a 2000-character hostile text is refused. RE2 is linear,
# so only a pattern whose program is huge (`(\w*\s*\w*){1000}z`) comes near it; 200 such
# patterns would exceed the budget below on every request.
PATTERN_SLOW_SECONDS = 0.02
# All patterns together, on one request: screening comes before Discord's 3 s answer. RE2
# cannot be interrupted, so this is checked between patterns; past it, fail closed.
PATTERNS_BUDGET_SECONDS = 0.5
# RE2's memory for one compiled pattern: plenty for any word list, refuses `\pL{1000}`.
PATTERN_MAX_MEMORY = 1 << 20


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = PATTERN_MAX_MEMORY
    options.log_errors = False  # RE2 would write the pattern to stderr: terms stay out of logs
    return options


_RE2_OPTIONS = _re2_options()

# Confusables (Unicode confusables.txt, single Latin letter targets), as casefolded text has
# them. Written by name: the whole point of these letters is that they look like Latin ones.
_LOOK_ALIKES = {
    # Cyrillic
    "\N{CYRILLIC SMALL LETTER A}": "a",
    "\N{CYRILLIC SMALL LETTER VE}": "b",
    "\N{CYRILLIC SMALL LETTER GHE}": "r",
    "\N{CYRILLIC SMALL LETTER IE}": "e",
    "\N{CYRILLIC SMALL LETTER SHHA}": "h",
    "\N{CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I}": "i",
    "\N{CYRILLIC SMALL LETTER JE}": "j",
    "\N{CYRILLIC SMALL LETTER KA}": "k",
    "\N{CYRILLIC SMALL LETTER PALOCHKA}": "l",
    "\N{CYRILLIC SMALL LETTER EM}": "m",
    "\N{CYRILLIC SMALL LETTER EN}": "h",
    "\N{CYRILLIC SMALL LETTER PE}": "n",
    "\N{CYRILLIC SMALL LETTER O}": "o",
    "\N{CYRILLIC SMALL LETTER ER}": "p",
    "\N{CYRILLIC SMALL LETTER QA}": "q",
    "\N{CYRILLIC SMALL LETTER ES}": "c",
    "\N{CYRILLIC SMALL LETTER DZE}": "s",
    "\N{CYRILLIC SMALL LETTER TE}": "t",
    "\N{CYRILLIC SMALL LETTER U}": "y",
    "\N{CYRILLIC SMALL LETTER STRAIGHT U}": "y",
    "\N{CYRILLIC SMALL LETTER WE}": "w",
    "\N{CYRILLIC SMALL LETTER HA}": "x",
    "\N{CYRILLIC SMALL LETTER SOFT SIGN}": "b",
    "\N{CYRILLIC SMALL LETTER KOMI DE}": "d",
    "\N{LATIN SMALL LETTER SCRIPT G}": "g",
    # Greek
    "\N{GREEK SMALL LETTER ALPHA}": "a",
    "\N{GREEK SMALL LETTER BETA}": "b",
    "\N{GREEK SMALL LETTER GAMMA}": "y",
    "\N{GREEK SMALL LETTER EPSILON}": "e",
    "\N{GREEK SMALL LETTER ZETA}": "z",
    "\N{GREEK SMALL LETTER ETA}": "n",
    "\N{GREEK SMALL LETTER IOTA}": "i",
    "\N{GREEK SMALL LETTER KAPPA}": "k",
    "\N{GREEK SMALL LETTER MU}": "u",
    "\N{GREEK SMALL LETTER NU}": "v",
    "\N{GREEK SMALL LETTER OMICRON}": "o",
    "\N{GREEK SMALL LETTER RHO}": "p",
    "\N{GREEK SMALL LETTER TAU}": "t",
    "\N{GREEK SMALL LETTER UPSILON}": "u",
    "\N{GREEK SMALL LETTER CHI}": "x",
    "\N{GREEK SMALL LETTER OMEGA}": "w",
    # Armenian and Latin letters with a built-in stroke (NFD does not remove it)
    "\N{ARMENIAN SMALL LETTER OH}": "o",
    "\N{ARMENIAN SMALL LETTER SEH}": "u",
    "\N{LATIN SMALL LETTER DOTLESS I}": "i",
    "\N{LATIN SMALL LETTER DOTLESS J}": "j",
    "\N{LATIN SMALL LETTER L WITH STROKE}": "l",
    "\N{LATIN SMALL LETTER O WITH STROKE}": "o",
    "\N{LATIN SMALL LETTER D WITH STROKE}": "d",
    "\N{LATIN SMALL LETTER H WITH STROKE}": "h",
}
# Small capitals and the Latin alpha: Latin letters Unicode keeps apart from a, b, c...
_LOOK_ALIKES.update(
    zip(
        "\u1d00\u0299\u1d04\u1d05\u1d07\ua730\u0262\u029c\u026a\u1d0a\u1d0b\u029f\u1d0d"
        "\u0274\u1d0f\u1d18\ua7af\u0280\ua731\u1d1b\u1d1c\u1d20\u1d21\u028f\u1d22\u0251",
        "abcdefghijklmnopqrstuvwyza",
        strict=True,
    )
)
# Cherokee capitals (what casefolding leaves of Cherokee) and Lisu letters that are Latin
# capitals in shape, by name so a reader can check them against confusables.txt.
_LOOK_ALIKES.update(
    (unicodedata.lookup(f"{script} LETTER {name}"), latin)
    for script, names, latins in (
        ("CHEROKEE", "GO YV TLI A GV MI TSO TLE LU TLV SV DU I DO LA GI NO", "abcdehklmprstvwyz"),
        (
            "LISU",
            "A BA CA DA E TSA GA XA I JA KA LA MA NA O PA ZHA SA TA U HA WA YA DZA",
            "abcdefghijklmnoprstuvwyz",
        ),
    )
    for name, latin in zip(names.split(), latins, strict=True)
)
# Letters in black squares and circles (emoji-styled capitals: NFKC leaves them, unlike the
# white circled and squared ones), and two more h shapes: h with hook, Coptic hate.
_LOOK_ALIKES.update(
    (chr(first + offset), chr(ord("a") + offset))
    for first in (0x1F150, 0x1F170)  # negative circled, negative squared A..Z
    for offset in range(26)
)
_LOOK_ALIKES["\N{LATIN SMALL LETTER H WITH HOOK}"] = "h"
_LOOK_ALIKES["\N{COPTIC SMALL LETTER HATE}"] = "h"
_LOOK_ALIKE_TABLE = str.maketrans(_LOOK_ALIKES)

# Greek and Cyrillic capitals that look like Latin capitals, mapped before casefolding:
# casefolded, Greek H is eta (which reads `n`) and Greek N is nu (`v`).
_CAPITALS = {
    **dict(
        zip(
            "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7",
            "abezhikmnoptyx",
            strict=True,
        )
    ),  # Greek
    **dict(
        zip(
            "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0423\u0425"
            "\u0405\u0406\u0408\u04ae\u04c0\u051a\u051c",
            "abekmhopctyxsijyiqw",
            strict=True,
        )
    ),  # Cyrillic
}
_CAPITALS_TABLE = str.maketrans(_CAPITALS)

# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt), unassigned ones
# included: a newer font or keyboard can type them, and they render as nothing.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Spaces narrow enough to sit inside a word unseen (six-per-em, punctuation, thin, hair,
# narrow no-break, medium mathematical), yet typed between words too: a text with them is
# read both ways (see ``readings``), so neither `b<thin>a<thin>d` nor `a<thin>bad<thin>idea`
# gets through. An ordinary, no-break or wider space always separates (`a class act`).
_NARROW_SPACES = "\u2006\u2008\u2009\u200a\u202f\u205f"
_NARROW_AS_SPACES = str.maketrans(dict.fromkeys(_NARROW_SPACES, " "))
_NARROW_DROPPED = str.maketrans(dict.fromkeys(map(ord, _NARROW_SPACES)))
# Invisible, yet letters or symbols to Unicode and not default-ignorable: blank braille.
# Parenthesized letters lose their brackets here: NFKC would make `(b)(a)(d)`, three words.
_DROPPED = str.maketrans(
    {
        **dict.fromkeys(
            [cp for low, high in _DEFAULT_IGNORABLE for cp in range(low, high + 1)] + [0x2800]
        ),
        **{first + n: chr(ord("a") + n) for first in (0x249C, 0x1F110) for n in range(26)},
    }
)
_DROPPED_CATEGORIES = frozenset({"Cf", "Mn", "Me"})  # other format chars; combining marks
_WORD = re.compile(r"[^\W_]+")


def normalise(text: str, *, narrow_spaces_separate: bool = False) -> str:
    """The text as the blocklist reads it: one spelling for look-alikes, nothing invisible.

    Narrow spaces are dropped, or read as spaces with ``narrow_spaces_separate``.
    """
    # Settled before NFKC, which would turn every narrow space into an ordinary one.
    spaced = text.translate(
        _NARROW_AS_SPACES if narrow_spaces_separate else _NARROW_DROPPED
    ).translate(_DROPPED)
    visible = unicodedata.normalize("NFKC", spaced)
    folded = visible.translate(_CAPITALS_TABLE).casefold()
    kept = (
        char
        for char in unicodedata.normalize("NFD", folded)
        if unicodedata.category(char) not in _DROPPED_CATEGORIES
    )
    return unicodedata.normalize("NFC", "".join(kept).translate(_LOOK_ALIKE_TABLE))


def readings(text: str) -> tuple[str, ...]:
    """Every way the blocklist reads ``text``: narrow spaces dropped and, if it has any,
    narrow spaces as spaces. A text is refused if any reading has a term."""
    joined = normalise(text)
    if not any(space in text for space in _NARROW_SPACES):
        return (joined,)
    return joined, normalise(text, narrow_spaces_separate=True)


def words_of(normalised: str) -> list[str]:
    """The words of normalised text: runs of letters and digits; anything else separates."""
    return _WORD.findall(normalised)


def joined_letters(words: Sequence[str]) -> list[str]:
    """``words`` with each run of two or more one-letter words joined: `b a d` reads `bad`.

    Only whole runs are joined and a run must equal a whole term to match, so `c l a s s`
    is `class`, never `ass`.
    """
    out: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        out += ["".join(run)] if len(run) > 1 else run
        run = []
        if word:
            out.append(word)
    return out


# --- terms -----------------------------------------------------------------------------

# What the operator's log says of a refused term: the term itself is for moderators only
# (a log is read by whoever runs the host, and a term can be a slur).
TERM_REFUSED_DETAIL = "blocklist term refused"


class TermAlreadyBlocked(ValidationError):
    """The term (or one that reads the same, like `Bad` for `bad`) is on the list already."""

    def __init__(self, existing: str) -> None:
        super().__init__(
            f"{show_term(existing)} is already on the blocklist; nothing was changed.",
            detail="blocklist add: the term is already listed",
        )
        self.existing = existing


class BlocklistFull(ValidationError):
    def __init__(self, max_terms: int) -> None:
        super().__init__(
            f"This server's blocklist already has {max_terms} terms, the most it can hold. "
            "Remove one first (or join several words into one /regex/). Nothing was changed."
        )


class TermNotBlocked(ValidationError):
    def __init__(self, term: str) -> None:
        super().__init__(
            f"{show_term(term)} is not on the blocklist; nothing was changed.",
            detail="blocklist remove: the term is not listed",
        )


def _refused(message: str) -> ValidationError:
    return ValidationError(f"{message} Nothing was changed.", detail=TERM_REFUSED_DETAIL)


def show_term(term: str) -> str:
    """A term inside a code span, for moderators (a backtick in it cannot end the span)."""
    return "`" + term.replace("`", "'") + "`"


@dataclass(frozen=True, slots=True)
class Term:
    """A blocklist term as a moderator typed it (``text``), ready to match."""

    text: str
    kind: Literal["words", "pattern"]
    key: str  # same key, same term: `Bad`, and `bad` spelled with a Cyrillic a
    words: tuple[str, ...] = ()
    pattern: Any = None  # a compiled re2 pattern (google-re2 has no type hints)


def is_pattern(text: str) -> bool:
    return len(text) >= 2 and text.startswith("/") and text.endswith("/")


def _pattern_error(error: Exception) -> ValidationError:
    """RE2's complaint in a moderator's words; the unsupported features said by name."""
    why = str(error.args[0] if error.args else error)
    if isinstance(error.args[0] if error.args else None, bytes):
        why = error.args[0].decode("utf-8", "replace")
    if (
        "invalid perl operator: (?<" in why
        or "invalid perl operator: (?=" in why
        or ("invalid perl operator: (?!" in why)
    ):
        return _refused("Lookahead and lookbehind (`(?=`, `(?!`, `(?<=`) are not supported.")
    if re.search(r"invalid escape sequence: \\[1-9]", why):
        return _refused("Backreferences (`\\1`) are not supported.")
    if "invalid repetition size" in why or "bad repetition operator" in why:
        return _refused(
            "A repeat count can be at most 1000, nested repeats multiplied "
            "(`(?:a{100}){10}` is 1000)."
        )
    if "pattern too large" in why:
        return _refused("That pattern is too large; use a simpler one.")
    return _refused(f"That is not a valid regular expression ({why}).")


MAX_REPEAT = 1000  # RE2's own limit on a repeat count
_REPEAT_COUNT = re.compile(r"(?<!\\)\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}")


def compile_pattern(source: str) -> Any:
    """``source`` compiled by RE2, case-insensitively; ValidationError saying what is wrong.

    Quick and bounded whatever the source: RE2 refuses huge repeats and programs.
    """
    # RE2 reads a count of more than 8 digits (`x{1000000000}`) as literal text, silently;
    # a moderator who wrote one meant a repeat, so it is refused like any count over 1000.
    counts = [n for m in _REPEAT_COUNT.finditer(source) for n in m.groups() if n]
    if any(int(count) > MAX_REPEAT for count in counts):
        raise _pattern_error(ValueError("invalid repetition size"))
    try:
        return re2.compile(source, _RE2_OPTIONS)
    except re2.error as error:
        raise _pattern_error(error) from None
    except (ValueError, TypeError, OverflowError) as error:
        raise _pattern_error(error) from None


def parse_term(raw: str) -> Term:
    """A word, a phrase, or `/regex/`; raises ValidationError saying what is wrong with it."""
    text = " ".join(raw.split())
    if not text:
        raise _refused("Give a word, a phrase or a /regex/ to block.")
    if len(text) > MAX_TERM_LENGTH:
        raise _refused(f"A term can be at most {MAX_TERM_LENGTH} characters long.")
    if is_pattern(text):
        source = text[1:-1]
        if not source:
            raise _refused("`//` is an empty pattern.")
        return Term(text, "pattern", f"/{source}/", pattern=compile_pattern(source))
    words = tuple(words_of(normalise(text)))
    if not words:
        raise _refused("A term needs at least one letter or digit (or write a pattern as /regex/).")
    return Term(text, "words", " ".join(words), words=words)


def adversarial_texts(source: str) -> list[str]:
    """Long, nearly-matching texts (as long as a prompt can be), built from the pattern's letters.

    RE2 takes time linear in the text, times the size of the pattern's program: these find
    a pattern whose program is so large that even linear is slow.
    """
    letters = sorted({c for c in normalise(source) if c.isalnum()})[:8] or ["a"]
    texts = [char * 2000 for char in [*letters, "a", "0"]]
    texts += ["ab" * 1000, "a " * 1000, ("-".join(letters) + " ") * 200]
    return texts


def refuse_slow_pattern(term: Term, *, slow: float = PATTERN_SLOW_SECONDS) -> None:
    """Raise ValidationError if the pattern matches everything or is slow on a long text.

    Blocking (it runs the pattern on purpose-built texts): call it from a thread.
    """
    pattern = term.pattern
    if pattern is None:
        return
    if pattern.search("") is not None:
        raise _refused("That pattern matches an empty text, so it would block every prompt.")

    def too_slow(text: str) -> bool:
        started = time.perf_counter()
        pattern.search(text)
        return time.perf_counter() - started > slow

    for text in adversarial_texts(term.text[1:-1]):
        # Slow three times running: one slow search can be a busy machine, not the pattern.
        if all(too_slow(text) for _ in range(3)):
            raise _refused(
                "That pattern is too slow on long prompts (its repeats make a very large "
                "program). Simplify it."
            )


# --- matching --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hit:
    """The term that refused a text, and which text (``index`` into those screened).

    ``timed_out``: the patterns ran out of time before this one was tried (fail closed).
    """

    term: Term
    timed_out: bool = False
    index: int = 0


class TermSet:
    """A server's terms, compiled: word terms through a first-word index, then patterns."""

    def __init__(self, terms: Iterable[Term]) -> None:
        self.terms = tuple(terms)
        self.patterns = tuple(t for t in self.terms if t.kind == "pattern")
        self._by_first: dict[str, list[Term]] = {}
        for term in self.terms:
            if term.kind == "words":
                self._by_first.setdefault(term.words[0], []).append(term)

    def match_words(self, normalised: str) -> Hit | None:
        """The first word or phrase term found in the text, whole words in sequence."""
        if not self._by_first:
            return None
        words = words_of(normalised)
        for stream in (words, joined_letters(words)):
            for start, word in enumerate(stream):
                for term in self._by_first.get(word, ()):
                    if tuple(stream[start : start + len(term.words)]) == term.words:
                        return Hit(term)
        return None

    def match_patterns(
        self, texts: Sequence[str], *, budget: float = PATTERNS_BUDGET_SECONDS
    ) -> Hit | None:
        """The first pattern found in any of the (normalised) texts. Blocking: run it in a thread.

        RE2 is linear in the text and cannot be stopped mid-search, so ``budget`` is checked
        between searches: once spent, the request counts as a match (fail closed) rather
        than go through unchecked. Each search is short (slow patterns are refused when added).
        """
        deadline = time.monotonic() + budget
        for term in self.patterns:
            for index, text in enumerate(texts):
                if time.monotonic() >= deadline:
                    return Hit(term, timed_out=True, index=index)
                if term.pattern.search(text) is not None:
                    return Hit(term, index=index)
        return None
