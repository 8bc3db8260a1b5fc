"""B9: the dataset at twenty years, as the pipeline leaves it: reads, the daily compaction step, `check`, bytes.

The store (`build`): the full list (1,838 symbols, BHP and CBA among them: read_bench.universe) over the real
XASX sessions (stockstream_cli.calendar) of the `years` before LAST_DAY, in the layout a store fed only by the
pipeline holds after the run of its last session: every day's list (symbols/D-symbols.csv) and batch records
(runs/D/batch-N.json, storefactory.manifest), one compacted file per month written by compaction's own writer
(compact.compacted_bytes, with its folded record) holding the newest fetch of every (symbol, date) that the
month's runs fetched (each run's 5-day lookback window, so a month's first runs fetched the last days of the
month before again: those superseded copies stay in the earlier month's file, as the pipeline leaves them),
and the last day's 19 batch files (datafile.to_parquet_bytes, as a fetch writes them). Prices are a seeded
random walk per symbol in ASX ticks (not a periodic pattern: a single clean file would compress a pattern
across years far better than any file of one month, which says nothing of real prices).

Measured: `stockstream load --symbols BHP` (the whole history) and `load --date D` (every symbol, one day) as
processes, locally and on S3 (a moto server in its own process behind benchmarks/latency_proxy.py, +20 ms a
request; cold: an empty cache folder; warm: the same folder again); the pipeline's compaction step
(compact_earlier_days after one more day's batch files); `check` over the last year and over the whole range
(wall time, peak RSS); the data files' bytes against the same rows in one clean zstd Parquet file; and the
whole dataset into one frame (`DataAggregator(store).load()`) against polars reading that clean file.
A built store is kept under `cache` (when given) and reused: building 20 years takes minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import Figure, run_process, stockstream_env

LAST_DAY = dt.date(2026, 11, 13)
LOOKBACK_DAYS = 5  # the pipeline's default window: the run of D fetches D-4 .. D
BATCHES = 19  # 1,838 symbols in batches of 100
LOAD_SYMBOL = "BHP"
S3_LATENCY = 0.02
BUILT_MARK = "b9-built.json"  # written last: a store without it is rebuilt


def build(root: Path, years: float, batches: int = BATCHES) -> dict:
    """The store of `years` years (see the module's docstring) in the local folder `root`; what it holds."""
    import numpy as np
    import polars as pl

    from benchmarks.read_bench import universe
    from stockstream_cli import calendar, schema
    from stockstream_cli.dataset import datafile, layout
    from stockstream_cli.dataset import symbols as stored_symbols
    from stockstream_cli.dataset.compact import FoldedRecord, compacted_bytes

    mark = root / BUILT_MARK
    if mark.exists():
        return json.loads(mark.read_text())
    shutil.rmtree(root, ignore_errors=True)
    first = (dt.date(LAST_DAY.year - int(years), LAST_DAY.month, LAST_DAY.day) + dt.timedelta(days=1)
             - dt.timedelta(days=round((years - int(years)) * 365.25)))
    sessions = calendar.sessions(first, LAST_DAY)
    codes = universe(batches)
    batch_of = np.arange(len(codes), dtype=np.int32) // 100
    listings = [stored_symbols.Listing(code, f"{code} LIMITED", "Materials", dt.date(2000, 1, 4), 1_000_000 + i,
                                       int(batch_of[i])) for i, code in enumerate(codes)]
    list_csv = stored_symbols.to_csv(listings)
    members = {n: [c for c, b in zip(codes, batch_of) if b == n] for n in range(int(batch_of[-1]) + 1)}
    closes = _random_walk(len(codes), len(sessions))
    position = {day: i for i, day in enumerate(sessions)}

    def put(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def rows(dates: list[dt.date], fetched_by: list[dt.date]) -> "pl.DataFrame":
        index = np.array([position[d] for d in dates])
        close = closes[:, index].ravel()
        n, w = len(codes), len(dates)
        return pl.DataFrame({
            "symbol": np.repeat(np.array(codes, dtype=object), w).tolist(),
            "date": pl.Series(np.tile(np.array(dates, dtype="datetime64[D]"), n)),
            "open": np.round(close * 1.002, 3), "high": np.round(close * 1.011, 3),
            "low": np.round(close * 0.989, 3), "close": close,
            "volume": _volumes(n, index).ravel(),
            "adjusted_close": np.round(close * 0.97, 6),
            "fetch_timestamp": np.tile([f"{d.isoformat()}T08:00:00.000Z" for d in fetched_by], n).tolist(),
            "batch_number": pl.Series(np.repeat(batch_of, w)),
        }).cast(dict(schema.polars_schema()))

    def window(run: dt.date) -> list[dt.date]:
        return [d for d in sessions[max(position[run] - LOOKBACK_DAYS, 0):position[run] + 1]
                if d > run - dt.timedelta(days=LOOKBACK_DAYS)]

    last = sessions[-1]
    for day in sessions:
        put(layout.symbols_key(day), list_csv)
        for number in members:
            document = _manifest(number, members[number], day)
            put(layout.batch_manifest_key(day, number), json.dumps(document).encode())
    months: dict[str, list[dt.date]] = {}
    for day in sessions[:-1]:
        months.setdefault(day.strftime("%Y-%m"), []).append(day)
    stored_rows = 0
    for month, runs in months.items():
        newest: dict[dt.date, dt.date] = {}  # date -> the latest run of the month that fetched it
        for run in runs:
            for day in window(run):
                newest[day] = run
        dates = sorted(newest)
        frame = rows(dates, [newest[d] for d in dates]).sort("symbol", "date")
        record = FoldedRecord({run.isoformat(): sorted(members) for run in runs}, {})
        put(layout.compacted_data_key(month), compacted_bytes(frame, record))
        stored_rows += frame.height
    dates = window(last)
    today = rows(dates, [last] * len(dates))
    for (number,), part in today.partition_by("batch_number", as_dict=True, maintain_order=True).items():
        put(layout.batch_data_key(last, number), datafile.to_parquet_bytes(part))
    stored_rows += today.height
    built = {"years": years, "first": sessions[0].isoformat(), "last": last.isoformat(), "sessions": len(sessions),
             "symbols": len(codes), "rows": len(codes) * len(sessions), "stored_rows": stored_rows}
    mark.write_text(json.dumps(built))
    return built


def _random_walk(symbols: int, sessions: int):
    """Closes in ASX ticks (3 decimals): a seeded log-normal walk per symbol from a price between 5 c and $100."""
    import numpy as np

    rng = np.random.default_rng(20261113)
    start = rng.uniform(0.05, 100.0, symbols)
    steps = rng.normal(0.0, 0.02, (symbols, sessions)).cumsum(axis=1)
    return np.maximum(np.round(start[:, None] * np.exp(steps), 3), 0.001)


def _volumes(symbols: int, index):
    """A volume per (symbol, session), the same whichever run fetched it."""
    import numpy as np

    return (np.arange(symbols, dtype=np.int64)[:, None] * 7919 + np.asarray(index)[None, :] * 104729) % 5_000_000


def _manifest(number: int, members: list[str], day: dt.date) -> dict:
    from stockstream_cli.dataset import layout

    first = day - dt.timedelta(days=LOOKBACK_DAYS - 1)
    return {"statusCode": 200, "body": f"batch {number}: {len(members)} of {len(members)} symbols fetched",
            "metadata": {"batch_number": number, "symbols_processed": len(members),
                         "symbols_fetched": len(members), "symbols_failed": [], "failure_reasons": {},
                         "execution_time": 40.0, "s3_key": layout.batch_data_key(day, number),
                         "window": {"start": first.isoformat(), "end": day.isoformat()}, "symbols": members}}


# ---------------------------------------------------------------------------------------------- measuring


def installed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """stockstream_env with bytecode kept, as an install leaves it: this machine sets PYTHONDONTWRITEBYTECODE
    and the virtualenv holds no compiled polars, which costs every process ~0.8 s of compiling (B5 byte-compiles
    the package for the same reason). The bytecode goes to a folder of its own, filled once (`compile_once`)."""
    return stockstream_env({"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(_PYCACHE), **(extra or {})})


_PYCACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "stockstream-bench-pycache"


def compile_once() -> None:
    run = run_process([sys.executable, "-c", "import polars, pyarrow.parquet, boto3, stockstream_cli.cli, "
                       "stockstream_cli.dataset.aggregate, stockstream_cli.quality.check"], env=installed_env())
    if run.returncode != 0:
        raise RuntimeError(f"the imports failed: {run.stderr.strip()[-500:]}")


def start_up_floor(repeats: int = 3) -> float:
    """The median wall time of a process that imports what `load` needs (polars, the CLI) and exits: what
    any `load` process costs before it reads a byte."""
    argv = [sys.executable, "-c", "import polars, stockstream_cli.cli"]
    return statistics.median(run_process(argv, env=installed_env()).wall for _ in range(repeats))


def load_process(store: str, args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(wall time of `stockstream load ARGS --format csv`, rows)."""
    argv = [sys.executable, "-m", "stockstream_cli", "load", *args, "--store", store, "--format", "csv"]
    run = run_process(argv, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"stockstream load {' '.join(args)} failed: {run.stderr.strip()[-500:]}")
    return run.wall, run.stdout.count("\n") - 1


def cold_and_warm(store: str, args: list[str], extra: dict[str, str] | None = None,
                  repeats: int = 3) -> tuple[float, float, int]:
    """(the first process with an empty cache folder, the median of `repeats` after it, rows)."""
    env = installed_env(extra)
    try:
        cold, rows = load_process(store, args, env)
        warm = statistics.median(load_process(store, args, env)[0] for _ in range(repeats))
    finally:
        shutil.rmtree(env["STOCKSTREAM_CACHE_DIR"], ignore_errors=True)
    return cold, warm, rows


def check_process(store: Path, start: str, end: str) -> tuple[float, float, str]:
    """(wall, peak RSS MB, what it said) of `stockstream check --start --end --json`."""
    argv = [sys.executable, "-m", "stockstream_cli", "check", "--store", str(store), "--start", start, "--end", end,
            "--json"]
    run = run_process(argv, env=installed_env(), timeout=3600)
    try:
        document = json.loads(run.stdout)
        said = (f"exit {run.returncode}: {document['sessions']} sessions x {document['symbols']} symbols, "
                f"{document['present_rows']:,} of {document['expected_rows']:,} rows present")
    except (ValueError, KeyError):
        said = f"exit {run.returncode}: " + (run.stderr.strip().splitlines() or ["no output"])[-1]
    return run.wall, run.max_rss_mb, said


def data_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in (root / "raw-data").glob("*.parquet"))


def whole_and_clean(root: Path, clean: Path, repeats: int = 3) -> dict:
    """The whole dataset into one frame against reading the clean file (every row of load(), one zstd Parquet
    file, polars' defaults; written first if missing), and the floor under the first. Each is the median of
    `repeats` runs in a row in this process: the first large allocations after a big frame is freed cost
    more than the work (a clean read right after a load takes 1.6x one after another clean read), so each
    is timed after its own kind. {"whole": DataAggregator(root).load() s, "clean": polars reading the clean
    file s, "fetches": load_fetches() s (the files read as stored, nothing dropped), "ordering": s of
    polars' own sort of those rows by (symbol, date) (what any answer sorted by symbol costs when the files
    are sorted by month: no newest-wins rule in it), "rows", "clean_bytes"}."""
    import polars as pl

    from stockstream_cli.dataset.aggregate import DataAggregator

    aggregator = DataAggregator(str(root))
    if not clean.exists():
        aggregator.load().write_parquet(clean, compression="zstd")

    def median_of(work) -> tuple[float, object]:
        times, result = [], None
        for _ in range(repeats):
            result = None  # the previous result freed before the next run, as a caller's would be
            started = time.perf_counter()
            result = work()
            times.append(time.perf_counter() - started)
        return statistics.median(times), result

    clean_read, _ = median_of(lambda: pl.read_parquet(clean))
    whole, frame = median_of(aggregator.load)
    rows = frame.height
    del frame
    reading, fetches = median_of(aggregator.load_fetches)
    ordering, _ = median_of(lambda: fetches.sort("symbol", "date"))
    return {"whole": whole, "clean": clean_read, "fetches": reading, "ordering": ordering, "rows": rows,
            "clean_bytes": clean.stat().st_size}


def whole_and_clean_process(root: Path, clean: Path) -> dict:
    """whole_and_clean in a process of its own: the frames this process built before (the earlier stores')
    do not weigh on its allocations, and it is what a user's session that loads the dataset starts from."""
    code = ("import json, sys; from pathlib import Path; from benchmarks.dataset_bench import whole_and_clean; "
            "print(json.dumps(whole_and_clean(Path(sys.argv[1]), Path(sys.argv[2]))))")
    run = run_process([sys.executable, "-c", code, str(root), str(clean)], env=installed_env(),
                      cwd=Path(__file__).resolve().parent.parent)
    if run.returncode != 0:
        raise RuntimeError(f"measuring the whole dataset failed: {run.stderr.strip()[-500:]}")
    return json.loads(run.stdout)


def compaction_step(root: Path, scratch: Path, built: dict) -> tuple[float, dict]:
    """The pipeline's compaction step after one more day: a copy of the store's data files (hard links: every
    write is a rename, so the built store stays as it is) gets the next session's batch files, then
    compact_earlier_days of that session folds the last day's batch files into its month's file."""
    from stockstream_cli import calendar
    from stockstream_cli.dataset import datafile, layout
    from stockstream_cli.dataset.compact import compact_earlier_days
    from stockstream_cli.dataset.store import open_store

    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "raw-data").mkdir(parents=True)
    for path in (root / "raw-data").iterdir():
        os.link(path, scratch / "raw-data" / path.name)
    last = dt.date.fromisoformat(built["last"])
    following = calendar.session_on_or_after(last + dt.timedelta(days=1))
    store = open_store(str(scratch))
    for key in store.list(layout.batch_data_prefix(last)):  # the next run's files: the last day's, a day on
        number = layout.parse_batch_data_key(key)[1]
        import polars as pl

        rows = pl.read_parquet(store.get(key)).with_columns(
            pl.lit(f"{following.isoformat()}T08:00:00.000Z").alias("fetch_timestamp"))
        store.put(layout.batch_data_key(following, number), datafile.to_parquet_bytes(rows))
    started = time.perf_counter()
    result = compact_earlier_days(store, following, command="benchmark")
    elapsed = time.perf_counter() - started
    shutil.rmtree(scratch, ignore_errors=True)
    return elapsed, result


def s3_loads(root: Path, day: str, latency: float) -> dict[str, tuple[float, float, int]]:
    """load --symbols and load --date as processes against the store's raw-data/ on moto behind the proxy."""
    from benchmarks.latency_proxy import LatencyProxy
    from benchmarks.read_bench import moto_s3, upload
    from stockstream_cli.dataset import layout

    files = {f"raw-data/{path.name}": path.read_bytes() for path in (root / "raw-data").iterdir()}
    found = {}
    with moto_s3(own_process=True) as endpoint:
        bucket = "stockstream-b9"
        upload(files, bucket)
        with LatencyProxy.in_own_process(endpoint, latency=latency) as proxy:
            extra = {"AWS_ENDPOINT_URL": proxy.url}
            found["symbol"] = cold_and_warm(f"s3://{bucket}", ["--symbols", LOAD_SYMBOL], extra)
            found["date"] = cold_and_warm(f"s3://{bucket}", ["--date", day], extra)
            months = sorted(key for key in files if layout.parse_compacted_data_key(key) is not None)
            found["polars"] = polars_symbol_reads(proxy.url, bucket, months)
    return found


def polars_symbol_reads(endpoint: str, bucket: str, keys: list[str]) -> tuple[float, int, int]:
    """(seconds, rows, files) of polars' own S3 reader (Rust, in this process: no start-up, little client CPU)
    reading LOAD_SYMBOL's rows of these files: the same footer and row-group requests a symbol's history
    costs, so what the server side alone allows."""
    import polars as pl

    options = {"aws_endpoint_url": endpoint, "aws_allow_http": "true", "aws_region": os.environ["AWS_DEFAULT_REGION"],
               "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
               "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"]}
    started = time.perf_counter()
    frame = pl.scan_parquet([f"s3://{bucket}/{key}" for key in keys], storage_options=options).filter(
        pl.col("symbol") == LOAD_SYMBOL).collect()
    return time.perf_counter() - started, frame.height, len(keys)


def measure(*, years: list[float], work: Path, cache: Path | None = None, batches: int = BATCHES, s3: bool = True,
            latency: float = S3_LATENCY, check_all: bool = True) -> list[Figure]:
    folder = cache or work
    compile_once()
    figures: list[Figure] = [Figure("B9", "a process importing polars and the CLI, nothing more (every `load` "
                                          "process's floor)", start_up_floor(), "s", note="median of 3")]
    at: dict[int, dict[str, float]] = {}
    for count in sorted(years):
        label = f"{count:g} y"
        root = folder / (f"b9-{count:g}y" + ("" if batches == BATCHES else f"-{batches}b"))
        started = time.perf_counter()
        built = build(root, count, batches)
        building = time.perf_counter() - started
        at[count] = {}
        size = (f"{built['sessions']} sessions x {built['symbols']} symbols = {built['rows']:,} rows; "
                f"{built['stored_rows']:,} stored")
        day = built["last"] if count <= 1 else _middle_session(built)
        local_symbol = cold_and_warm(str(root), ["--symbols", LOAD_SYMBOL])
        local_date = cold_and_warm(str(root), ["--date", day])
        figures += [
            Figure("B9", f"[{label}] store built", building, "s", note=size + (" (kept from an earlier run)"
                                                                              if building < 5 else "")),
            *_load_figures(label, "local", local_symbol, local_date, day, count == max(years), (0.5, 0.5)),
        ]
        if s3:
            remote = s3_loads(root, day, latency)
            figures += _load_figures(label, f"S3 +{latency * 1000:g} ms/request", remote["symbol"], remote["date"],
                                     day, count == max(years), (2.0, 2.0))
            seconds, rows, months = remote["polars"]
            figures.append(Figure("B9", f"[{label}] S3 +{latency * 1000:g} ms/request: the same reads of "
                                        f"{LOAD_SYMBOL}'s rows by polars' own S3 reader, in process", seconds, "s",
                                  note=f"{rows:,} rows (every fetch) from {months} month files, a footer and a row "
                                       f"group each: the floor the server side sets"))
        step, result = compaction_step(root, work / "b9-compaction", built)
        at[count]["compaction"] = step
        one = at[min(at)]["compaction"]
        figures.append(Figure("B9", f"[{label}] the pipeline's compaction step (compact_earlier_days, one more day)",
                              step, "s", *((f"<= 1.2x the {min(at):g} y step", step <= 1.2 * one) if count == max(years)
                                          and count != min(years) else ("", None)),
                              note=f"{result['files']} batch files into {', '.join(result['months'])}; "
                                   f"{step / one:.2f}x the {min(at):g} y step"))
        last_year_start = (dt.date.fromisoformat(built["last"]) - dt.timedelta(days=364)).isoformat()
        checks = [("the last year", last_year_start)]
        if check_all and count > 1:
            checks.append((f"all {count:g} years", built["first"]))
        for what, start in checks:
            wall, rss, said = check_process(root, start, built["last"])
            whole_range = what.startswith("all") and count == max(years)
            figures += [
                Figure("B9", f"[{label}] check of {what}: wall time", wall, "s",
                       *(("< 60 s", wall < 60) if whole_range else ("", None)), note=said),
                Figure("B9", f"[{label}] check of {what}: peak RSS", rss, "MB",
                       *(("< 1024 MB", rss < 1024) if whole_range else ("", None)), note=said),
            ]
        clean = root.with_name(root.name + "-clean.parquet")
        timed = whole_and_clean_process(root, clean)
        whole, read, rows, clean_bytes = timed["whole"], timed["clean"], timed["rows"], timed["clean_bytes"]
        floor = timed["fetches"] + timed["ordering"]
        stored = data_bytes(root)
        last = count == max(years)
        figures += [
            Figure("B9", f"[{label}] data files' bytes vs one clean zstd Parquet file", stored / clean_bytes, "x",
                   *(("<= 2x", stored / clean_bytes <= 2) if last else ("", None)),
                   note=f"{stored / 1e6:.1f} MB in raw-data/ against {clean_bytes / 1e6:.1f} MB for the "
                        f"{rows:,} rows of load()"),
            Figure("B9", f"[{label}] the whole dataset into one frame (DataAggregator.load()) vs reading the clean file",
                   whole / read, "x", *(("<= 3x", whole / read <= 3) if last else ("", None)),
                   note=f"{whole:.2f} s against {read:.2f} s; {rows:,} rows"),
            Figure("B9", f"[{label}] its floor: the files read as stored (load_fetches), then sorted by (symbol, date) "
                         f"(polars' sort), vs reading the clean file", floor / read, "x",
                   note=f"{timed['fetches']:.2f} s reading + {timed['ordering']:.2f} s sorting against {read:.2f} s"),
        ]
    return figures


def _middle_session(built: dict) -> str:
    from stockstream_cli import calendar

    first, last = dt.date.fromisoformat(built["first"]), dt.date.fromisoformat(built["last"])
    return calendar.session_on_or_before(first + (last - first) / 2).isoformat()


def _load_figures(label: str, where: str, symbol: tuple, date: tuple, day: str, targeted: bool,
                  limits: tuple[float, float]) -> list[Figure]:
    figures = []
    for (cold, warm, rows), what, limit in ((symbol, f"`load --symbols {LOAD_SYMBOL}` (its whole history)", limits[0]),
                                            (date, f"`load --date {day}` (every symbol)", limits[1])):
        cold_target = (f"< {limit:g} s", cold < limit) if targeted else ("", None)
        figures += [
            Figure("B9", f"[{label}] {where}: {what} process, cold", cold, "s", *cold_target,
                   note=f"{rows:,} rows; an empty cache folder"),
            Figure("B9", f"[{label}] {where}: {what} process, warm", warm, "s",
                   *((f"< {limit:g} s", warm < limit) if targeted else ("", None)),
                   note="median of 3 after the first, the same cache folder"),
        ]
    return figures
