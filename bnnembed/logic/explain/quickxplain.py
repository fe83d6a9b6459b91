"""QuickXplain: a subset-minimal subset of a monotone predicate, with few questions.

Given candidates ``C`` and a predicate ``p`` over subsets that is *monotone* (if ``p(X)`` then
``p(Y)`` for every ``Y`` containing ``X``) and holds on ``C``, find ``X`` inside ``C`` with
``p(X)`` and ``not p(X - {c})`` for every ``c`` in ``X`` (Junker, AAAI 2004)::

    qx(B, changed, C):                 # returns X inside C, minimal with p(B + X), given p(B + C)
        if changed and p(B):  return {}
        if |C| == 1:          return C
        C1, C2 <- the first and second half of C
        X2 <- qx(B + C1, C1 nonempty, C2)
        X1 <- qx(B + X2, X2 nonempty, C1)
        return X1 + X2

It asks ``O(k log(n/k))`` questions for an answer of ``k`` of ``n`` candidates instead of ``n``
for deletion, and fewest when the candidates likeliest to be in the answer come first (then the
first half often already satisfies ``p`` and the second half is dropped with one question).

Questions the caller cannot decide (``p`` returns None) count as "no": every "yes" is still
sound, so ``p`` holds on the result, but the result may not be minimal; the caller then checks
the result's members one by one.
"""

from __future__ import annotations

from typing import Callable, Sequence


def quickxplain(p: Callable[[frozenset], bool | None], candidates: Sequence[int],
                check_empty: bool = True) -> list[int]:
    """A subset of ``candidates`` on which ``p`` holds, minimal when every answer was decided
    (``p(candidates)`` must hold; it is not asked). With ``check_empty`` the empty set is asked
    first."""
    C = list(candidates)
    if check_empty and p(frozenset()) is True:
        return []
    if not C:
        return []
    return _qx(p, frozenset(), False, C)


def _qx(p, B: frozenset, changed: bool, C: list[int]) -> list[int]:
    if changed and p(B) is True:
        return []
    if len(C) == 1:
        return C
    k = len(C) // 2
    C1, C2 = C[:k], C[k:]
    X2 = _qx(p, B | frozenset(C1), bool(C1), C2)
    X1 = _qx(p, B | frozenset(X2), bool(X2), C1)
    return X1 + X2
