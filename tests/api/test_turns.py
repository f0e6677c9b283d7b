"""The concurrency limit's line (``middleware.Turns``): first come, first served; a wait
that runs out, or is cancelled, leaves the line as it found it."""

import asyncio

from usersvc.http.middleware import Turns


async def test_turns_are_taken_up_to_the_limit_then_handed_on_in_order() -> None:
    turns = Turns(2, wait=5)
    assert turns.take_now()
    assert turns.take_now()
    assert not turns.take_now()
    served: list[str] = []

    async def wait(name: str) -> None:
        assert await turns.wait_for_turn()
        served.append(name)

    first = asyncio.create_task(wait("first"))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(wait("second"))
    await asyncio.sleep(0.01)
    turns.give_back()
    await first
    assert not turns.take_now()  # the turn went to the one in line, not back to the pool
    turns.give_back()
    await second
    assert served == ["first", "second"]
    turns.give_back()
    turns.give_back()
    assert turns.take_now()
    assert turns.take_now()
    assert not turns.take_now()


async def test_a_wait_that_runs_out_answers_false_and_leaves_no_trace() -> None:
    turns = Turns(1, wait=0.1)
    assert turns.take_now()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert not await turns.wait_for_turn()
    assert 0.09 < loop.time() - started < 1
    turns.give_back()
    assert turns.take_now()


async def test_a_turn_handed_to_a_waiter_that_is_cancelled_passes_to_the_next() -> None:
    turns = Turns(1, wait=5)
    assert turns.take_now()
    quitter = asyncio.create_task(turns.wait_for_turn())
    patient = asyncio.create_task(turns.wait_for_turn())
    await asyncio.sleep(0.01)
    turns.give_back()  # to the quitter, who is cancelled before it runs
    quitter.cancel()
    assert await asyncio.wait_for(patient, 1)
    assert quitter.cancelled()
    assert not turns.take_now()  # the patient holds the only turn
    turns.give_back()
    assert turns.take_now()


async def test_a_newcomer_does_not_jump_the_line() -> None:
    turns = Turns(1, wait=5)
    assert turns.take_now()
    waiting = asyncio.create_task(turns.wait_for_turn())
    await asyncio.sleep(0.01)
    turns.give_back()
    assert not turns.take_now()  # handed to the waiter already
    assert await waiting
