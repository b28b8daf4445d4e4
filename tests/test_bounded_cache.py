"""The shared size-bounded cache: what it drops, in what order, and what it counts."""

from __future__ import annotations

import threading

from atp_viz.base.bounded_cache import BoundedCache


def test_the_least_recently_used_goes_first_and_reading_renews_an_entry():
    cache: BoundedCache[str, int] = BoundedCache(3)
    for i, key in enumerate("abc"):
        cache.put(key, i)
    assert cache.get("a") == 0  # now the newest: b is the oldest
    cache.put("d", 3)
    assert cache.peek("b") is None
    assert [cache.peek(key) for key in "acd"] == [0, 2, 3]


def test_peek_leaves_the_order_as_it_is():
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 0)
    cache.put("b", 1)
    assert cache.peek("a") == 0
    cache.put("c", 2)
    assert cache.peek("a") is None and cache.peek("b") == 1


def test_sizes_are_summed_and_as_many_go_as_the_budget_needs():
    cache: BoundedCache[str, str] = BoundedCache(100)
    cache.put("a", "A", 40)
    cache.put("b", "B", 40)
    cache.put("c", "C", 10)
    assert cache.total == 90
    cache.put("d", "D", 60)  # a and b make room for it; c stays
    assert [cache.peek(key) for key in "abcd"] == [None, None, "C", "D"] and cache.total == 70
    cache.put("e", "E", 100)  # c and d both go
    assert len(cache) == 1 and cache.total == 100


def test_replacing_a_key_counts_its_new_size_once_and_makes_it_the_newest():
    cache: BoundedCache[str, str] = BoundedCache(100)
    cache.put("a", "old", 60)
    cache.put("b", "B", 30)
    cache.put("a", "new", 10)
    assert cache.total == 40 and cache.peek("a") == "new"
    cache.put("c", "C", 65)  # over by 5: b, now the oldest, goes
    assert cache.peek("b") is None and cache.peek("a") == "new"


def test_an_entry_over_the_whole_budget_is_dropped_unless_the_newest_is_kept():
    strict: BoundedCache[str, str] = BoundedCache(10)
    strict.put("a", "A", 5)
    strict.put("big", "B", 11)
    assert len(strict) == 0 and strict.total == 0
    lenient: BoundedCache[str, str] = BoundedCache(10, keep_newest=True)
    lenient.put("a", "A", 5)
    lenient.put("big", "B", 11)
    assert lenient.peek("big") == "B" and lenient.peek("a") is None
    lenient.put("c", "C", 1)  # the next put pushes it out
    assert lenient.peek("big") is None and lenient.peek("c") == "C"


def test_a_budget_of_zero_keeps_nothing_when_counting_entries():
    cache: BoundedCache[str, str] = BoundedCache(0)
    cache.put("a", "A")
    assert cache.get("a") is None


def test_a_budget_function_is_read_at_each_put():
    budget = [3]
    cache: BoundedCache[int, int] = BoundedCache(lambda: budget[0])
    for i in range(3):
        cache.put(i, i)
    budget[0] = 1
    assert len(cache) == 3  # nothing goes before the next put
    cache.put(3, 3)
    assert len(cache) == 1 and cache.peek(3) == 3


def test_each_evicted_entry_is_handed_to_on_evict_oldest_first_but_not_a_replaced_one():
    evicted: list[tuple[str, str]] = []
    cache: BoundedCache[str, str] = BoundedCache(2, on_evict=lambda key, value: evicted.append((key, value)))
    cache.put("a", "A")
    cache.put("b", "B")
    cache.put("b", "B2")
    assert evicted == []
    cache.put("c", "C")
    cache.put("d", "D")
    assert evicted == [("a", "A"), ("b", "B2")]
    cache.clear()
    assert evicted == [("a", "A"), ("b", "B2")] and len(cache) == 0 and cache.total == 0


def test_on_evict_may_read_the_cache():
    seen: list[int] = []
    cache: BoundedCache[str, str] = BoundedCache(1, on_evict=lambda key, value: seen.append(len(cache)))
    cache.put("a", "A")
    cache.put("b", "B")  # would deadlock if on_evict ran under the lock
    assert seen == [1]


def test_threads_putting_at_once_leave_the_size_accounting_exact():
    cache: BoundedCache[tuple[int, int], int] = BoundedCache(50)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def fill(thread: int) -> None:
        start.wait()
        try:
            for i in range(2000):
                cache.put((thread, i % 40), i, 1 + i % 3)
                cache.get((thread, (i * 7) % 40))
        except BaseException as error:  # a thread's exception would only be printed
            errors.append(error)

    threads = [threading.Thread(target=fill, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and cache.total <= 50
    held = [value for value in (cache.peek((t, j)) for t in range(8) for j in range(40)) if value is not None]
    assert cache.total == sum(1 + value % 3 for value in held) and len(held) == len(cache)
