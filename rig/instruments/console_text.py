"""What a console received and no expect has matched yet, and the search for a pattern in it.

Pure code on text (no I/O, no threads): the console decodes what it reads into `Received` and asks
it for a `Search`'s pattern after each step. The unmatched text is one str and an offset, plus the
parts read since it was last joined, so a test expecting line after line costs a `str.find`, not
a copy of the rest of the buffer, and a 10 MiB burst is joined once, at the match.

A pattern without regex syntax is searched with `str.find` (the regex engine and a compile per
new pattern cost ~10x more); it returns the same `re.Match` the regex would. A regex searches
the last SEARCH_WINDOW characters after each step (as pexpect did), which keeps long logs linear.
A regex that starts with plain text (`version: (.+)`) is searched only from where that text
first occurs in the window, found with `str.find` in what each step added: a flood without it
costs a find in each step, not a regex search of the whole window (four steps' worth) after it.
"""

from __future__ import annotations

import codecs
import functools
import re

SEARCH_WINDOW = 256 * 1024  # how far back a regex is searched after each step
COMPACT_AT = 1024 * 1024  # matched text kept before the unmatched rest is copied out of it

_REGEX_SYNTAX = re.compile(r"[.^$*+?{}\[\]\\|()]")
# What makes a regex's result depend on where its window starts (the real start of the text
# vs an offset in it): such a pattern is searched in a copy of the window, as pexpect did.
_WINDOW_START = re.compile(r"\^|\\[AbB]|\(\?<")


def literal_prefix(regex: re.Pattern[str]) -> str:
    """Plain text every match of `regex` starts with ("" if none is sure): what precedes the
    first syntax character, less a character a quantifier makes optional or repeats."""
    text = regex.pattern
    if not isinstance(text, str) or regex.flags & (re.IGNORECASE | re.VERBOSE) or "|" in text:
        return ""  # a case-blind or verbose prefix is not plain text; `|` may split the start
    syntax = _REGEX_SYNTAX.search(text)
    if syntax is None:
        return text
    end = syntax.start()
    if text[end] in "*+?{":  # it quantifies the character before it
        end = max(end - 1, 0)
    return text[:end]


def literal_of(pattern: str | re.Pattern[str]) -> str | None:
    """The text a pattern matches when it is a str with no regex syntax; None for a regex."""
    if isinstance(pattern, str) and _REGEX_SYNTAX.search(pattern) is None:
        return pattern
    return None


@functools.lru_cache(maxsize=256)
def _span(length: int) -> re.Pattern[str]:
    """Matches any `length` characters: turns a literal found by str.find into an re.Match."""
    return re.compile(f".{{{length}}}", re.DOTALL)


class Search:
    """One expect's pattern, and how far the unmatched text has been searched for a literal
    (or for the plain text a regex starts with)."""

    __slots__ = ("at_offset", "done", "literal", "pattern", "prefix", "regex")

    def __init__(self, pattern: str | re.Pattern[str], *, exact: bool = False) -> None:
        self.pattern = pattern
        self.literal = pattern if exact else literal_of(pattern)
        self.regex: re.Pattern[str] | None = None
        self.at_offset = False  # whether search(text, pos) equals searching text[pos:]
        self.prefix = ""  # plain text every match of the regex starts with
        if self.literal is None:
            # pexpect compiled a str with DOTALL and took a compiled pattern as it was
            self.regex = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, re.S)
            self.at_offset = _WINDOW_START.search(self.regex.pattern) is None
            self.prefix = literal_prefix(self.regex)
        # Where the literal (or the prefix) may begin in the unmatched text: not before this.
        self.done = 0


class Received:
    """Decoded console text not matched yet; `before` and `match` tell the last match."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget everything not matched yet (a fresh decoder: a cut UTF-8 sequence too)."""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""  # the unmatched text is _text[_pos:] followed by _parts
        self._pos = 0
        self._parts: list[str] = []
        self._size = 0  # its length
        self.before = ""  # the text between the previous match and the last one
        self.match: re.Match[str] | None = None

    def __len__(self) -> int:
        return self._size

    def feed(self, data: bytes, search: Search) -> bool:
        """Take what the port gave, then search it (with what was left unmatched)."""
        text = self._decoder.decode(data)
        if not text:
            return False
        self._parts.append(text)
        self._size += len(text)
        return self.search(search)

    def search(self, search: Search) -> bool:
        """Whether the pattern is in the unmatched text; a match moves it to `before`/`match`."""
        if search.literal is not None:
            return self._find(search)
        return self._search_regex(search)

    def tail(self, chars: int) -> str:
        """The last `chars` characters not matched yet (what a timeout shows)."""
        return self._from(max(0, self._size - chars))

    # -- the two searches ----------------------------------------------------------------------

    def _find(self, search: Search) -> bool:
        literal = search.literal
        assert literal is not None
        index = self._first(literal, search)
        if index < 0:
            return False
        self._join()
        self._matched(_span(len(literal)).match(self._text, self._pos + index), index)
        return True

    def _search_regex(self, search: Search) -> bool:
        regex = search.regex
        assert regex is not None
        offset = max(0, self._size - SEARCH_WINDOW)
        start = offset
        if search.prefix:  # no match starts before the prefix does
            search.done = max(search.done, offset)
            start = self._first(search.prefix, search)
            if start < 0:
                return False
        if search.at_offset:  # the window may start where the match can
            if not self._parts:  # no copy of it
                match = regex.search(self._text, self._pos + start)
                if match is None:
                    return False
                self._matched(match, match.start() - self._pos)
                return True
            offset = start
        window = self._from(offset)
        match = regex.search(window, start - offset)
        if match is None:
            return False
        self._join()
        self._matched(match, offset + match.start(), len(window) - match.end())
        return True

    def _first(self, literal: str, search: Search) -> int:
        """Where `literal` first occurs in the unmatched text from `search.done` on, which then
        moves up to it (or, if it is not there yet, to where it may still begin); -1 if not."""
        start = search.done
        if not self._parts:
            index = self._text.find(literal, self._pos + start)
            index = index - self._pos if index >= 0 else -1
        else:  # only the new parts, and the end of what was searched before them
            index = self._from(start).find(literal)
            index = index + start if index >= 0 else -1
        search.done = index if index >= 0 else max(start, self._size - len(literal) + 1)
        return index

    # -- the text ------------------------------------------------------------------------------

    def _matched(self, match: re.Match[str], start: int, rest: int | None = None) -> None:
        """`match` began `start` characters into the unmatched text; `rest` of it follow it."""
        self.match = match
        self.before = self._text[self._pos : self._pos + start]
        if rest is None:
            rest = self._size - start - (match.end() - match.start())
        self._pos += self._size - rest
        self._size = rest
        if self._pos >= COMPACT_AT and self._pos > len(self._text) // 2:
            self._text, self._pos = self._text[self._pos :], 0

    def _join(self) -> None:
        if self._parts:
            self._text = "".join([self._text[self._pos :], *self._parts])
            self._pos = 0
            self._parts = []

    def _from(self, start: int) -> str:
        """The unmatched text from `start` on, joining only the parts that hold it."""
        need = self._size - start
        if need <= 0:
            return ""
        if not self._parts:
            return self._text[len(self._text) - need :]
        pieces: list[str] = []
        for part in reversed(self._parts):
            if need <= 0:
                break
            pieces.append(part if len(part) <= need else part[len(part) - need :])
            need -= len(part)
        if need > 0:
            pieces.append(self._text[len(self._text) - need :])
        return "".join(reversed(pieces))
