"""What one thread hands to the broadcaster inside `broadcasts_together` goes out as one
hand-over when the block ends, in order, even when the block raises; a send that must not wait
(`send_and_wait`) takes what was held with it; other threads are never held back."""
from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import pytest

from controlplane import broadcaster as broadcaster_module
from controlplane.broadcaster import broadcaster, broadcasts_together, hand_over_together

Items = list[tuple[Any, Future[None]]]


@pytest.fixture
def handed_over(monkeypatch: pytest.MonkeyPatch) -> list[Items]:
    """Each hand-over the process's broadcaster gets, its items' futures resolved at once."""
    hand_overs: list[Items] = []

    def record(items: Items) -> None:
        hand_overs.append(list(items))
        for _, done in items:
            done.set_result(None)

    monkeypatch.setattr(broadcaster_module.broadcaster, "_hand_over", record)
    return hand_overs


def send(n: int) -> Future[None]:
    return broadcaster.send([(f"g{n % 2}", {"type": "t", "n": n})])


def numbers(hand_over: Items) -> list[int]:
    return [message["n"] for sends, _ in hand_over for _, message in sends]


def test_sends_in_a_block_are_one_hand_over_in_order(handed_over: list[Items]) -> None:
    send(0)
    with broadcasts_together():
        held = [send(1), send(2)]
        with broadcasts_together():  # nested: the outer block hands over
            held.append(send(3))
        held.append(send(4))
        assert [numbers(h) for h in handed_over] == [[0]] and not any(done.done() for done in held)
    send(5)
    assert [numbers(h) for h in handed_over] == [[0], [1, 2, 3, 4], [5]]
    assert all(done.done() for done in held)


def test_a_block_that_raises_still_hands_over_what_it_held(handed_over: list[Items]) -> None:
    with pytest.raises(RuntimeError), broadcasts_together():
        send(1)
        raise RuntimeError("after the change was stored")
    with broadcasts_together():
        pass  # nothing sent: nothing handed over
    send(2)  # the block is over: not held
    assert [numbers(h) for h in handed_over] == [[1], [2]]


def test_hand_over_together_sends_what_was_held_and_the_block_goes_on(handed_over: list[Items]) -> None:
    with broadcasts_together():
        send(1)
        hand_over_together()
        assert [numbers(h) for h in handed_over] == [[1]]
        send(2)
        send(3)
    assert [numbers(h) for h in handed_over] == [[1], [2, 3]]


def test_send_and_wait_in_a_block_takes_the_held_sends_with_it(handed_over: list[Items]) -> None:
    with broadcasts_together():
        send(1)
        broadcaster.send_and_wait([("g0", {"type": "t", "n": 2})], timeout=1)  # would time out if it were held
        send(3)
    assert [numbers(h) for h in handed_over] == [[1, 2], [3]]


def test_other_threads_are_not_held_back(handed_over: list[Items]) -> None:
    with broadcasts_together():
        send(1)
        other = threading.Thread(target=send, args=(2,))
        other.start()
        other.join()
        assert [numbers(h) for h in handed_over] == [[2]]
    assert [numbers(h) for h in handed_over] == [[2], [1]]
