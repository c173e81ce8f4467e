"""identity_memo: one result per object (by identity, not equality), forgotten past its limit."""

from tailpipe_ai.exporter.memo import identity_memo


def test_one_call_per_object_and_equal_objects_apart():
    calls = []
    memo = identity_memo(lambda obj: calls.append(obj) or len(calls))
    a, b = {"x": 1.0}, {"x": 1.0}
    assert [memo(a), memo(a), memo(b), memo(a)] == [1, 1, 2, 1]
    assert calls == [a, b] and calls[0] is a and calls[1] is b


def test_forgets_everything_past_its_limit():
    calls = []
    memo = identity_memo(calls.append, limit=2)
    objs = [object() for _ in range(4)]
    for obj in objs:
        memo(obj)
    memo(objs[0])  # forgotten when the fourth came in
    assert len(calls) == 5
