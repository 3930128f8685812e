"""Rules: a set of 20 rules over many orders, against hand-written lambdas (the floor) and rule-engine (a peer).

The rule set (``benchmarks/_rules_data.py``, where each rule is written on all three sides next to each
other) has 20 rules in five stages, written in the condition language: money comparisons, membership in
literal lists, a regular expression, quantifiers (``any``, ``sum``, ``count``, ``max_of`` over the
lines), money arithmetic behind a null guard, datetime and date arithmetic, channel and segment scopes,
hold, reject and accept outcomes, and messages with placeholders. The seeded orders are real placed
:class:`ordercore.Order` s (1 to 6 lines, EUR) whose contexts come from :func:`order_context` with the
in-memory customer directory, product catalogue, fraud scores and payment records and an ERP stub for
open balances; the printed decision mix shows how many are held and rejected.

Every context is built, and every port-backed field loaded, before anything is timed, so all three sides
read the same plain values and only rule evaluation is timed:

* ``rules_per_s``: ``evaluate(rule_set, ctx, explain=False)``, the engine's fast path (a verdict only for
  rules that match or fail, messages rendered for rules that match), which returns a ``Decision``.
* ``lambda_rules_per_s`` (the floor): the same 20 conditions as plain Python lambdas over the same context
  objects, run by a loop that mirrors ``ordercore.rules.engine.evaluate`` with ``explain=False``: the same
  order of rules, the same scope check, skipping after a rejection and for the rest of a stage an accept
  rule vouched for, rule errors caught and held, holds kept once per code, an f-string message for every
  rule that matches, a ``(rule, stage, message)`` record of it, and a result object.
* ``peer_rules_per_s``: ``rule_engine.Rule(text, context=Context(resolver=resolve_attribute))`` from PyPI
  with the same conditions in its syntax, with ``.matches(record)`` inside the same loop (messages from the
  same f-strings over our context, since the peer has no templates). The peer has no money type, so each
  order is given to it as a record of plain objects holding the same values with money as ``Decimal``
  amounts, built before timing (nested dicts with its default resolver are slower: ``--peer-dicts``
  measures that instead). The peer is slow, so it runs on a tenth of the orders (spread over every chunk);
  rules/s is a rate, so the figures compare.
* ``explained_rules_per_s``: ``evaluate(..., explain=True)``, which also records every rule's inputs.

rules/s is (rules in the set x orders) / seconds, whether a rule ran or was skipped. Before timing, every
order is checked to get the same outcome, hold codes, rejection code and messages from all three sides.
The orders are timed in chunks of 2,000, each chunk on every side in turn (in a rotating order), so that
load from elsewhere on the machine falls on all sides alike; a repeat's time is the sum over its chunks,
and the figures are medians over the repeats. As timeit does, the cyclic garbage collector runs before
each timed region and is paused inside it; all the benchmark's data is moved to the permanent generation
(``gc.freeze``) first, so those collections stay cheap.

``ratio_vs_lambdas`` is our time over the lambdas' (target: at most 3); ``speedup_vs_peer`` is the peer's
time over ours (target: at least 10). Targets are checked and printed, never asserted. The last line
printed is a JSON object.

    python benchmarks/rules.py            # 100,000 orders (10,000 for the peer), 3 repeats
    python benchmarks/rules.py --quick    # 10,000 orders (1,000 for the peer), 3 repeats
    python benchmarks/rules.py --profile  # also print where evaluate() spends its time
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _rules_data import RULES, World, contexts, peer_dict, peer_record, rules_toml
from ordercore.rules import Outcome, RuleSet, evaluate, load_rules

FULL_ORDERS, FULL_REPEATS = 100_000, 3
QUICK_ORDERS, QUICK_REPEATS = 10_000, 3
PEER_SHARE = 10  # the peer runs on one order in PEER_SHARE
CHUNK = 2_000
TARGET_RATIO = 3.0
TARGET_SPEEDUP = 10.0
RULE_ERROR = "rule_error"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collect, then pause the cyclic garbage collector for a timed region (as timeit does)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# -- the baselines' engine: ordercore.rules.engine.evaluate(explain=False), by hand ---------------------------
class PlainRule:
    """One rule for the baselines: ``test(ctx_or_record) -> bool`` and ``render(ctx) -> str``."""

    __slots__ = ("channels", "enabled", "id", "outcome", "reason_code", "render", "segments", "stage", "test")

    def __init__(self, spec: dict[str, Any], test: Callable[[Any], Any]) -> None:
        self.id: str = spec["id"]
        self.stage: str = spec["stage"]
        self.outcome = Outcome(spec["outcome"])
        self.reason_code: str = spec["reason"]
        self.channels = frozenset(spec["channels"])
        self.segments = frozenset(spec["segments"])
        self.enabled = True
        self.test = test
        self.render: Callable[[Any], str] = spec["render"]


class PlainDecision:
    __slots__ = ("fired", "holds", "outcome", "rejection")

    def __init__(self, outcome: Outcome, holds: tuple, rejection: tuple | None, fired: tuple) -> None:
        self.outcome = outcome
        self.holds = holds
        self.rejection = rejection
        self.fired = fired


def plain_evaluate(rules: Sequence[PlainRule], ctx: Any, subject: Any) -> PlainDecision:
    """The engine's decision logic with ``rule.test(subject)`` as the condition (``subject`` is ``ctx`` for
    the lambdas, the peer's record for the peer); messages come from ``rule.render(ctx)``."""
    channel = ctx.order.channel
    segment = ctx.customer.segment
    holds: dict[str, str] = {}
    rejection = None
    fired = []
    accepted_in = None
    for rule in rules:
        stage = rule.stage
        if (
            not rule.enabled
            or rejection is not None
            or accepted_in == stage
            or (rule.channels and channel not in rule.channels)
            or (rule.segments and segment not in rule.segments)
        ):
            continue
        try:
            matched = rule.test(subject) is True
        except Exception as e:
            holds.setdefault(RULE_ERROR, f"rule {rule.id} could not be evaluated: {e}")
            continue
        if not matched:
            continue
        message = rule.render(ctx)
        fired.append((rule.id, stage, message))
        outcome = rule.outcome
        if outcome is Outcome.REJECT:
            rejection = (rule.reason_code, message)
        elif outcome is Outcome.HOLD:
            holds.setdefault(rule.reason_code, message)
        else:
            accepted_in = stage
    if rejection is not None:
        decided = Outcome.REJECT
    elif holds:
        decided = Outcome.HOLD
    else:
        decided = Outcome.ACCEPT
    return PlainDecision(decided, tuple(holds.items()), rejection, tuple(fired))


def ordered_specs(rule_set: RuleSet) -> list[dict[str, Any]]:
    """The rule specs in the engine's evaluation order (stage, then descending priority, then id)."""
    stages = {s: i for i, s in enumerate(rule_set.stages)}
    specs = sorted(RULES, key=lambda r: (stages[r["stage"]], -r["priority"], r["id"]))
    assert [r["id"] for r in specs] == [r.id for r in rule_set.ordered], "evaluation orders differ"
    return specs


def lambda_rules(specs: Sequence[dict[str, Any]]) -> list[PlainRule]:
    return [PlainRule(spec, spec["check"]) for spec in specs]


def peer_rules(specs: Sequence[dict[str, Any]], dicts: bool) -> list[PlainRule]:
    import rule_engine

    context = rule_engine.Context() if dicts else rule_engine.Context(resolver=rule_engine.resolve_attribute)
    return [PlainRule(spec, rule_engine.Rule(spec["peer"], context=context).matches) for spec in specs]


# -- checks ---------------------------------------------------------------------------------------------------
def same_decisions(rule_set: RuleSet, lambdas: list[PlainRule], peer: list[PlainRule], ctxs, records) -> int:
    """How many orders get the same decision everywhere (raises on the first that does not)."""
    agree = 0
    for i, ctx in enumerate(ctxs):
        ours = evaluate(rule_set, ctx, explain=False)
        key = (ours.outcome, ours.holds, ours.rejection, tuple((v.rule_id, v.message) for v in ours.fired))
        floor = plain_evaluate(lambdas, ctx, ctx)
        sides = {
            "lambdas": (floor.outcome, floor.holds, floor.rejection, tuple((f[0], f[2]) for f in floor.fired))
        }
        if i % PEER_SHARE == 0:
            p = plain_evaluate(peer, ctx, records[i // PEER_SHARE])
            sides["peer"] = (p.outcome, p.holds, p.rejection, tuple((f[0], f[2]) for f in p.fired))
        for side, other in sides.items():
            if other != key:
                raise SystemExit(f"order {ctx.order.id}: ours decided {key}, the {side} {other}")
        if ours.hold_codes and RULE_ERROR in ours.hold_codes:
            raise SystemExit(f"order {ctx.order.id}: a rule failed: {ours.holds}")
        agree += 1
    return agree


# -- timing ---------------------------------------------------------------------------------------------------
def run_ours(rule_set: RuleSet, ctxs: Sequence[Any], explain: bool) -> float:
    with gc_paused():
        t0 = perf_counter()
        for ctx in ctxs:
            evaluate(rule_set, ctx, explain=explain)
        return perf_counter() - t0


def run_plain(rules: Sequence[PlainRule], ctxs: Sequence[Any], subjects: Sequence[Any]) -> float:
    with gc_paused():
        t0 = perf_counter()
        for ctx, subject in zip(ctxs, subjects, strict=True):
            plain_evaluate(rules, ctx, subject)
        return perf_counter() - t0


def measure(
    rule_set: RuleSet,
    lambdas: list[PlainRule],
    peer: list[PlainRule],
    ctxs: list[Any],
    records: list[Any],
    repeats: int,
) -> dict[str, float]:
    """Median seconds per side over the repeats (the peer's and the explained side's for their orders)."""
    peer_ctxs = ctxs[::PEER_SHARE]
    sides: dict[str, Callable[[int, int], float]] = {
        "ours": lambda a, b: run_ours(rule_set, ctxs[a:b], False),
        "lambdas": lambda a, b: run_plain(lambdas, ctxs[a:b], ctxs[a:b]),
        "peer": lambda a, b: run_plain(
            peer,
            peer_ctxs[-(-a // PEER_SHARE) : -(-b // PEER_SHARE)],
            records[-(-a // PEER_SHARE) : -(-b // PEER_SHARE)],
        ),
        "explained": lambda a, b: run_ours(rule_set, ctxs[a:b], True),
    }
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        total = dict.fromkeys(names, 0.0)
        for k, start in enumerate(range(0, len(ctxs), CHUNK)):
            end = min(start + CHUNK, len(ctxs))
            for j in range(len(names)):
                name = names[(j + k + r) % len(names)]
                total[name] += sides[name](start, end)
        for name in names:
            times[name].append(total[name])
        print(
            f"  repeat {r + 1}/{repeats}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in names),
            file=sys.stderr,
            flush=True,
        )
    return {name: statistics.median(t) for name, t in times.items()}


def profile_ours(rule_set: RuleSet, ctxs: Sequence[Any]) -> str:
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [evaluate(rule_set, ctx, explain=False) for ctx in ctxs])
    out = io.StringIO()
    out.write(f"evaluate(explain=False) profile: {len(ctxs):,} orders (cProfile, by tottime)\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 orders (under a minute)")
    parser.add_argument("--orders", type=int, help="orders to evaluate")
    parser.add_argument("--repeats", type=int, help="repeats to take the median of (default 3)")
    parser.add_argument("--peer-dicts", action="store_true", help="give the peer nested dicts, not objects")
    parser.add_argument("--profile", action="store_true", help="also print where evaluate() spends its time")
    args = parser.parse_args(argv)
    try:
        import rule_engine  # noqa: F401
    except ImportError:
        print("benchmarks/rules.py needs the peer: pip install rule-engine", file=sys.stderr)
        return 2
    n_orders = args.orders or (QUICK_ORDERS if args.quick else FULL_ORDERS)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else FULL_REPEATS)

    started = perf_counter()
    rule_set = load_rules(rules_toml())
    specs = ordered_specs(rule_set)
    lambdas = lambda_rules(specs)
    peer = peer_rules(specs, args.peer_dicts)
    orders, inputs = World().orders(n_orders)
    ctxs = contexts(orders, inputs)
    to_peer = peer_dict if args.peer_dicts else peer_record
    records = [to_peer(ctx) for ctx in ctxs[::PEER_SHARE]]
    built = perf_counter() - started
    print(f"  built {n_orders:,} orders and their contexts in {built:.1f} s", file=sys.stderr, flush=True)

    agree = same_decisions(rule_set, lambdas, peer, ctxs, records)
    mix = {o: 0 for o in Outcome}
    for ctx in ctxs:
        mix[evaluate(rule_set, ctx, explain=False).outcome] += 1
    if args.profile:
        print(profile_ours(rule_set, ctxs[:10_000]))

    gc.collect()
    gc.freeze()
    seconds = measure(rule_set, lambdas, peer, ctxs, records, repeats)
    n_rules = len(rule_set.rules)
    n_peer = len(records)
    counts = {"ours": n_orders, "lambdas": n_orders, "peer": n_peer, "explained": n_orders}
    rate = {name: n_rules * counts[name] / s for name, s in seconds.items()}
    ratio = rate["lambdas"] / rate["ours"]
    speedup = rate["ours"] / rate["peer"]

    print(
        f"Rules benchmark: {n_rules} rules over {n_orders:,} orders ({n_peer:,} for the peer), median of"
        f" {repeats} repeat(s) ({perf_counter() - started:.0f} s)"
    )
    print(
        "decisions: "
        + ", ".join(f"{o.value} {mix[o] / n_orders:.1%}" for o in Outcome)
        + f"; {agree:,} orders decided alike by ours and the lambdas ({n_peer:,} of them by the peer too)"
    )
    print()
    print(f"{'side':<28} {'orders':>8} {'rules/s':>12} {'us/order':>9}")
    labels = {
        "ours": "ours (explain=False)",
        "lambdas": "lambdas (floor)",
        "peer": "rule-engine " + ("(dicts)" if args.peer_dicts else "(objects)"),
        "explained": "ours (explain=True)",
    }
    for name in ("ours", "lambdas", "peer", "explained"):
        print(
            f"{labels[name]:<28} {counts[name]:>8,} {rate[name]:>12,.0f}"
            f" {1e6 * seconds[name] / counts[name]:>9.2f}"
        )
    print()
    print(
        f"ratio vs lambdas {ratio:.2f} (target <= {TARGET_RATIO:g}: {'met' if ratio <= TARGET_RATIO else 'NOT met'});"
        f" speedup vs peer {speedup:.1f} (target >= {TARGET_SPEEDUP:g}:"
        f" {'met' if speedup >= TARGET_SPEEDUP else 'NOT met'})"
    )
    print(
        json.dumps(
            {
                "rules_per_s": round(rate["ours"]),
                "lambda_rules_per_s": round(rate["lambdas"]),
                "peer_rules_per_s": round(rate["peer"]),
                "ratio_vs_lambdas": round(ratio, 3),
                "speedup_vs_peer": round(speedup, 2),
                "explained_rules_per_s": round(rate["explained"]),
                "orders": n_orders,
                "peer_orders": n_peer,
                "rules": n_rules,
                "repeats": repeats,
                "quick": bool(args.quick),
                "peer_input": "dicts" if args.peer_dicts else "objects",
                "held_share": round(mix[Outcome.HOLD] / n_orders, 4),
                "rejected_share": round(mix[Outcome.REJECT] / n_orders, 4),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
