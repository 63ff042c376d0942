from runtime.segmenter import SentenceSegmenter


def _feed(text: str, size: int = 3) -> list[str]:
    seg = SentenceSegmenter()
    out: list[str] = []
    for i in range(0, len(text), size):
        out += seg.push(text[i:i + size])
    return out + seg.flush()


def test_sentences_are_emitted_as_soon_as_they_end():
    seg = SentenceSegmenter()
    assert seg.push("Hello there. How") == ["Hello there."]
    assert seg.push(" are you? I am") == ["How are you?"]
    assert seg.flush() == ["I am"]


def test_abbreviations_numbers_and_short_fragments_do_not_split():
    assert _feed("Dr. Smith lives at No. 5 Main St. in town. It costs 3.50 today! Ok. Great, see you.") == [
        "Dr. Smith lives at No. 5 Main St. in town.", "It costs 3.50 today!", "Ok. Great, see you."]


def test_newlines_split_and_empty_input_gives_nothing():
    assert _feed("First line here\nSecond line here") == ["First line here", "Second line here"]
    assert _feed("") == []
