"""Log streams print every line exactly once."""

from lute.launch.logstream import LogStream


def test_lines_are_emitted_once_their_newline_arrives():
    s = LogStream("T")
    assert s.feed("a\nb", 0, 3) == ["a"]
    assert s.feed("c\n", 3, 5) == ["bc"]
    assert s.next_offset == 5


def test_overlapping_chunk_is_not_printed_twice():
    s = LogStream("T")
    assert s.feed("one\ntwo\n", 0, 8) == ["one", "two"]
    # a retried read from an older offset returns bytes we already printed
    assert s.feed("two\nthree\n", 4, 14) == ["three"]
    assert s.feed("two\nthree\n", 4, 14) == []
    assert s.next_offset == 14


def test_complete_flushes_the_last_line_without_newline():
    s = LogStream("T")
    assert s.feed("done", 0, 4) == []
    assert s.feed("", 4, 4, complete=True) == ["done"]
    assert s.complete
    assert s.flush() == []


def test_gap_is_announced():
    s = LogStream("T")
    s.feed("a\n", 0, 2)
    lines = s.feed("z\n", 10, 12)
    assert lines[0] == "[... 8 bytes of log missing ...]"
    assert lines[1] == "z"
    assert s.gaps == 1


def test_offsets_count_utf8_bytes():
    s = LogStream("T")
    text = "é\n"  # 3 bytes
    assert s.feed(text, 0, 3) == ["é"]
    assert s.feed("é\nx\n", 0, 5) == ["x"]


def test_crlf_is_trimmed():
    s = LogStream("T")
    assert s.feed("a\r\nb\r\n", 0, 6) == ["a", "b"]
