"""A failed seed is an outcome, never a dropped pair: the rule behind every sequential verdict.

On a seed where a side of a comparison failed (its last attempt failed, ran out of memory, timed
out or diverged, or recorded no finite value of the metric) there is no paired difference. The
failed run counts as the failing side's worst value on that seed, so no claim in that side's
favour rests on the pairs that leave the seed out:
- the candidate failed where the baseline finished: it cannot be better or equivalent;
- the baseline failed where the candidate finished: the candidate cannot be worse or equivalent;
- both failed on a seed: it cannot be equivalent.
A claim against the failing side comes from the pairs both sides finished, which leave out a seed
that would have counted further against it. A blocked claim is no decision: the comparison goes on
to its next look (more seeds), or is undecided at its last, and says why. The failures of a look
are those of all its seeds, so once blocked a claim stays blocked (looks only add seeds), and a
comparison with every claim blocked stops undecided at once.

Why it holds (`python scripts/sequential_design.py --failures`): a better or equivalent claim is
made only where the candidate failed on none of the look's seeds, and an equivalent one only where
nothing failed; where nothing failed, the look's pairs are the complete data, so such a claim is
the one the design would have made had every run finished, and its error rate is the design's,
whatever made runs fail. A claim against a side that failed is made from pairs that leave out
seeds where that side did worst (or seeds chosen at random): in simulation its error stays within
its share of alpha.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import EllipsisType

from actbench.analysis import sequential

CLAIMS = ("better", "worse", "equivalent")


@dataclass(frozen=True)
class Failures:
    """The seeds of a look where each side failed: (seed, why), e.g. (1, "diverged")."""

    seeds: int  # seeds the look ran on each side
    candidate: tuple[tuple[int, str], ...] = ()
    baseline: tuple[tuple[int, str], ...] = ()

    @property
    def blocked(self) -> frozenset[str]:
        """The claims these failures rule out (see the module docstring)."""
        c, b = {s for s, _ in self.candidate}, {s for s, _ in self.baseline}
        out = set()
        if c - b:
            out |= {"better", "equivalent"}
        if b - c:
            out |= {"worse", "equivalent"}
        if c & b:
            out.add("equivalent")
        return frozenset(out)

    @property
    def hopeless(self) -> bool:
        """Every claim is blocked: no later look can decide (looks only add seeds), so the comparison stops undecided."""
        return self.blocked >= set(CLAIMS)

    def describe(self, candidate: str, baseline: str, reached: str | None = None) -> str | None:
        """The failures in words, and how they were treated (None when nothing failed); `reached`:
        the claim the finished pairs made, when the failures blocked it."""
        if not self.candidate and not self.baseline:
            return None

        def side(name: str, failed: tuple[tuple[int, str], ...], first: bool) -> str:
            count = f"{name} failed {len(failed)} of {self.seeds} seeds" if first else f"{name} {len(failed)}"
            by: dict[str, list[str]] = {}
            for seed, why in failed:
                by.setdefault(why, []).append(str(seed))
            where = [f"{why} at seed{'s' if len(s) > 1 else ''} {', '.join(s)}" for why, s in by.items()]
            return count + (f" ({'; '.join(where)})" if failed else "")

        whose = " and ".join(f"{name}'s" for name, failed in ((candidate, self.candidate), (baseline, self.baseline)) if failed)
        blocked = [c for c in CLAIMS if c in self.blocked]
        text = f"{side(candidate, self.candidate, True)}, {side(baseline, self.baseline, False)}: counted as {whose} worst"
        if blocked:
            text += f"; cannot be {', '.join(blocked[:-1]) + ' or ' if len(blocked) > 1 else ''}{blocked[-1]}"
        if reached in self.blocked:
            text += f" (the pairs both finished alone would say {reached})"
        return text


@dataclass(frozen=True)
class Look:
    """One look of a comparison: the differences of the seeds both sides finished, and the failures."""

    pairs: tuple[tuple[int, float], ...]  # (seed, candidate - baseline)
    failures: Failures

    @property
    def diffs(self) -> list[float]:
        return [d for _, d in self.pairs]


def look(seeds: Sequence[int], candidate: Sequence[tuple[float | None, str]], baseline: Sequence[tuple[float | None, str]]) -> Look:
    """A look from each side's outcome per seed: (value, why), value None when the run failed."""
    pairs = tuple((s, vc - vb) for s, (vc, _), (vb, _) in zip(seeds, candidate, baseline) if vc is not None and vb is not None)
    failed = [tuple((s, why) for s, (v, why) in zip(seeds, side) if v is None) for side in (candidate, baseline)]
    return Look(pairs, Failures(len(seeds), *failed))


def decide(looks: Sequence[Look], design: sequential.Design, margin: float | Sequence[float | None] | None | EllipsisType = ...,
           undecided: int = 0, hint: bool = True) -> sequential.Decision:
    """The design's decision over these looks with the failure rule; the first `undecided` looks
    reach no verdict whatever their intervals (they were recorded undecided: see
    `actbench.planner.seeds`); `hint` as `sequential.decide`'s."""
    blocked = [frozenset(CLAIMS) if k < undecided else lk.failures.blocked for k, lk in enumerate(looks)]
    failed = looks[-1].failures if looks else Failures(0)
    decision = sequential.decide([lk.diffs for lk in looks], design, margin, blocked,
                                 hint and not failed.blocked)  # the design's hint knows no blocked claims: it would promise one
    return replace(decision, verdict="undecided") if decision.verdict == "continue" and failed.hopeless else decision
