"""The console's matcher: plain text looked for with str.find must give what the regex gives."""

import itertools
import re
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from rig.instruments import console_text
from rig.instruments.console_text import (
    SEARCH_WINDOW,
    Received,
    Search,
    literal_of,
    literal_prefix,
)

# Text as a console shows it, rich in what a regex would read as syntax, with some non-ASCII.
ALPHABET = "ab ./*+?()[]{}^$|\\\r\nµé"
texts = st.text(alphabet=ALPHABET, max_size=300)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` split at `cuts` (which may fall inside a UTF-8 sequence, as a read may)."""
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def expect_all(chunks: list[bytes], patterns: list, received: Received) -> list:
    """Each pattern in turn, feeding chunks as a console would until it matches."""
    chunks = list(chunks)
    results = []
    for pattern in patterns:
        search = pattern if isinstance(pattern, Search) else Search(pattern)
        found = received.search(search)
        while not found and chunks:
            found = received.feed(chunks.pop(0), search)
        if not found:
            results.append(("not found", received.tail(10**6), len(chunks)))
            continue
        match = received.match
        results.append((match.group(0), received.before, len(chunks), match.groupdict()))
    return results


@st.composite
def text_and_literals(draw):
    text = draw(texts)
    literals = []
    for _ in range(draw(st.integers(1, 4))):
        if text and draw(st.booleans()):  # mostly text that is there, sometimes not
            a = draw(st.integers(0, len(text) - 1))
            b = draw(st.integers(a, min(len(text), a + 12)))
            literals.append(text[a:b])
        else:
            literals.append(draw(st.text(alphabet=ALPHABET, max_size=6)))
    cuts = draw(st.lists(st.integers(0, 2000), max_size=12))
    return text, literals, cuts


@settings(max_examples=300, deadline=None)
@given(text_and_literals())
def test_a_literal_by_str_find_is_what_its_escaped_regex_finds(case):
    text, literals, cuts = case
    chunks = chunked(text.encode(), cuts)
    fast = expect_all(chunks, [Search(lit, exact=True) for lit in literals], Received())
    regex = expect_all(chunks, [re.compile(re.escape(lit), re.S) for lit in literals], Received())
    assert fast == regex


@settings(max_examples=300, deadline=None)
@given(text_and_literals())
def test_expect_of_plain_text_takes_the_fast_path_and_finds_what_the_regex_finds(case):
    text, literals, cuts = case
    chunks = chunked(text.encode(), cuts)
    plain = [lit for lit in literals if literal_of(lit) is not None] or ["ab"]
    assert all(Search(lit).literal == lit for lit in plain)
    fast = expect_all(chunks, plain, Received())
    regex = expect_all(chunks, [Search(re.compile(lit, re.S)) for lit in plain], Received())
    assert fast == regex


@settings(max_examples=200, deadline=None)
@given(texts, st.lists(st.integers(0, 2000), max_size=12))
def test_the_text_before_matches_and_after_them_is_all_the_text(text, cuts):
    """Matching never loses or repeats a character: befores + matches + the rest == text."""
    received = Received()
    chunks = chunked(text.encode(), cuts)
    pieces = []
    for pattern in (" ", "\n", r"[ab]+", "\r", "."):  # literal, regex, literal, literal, regex
        search = Search(pattern)
        found = received.search(search)
        while not found and chunks:
            found = received.feed(chunks.pop(0), search)
        if found:
            pieces += [received.before, received.match.group(0)]
    for chunk in chunks:  # what no pattern needed stays unmatched
        received.feed(chunk, Search("never in the text"))
    assert "".join(pieces) + received.tail(10**6) == text


def test_metacharacters_are_syntax_to_expect_and_text_to_expect_exact():
    received = Received()
    assert received.feed(b"axb a.b", Search("a.b", exact=True))
    assert received.before == "axb " and received.match.group(0) == "a.b"
    received = Received()
    assert received.feed(b"axb a.b", Search("a.b"))
    assert received.before == "" and received.match.group(0) == "axb"


def test_plain_text_match_is_an_re_match_like_the_regex_one():
    received = Received()
    assert received.feed(b"boot\r\nfirmware version 2.4.1\r\n", Search("version 2.4.1"))
    match = received.match
    assert isinstance(match, re.Match)
    assert match.group(0) == "version 2.4.1" and match.groupdict() == {} and match.groups() == ()


def test_a_caret_anchors_at_the_start_of_what_is_unmatched_as_pexpect_did():
    received = Received()
    received.feed(b"x\nready\n", Search("x\n"))
    assert received.search(Search(r"^ready"))
    received = Received()
    received.feed(b"not ready\n", Search("not "))
    assert received.search(Search(r"^ready"))
    assert not received.search(Search(r"^x"))


def test_a_utf8_character_cut_between_two_reads_is_decoded_whole():
    received = Received()
    data = "température: 21 µC\r\n".encode()
    cut = data.index("µ".encode()) + 1
    search = Search("21 µC")
    assert not received.feed(data[:cut], search)
    assert received.feed(data[cut:], search)
    assert received.before == "température: "


def test_a_regex_searches_only_its_window_while_a_literal_searches_everything():
    """Long logs stay linear: a regex looks at the last SEARCH_WINDOW characters per step."""
    early = b"needle-1 " + b"." * (SEARCH_WINDOW + 10)
    received = Received()
    assert not received.feed(early, Search(r"needle-\d"))
    assert received.search(Search("needle-1"))
    assert received.before == ""


def test_long_line_by_line_keeps_every_character():
    lines = "".join(f"line {i:05d} text\r\n" for i in range(20000))
    received = Received()
    received.feed(lines.encode(), Search("nothing like this"))
    for i in range(20000):
        assert received.search(Search(f"line {i:05d}"))
        assert received.before == ("" if i == 0 else " text\r\n")
    assert received.tail(100) == " text\r\n"


def test_the_plain_text_a_regex_starts_with():
    assert literal_prefix(re.compile(r"=== burst complete: (\d+) lines ===")) == (
        "=== burst complete: "
    )
    assert literal_prefix(re.compile(r"version: (\S+)\r\n")) == "version: "
    assert literal_prefix(re.compile("plain")) == "plain"
    for quantified in ("ab*c", "ab+c", "ab?c", "ab{2}c", "ab{,2}"):
        assert literal_prefix(re.compile(quantified)) == "a", quantified
    assert literal_prefix(re.compile(r'{"n": (\d+)}')) == ""  # `{` first: nothing is sure
    for none in (r"^ready", r"\d+ ready", "(?i)ready", "ready|done", "x*ready"):
        assert literal_prefix(re.compile(none)) == "", none
    assert literal_prefix(re.compile("ready", re.IGNORECASE)) == ""
    assert literal_prefix(re.compile("rea dy", re.VERBOSE)) == ""


PREFIX_TEXT = "ab \r\nµ1"  # few characters: a regex's prefix occurs often, and often fails
REGEX_TAILS = ["", r"\d", r"\d+ ", "b?a", r"[ab ]+\n", ".", r"\s*$", r"\b", "(?=a)", "(?<=b)a"]


@st.composite
def regexes_with_prefixes(draw):
    patterns, prefixes = [], []
    for _ in range(draw(st.integers(1, 3))):
        prefixes.append(draw(st.text(alphabet=PREFIX_TEXT, min_size=1, max_size=3)))
        quantifier = draw(st.sampled_from(["", "", "*", "+", "?", "{1,2}"]))
        patterns.append(prefixes[-1] + quantifier + draw(st.sampled_from(REGEX_TAILS)))
    pieces = st.one_of(st.sampled_from(prefixes), st.text(alphabet=PREFIX_TEXT, max_size=6))
    text = "".join(draw(st.lists(pieces, max_size=40)))  # the prefixes, complete or cut
    cuts = draw(st.lists(st.integers(0, 400), max_size=24))
    return text, patterns, cuts, draw(st.integers(1, 40))


@settings(max_examples=400, deadline=None)
@given(regexes_with_prefixes())
def test_a_regex_searched_from_its_prefix_finds_what_its_whole_window_gives(case):
    """Skipping the window up to where the regex's plain prefix first occurs (a step's find)
    changes nothing: the same matches, before, groups, in windows far smaller than the text."""
    text, patterns, cuts, window = case
    chunks = chunked(text.encode(), cuts)

    def whole_window(pattern: str) -> Search:
        search = Search(pattern)
        search.prefix = ""
        return search

    with mock.patch.object(console_text, "SEARCH_WINDOW", window):
        fast = expect_all(chunks, [Search(p) for p in patterns], Received())
        slow = expect_all(chunks, [whole_window(p) for p in patterns], Received())
    assert fast == slow


def test_a_regex_whose_prefix_came_before_without_a_match_still_matches_later():
    received = Received()
    search = Search(r"version: (\d\S*)")
    assert search.prefix == "version: "
    assert not received.feed(b"boot\r\nversion: unknown\r\n", search)
    assert not received.feed(b"x" * 5000 + b"\r\nversion: ", search)  # the prefix, cut short
    assert received.feed(b"2.4.1\r\n", search)
    assert received.match.group(1) == "2.4.1"
    assert received.before.endswith("x\r\n") and received.before.startswith("boot\r\n")


def test_a_flood_without_the_prefix_is_not_searched_by_the_regex_engine():
    """The window is not handed to the regex at each step while the prefix is not in it."""
    calls = []

    class Counting:  # an re.Pattern's face, counting searches
        pattern, flags = "=== done: (\\d+) ===", re.S
        compiled = re.compile(pattern, flags)

        def search(self, *args):
            calls.append(len(args[0]))
            return self.compiled.search(*args)

    search = Search(re.compile("x"))
    search.regex, search.prefix = Counting(), literal_prefix(Counting.compiled)
    received = Received()
    for i in range(64):
        assert not received.feed(b"boot line %05d\r\n" % i * 2000, search)
    assert calls == []
    assert received.feed(b"=== done: 64 ===\r\n", search)
    assert len(calls) == 1 and calls[0] < 100  # from the prefix on, not the whole window
    assert received.match.group(1) == "64"
