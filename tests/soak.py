"""`make soak`: the fault matrix over many seeds, with a table of what it did and what it found.

    python -m tests.soak [--runs N] [--first-seed S] [--workers W] [--point P] [--profile NAME] [--edit] [-v]

Each run is one scenario of tests/faults.py (the real CLI against a sandbox with faults on, killed
at chosen and random points, run again until it succeeds) followed by the invariant checks. The
scenarios run W at a time (each has its own sandbox, ledger and CLI processes). Exit code 0 when
no invariant was violated, 1 otherwise; every violating scenario is printed with its seed so that
`--first-seed SEED --runs 1` replays it.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from tests.faults import (
    EDIT_KILL_POINTS,
    KILL_POINTS,
    SANDBOX_ERRORS,
    Scenario,
    ScenarioResult,
    run_scenario,
)


def _arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="scenarios to run (default 500)")
    parser.add_argument("--first-seed", type=int, default=1000, help="seed of the first scenario (default 1000)")
    parser.add_argument("--workers", type=int, default=8, help="scenarios at once (default 8: most of a scenario is waiting)")
    parser.add_argument("--point", choices=sorted(set(KILL_POINTS + EDIT_KILL_POINTS)),
                        help="kill only at this point (default: the seed decides)")
    parser.add_argument("--profile", help="fault profile for every scenario (default: the seed decides)")
    parser.add_argument("--edit", action="store_true",
                        help="edit scenarios: the series published, its pages changed, corrected with --replace")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every scenario as it ends")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _arguments(argv)
    scenarios = [Scenario.from_seed(seed, (args.point,) if args.point else None, args.profile, edit=args.edit)
                 for seed in range(args.first_seed, args.first_seed + args.runs)]
    started = time.monotonic()
    results: list[ScenarioResult] = []
    print(f"soak: {len(scenarios)} scenarios (seeds {args.first_seed}..{args.first_seed + args.runs - 1}), "
          f"{args.workers} at a time", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
        futures = [pool.submit(run_scenario, scenario) for scenario in scenarios]
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if args.verbose or result.violations:
                print(result.report(), flush=True)
            elif len(results) % 10 == 0:
                print(f"  {len(results)}/{len(scenarios)} done, {time.monotonic() - started:.0f}s", flush=True)
    wall = time.monotonic() - started
    print()
    print(table(results, wall))
    return 1 if any(r.violations for r in results) else 0


def table(results: list[ScenarioResult], wall: float) -> str:
    kills_by_point: collections.Counter[str] = collections.Counter()
    kills_missed = 0
    for result in results:
        for run in result.runs:
            if run.kill is None:
                continue
            if run.killed:
                kills_by_point[run.kill.point] += 1
            else:
                kills_missed += 1
    faults: collections.Counter[str] = collections.Counter()
    events: collections.Counter[str] = collections.Counter()
    for result in results:
        faults.update(result.faults)
        events.update(result.events)
    runs = sum(len(r.runs) for r in results)
    violations = sum(len(r.violations) for r in results)
    rows = [
        ("scenarios (seeds)", len(results)),
        ("CLI runs", runs),
        ("reruns", sum(r.reruns for r in results)),
        ("kills (SIGKILL)", sum(kills_by_point.values())),
        *((f"  at {point}", kills_by_point[point]) for point in dict.fromkeys(KILL_POINTS + EDIT_KILL_POINTS)
          if point in kills_by_point or point in KILL_POINTS),
        ("  kill points not reached", kills_missed),
        ("API requests", sum(r.requests for r in results)),
        ("faults injected", sum(faults.values())),
        *((f"  {kind}", count) for kind, count in sorted(faults.items())),
        *((f"{event}", count) for event, count in sorted(events.items())),
        ("sandbox errors", len(SANDBOX_ERRORS.records)),
        ("invariant violations", violations),
        ("scenarios with violations", sum(1 for r in results if r.violations)),
        ("wall time", f"{wall:.0f} s"),
        ("slowest scenario", f"{max((r.seconds for r in results), default=0):.0f} s"),
    ]
    width = max(len(name) for name, _value in rows)
    lines = [f"| {'what'.ljust(width)} | count |", f"| {'-' * width} | ----: |"]
    lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
