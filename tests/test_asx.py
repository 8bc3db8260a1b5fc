"""The ASX list library: both formats, every real failure body, the shrink guard, retries, diff, batches, the CSV."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from asx_fake import (
    FAILURE_BODIES,
    MARKIT_SAMPLE,
    OLD_FORMAT_SAMPLE,
    PARTIAL_1130,
    REORDERED_SAMPLE,
    ListServer,
    codes_in,
    fake_get,
    make_codes,
    markit_csv,
)
from stockstream_cli.sources import asx
from stockstream_cli.dataset.symbols import Listing
from stockstream_cli.sources.asx import Company
from stockstream_cli.errors import CorruptFileError, InputError, SourceError
from stockstream_cli.options import flag
from stockstream_cli.settings import MARKIT_URL, Settings
from stockstream_cli.dataset.store import LocalStore
from stockstream_cli.run import symbols as symbols_step
from stockstream_cli.dataset import symbols as stored_symbols

D1, D2, D3 = dt.date(2026, 8, 21), dt.date(2026, 8, 22), dt.date(2026, 8, 23)

FAILURE_MESSAGES = {
    "json_500": 'a JSON document, not a CSV list: {"error":{"code":500,"errors":[{}]}}',
    "apigee_fault": 'a JSON document, not a CSV list: {"fault":{"faultstring":"Error writing request to target"',
    "header_only": "a header and no rows, not a CSV list",
    "bad_gateway": "text with no 'ASX code' header, not a CSV list: 'Bad Gateway'",
    "bot_wall_html": "an HTML page, not a CSV list: 'Request Rejected'",
}


def by_symbol(parsed):
    return {company.symbol: company for company in parsed.companies}


# ------------------------------------------------------------------------------------------ parsing


def test_markit_format_parsed_by_header_name():
    parsed = asx.parse_list(MARKIT_SAMPLE.read_bytes())
    companies = by_symbol(parsed)
    assert len(parsed.companies) == 42 and parsed.skipped == []
    assert [c.symbol for c in parsed.companies] == sorted(companies)
    assert parsed.companies[0].symbol == "10X" and parsed.companies[-1].symbol == "ZNC"
    assert companies["14D"] == Company("14D", "1414 DEGREES LIMITED", "Capital Goods", dt.date(2018, 9, 12), 43541178)
    assert companies["BHP"].market_cap == 334284993458 and companies["BHP"].listing_date == dt.date(1885, 8, 13)
    assert companies["1AD"].industry_group == "Pharmaceuticals, Biotechnology & Life Sciences"
    assert companies["DMP"].company_name == "DOMINO'S PIZZA ENTERPRISES LIMITED"
    assert companies["CCON"].market_cap is None  # "--"
    assert companies["SCX"] == Company("SCX", "SCX.AI HOLDINGS LIMITED", "Class Pend", dt.date(2026, 8, 21), None)  # empty
    assert {"360", "NWSLV", "SGLLV", "CHRCB"} <= set(companies)


def test_old_asx_listed_companies_format():
    parsed = asx.parse_list(OLD_FORMAT_SAMPLE.read_bytes())
    companies = by_symbol(parsed)
    assert len(parsed.companies) == 37 and parsed.skipped == []
    assert companies["14D"] == Company("14D", "1414 DEGREES LIMITED", "Capital Goods", None, None)
    assert companies["T3D"].company_name == "333D LIMITED"
    assert companies["ZAG"].industry_group == "Materials"


def test_columns_found_by_name_whatever_their_order_and_line_endings():
    moved = by_symbol(asx.parse_list(REORDERED_SAMPLE.read_bytes()))
    original = by_symbol(asx.parse_list(MARKIT_SAMPLE.read_bytes()))
    assert len(moved) == 11
    assert all(moved[code] == original[code] for code in moved)


@pytest.mark.parametrize("name", sorted(FAILURE_BODIES))
def test_every_real_failure_body_is_refused_naming_what_came_back(name):
    with pytest.raises(SourceError) as caught:
        asx.parse_list(FAILURE_BODIES[name].read_bytes(), origin="the ASX source answered with")
    assert str(caught.value).startswith("the ASX source answered with " + FAILURE_MESSAGES[name])


def test_empty_body_is_refused():
    with pytest.raises(SourceError, match="an empty body, not a CSV list"):
        asx.parse_list(b"\r\n")


def test_a_few_odd_rows_are_left_out_with_a_note():
    body = markit_csv(make_codes(150)).decode().replace('"00A"', '"bhp"').encode()
    parsed = asx.parse_list(body)
    assert len(parsed.companies) == 149 and "00A" not in by_symbol(parsed) and "bhp" not in by_symbol(parsed)
    assert parsed.skipped == ["row 12: 'bhp' is not an ASX code (3-6 upper-case letters or digits)"]


def test_more_than_one_percent_of_odd_rows_refuses_the_list():
    body = markit_csv(make_codes(10)).decode().replace('"005"', '"BHP.AX"').encode()
    with pytest.raises(SourceError, match=r"1 odd rows out of 10, too many to trust \(first: row 7: 'BHP.AX'"):
        asx.parse_list(body)


def test_duplicates_identical_rows_collapse_different_rows_keep_the_first():
    lines = MARKIT_SAMPLE.read_text().split("\n")
    bhp = next(line for line in lines if line.startswith('"BHP"'))
    body = "\n".join(lines + [bhp]).encode()
    assert asx.parse_list(body).skipped == [] and len(asx.parse_list(body).companies) == 42

    companies = make_codes(200)
    text = markit_csv(companies).decode() + '\n"001","ANOTHER NAME","Energy","01/01/2020",5'
    parsed = asx.parse_list(text.encode())
    assert len(parsed.companies) == 200
    assert by_symbol(parsed)["001"].company_name == "001 HOLDINGS LIMITED"
    assert parsed.skipped == ["row 202: 001 appears again with different details; the first row is kept"]


@pytest.mark.parametrize(
    "text, expected",
    [("123", 123), ("1,234", 1234), ("--", None), ("", None), ("SUSPENDED", None), ("12.6", 13), ("n/a", None),
     ("abc", None)],
)
def test_market_cap(text, expected):
    assert asx.parse_market_cap(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [("13/08/1885", dt.date(1885, 8, 13)), ("2026-08-21", dt.date(2026, 8, 21)), ("", None), ("--", None),
     ("31/02/2020", None)],
)
def test_listing_date(text, expected):
    assert asx.parse_listing_date(text) == expected


# ------------------------------------------------------------------------------------------ batches and the CSV


def test_batches_split_the_ascii_sorted_list():
    codes = make_codes(250)
    listings = stored_symbols.assign_batches([Company(code, code) for code in reversed(codes)], 100)
    assert [item.symbol for item in listings] == codes == sorted(codes)
    assert codes[0] == "000"  # digits sort before letters
    assert stored_symbols.batch_numbers(listings) == [0, 1, 2]
    assert stored_symbols.batch_symbols(listings, 0) == codes[:100]
    assert stored_symbols.batch_symbols(listings, 2) == codes[200:250]
    assert [len(b["symbols"]) for b in stored_symbols.symbol_batches(listings)] == [100, 100, 50]
    assert [b["batchNumber"] for b in stored_symbols.symbol_batches(listings)] == [0, 1, 2]
    with pytest.raises(InputError, match="batch 3 is out of range: valid batch numbers are 0 to 2"):
        stored_symbols.batch_symbols(listings, 3)
    with pytest.raises(InputError, match="^batch_size must be at least 1"):
        stored_symbols.assign_batches([], 0)


def test_csv_written_exactly_and_read_back():
    listings = [
        Listing("BHP", "BHP GROUP LIMITED", "Materials", dt.date(1885, 8, 13), 334284993458, 0),
        Listing("14D", "1414 DEGREES LIMITED", "Capital Goods", dt.date(2018, 9, 12), 43541178, 0),
        Listing("DMP", "DOMINO'S PIZZA, ENTERPRISES", "", None, None, 1),
    ]
    data = stored_symbols.to_csv(listings)
    assert data == (
        b"symbol,company_name,industry_group,listing_date,market_cap,batch_number\n"
        b"14D,1414 DEGREES LIMITED,Capital Goods,2018-09-12,43541178,0\n"
        b"BHP,BHP GROUP LIMITED,Materials,1885-08-13,334284993458,0\n"
        b'DMP,"DOMINO\'S PIZZA, ENTERPRISES",,,,1\n'
    )
    assert stored_symbols.from_csv(data, "k") == sorted(listings, key=lambda item: item.symbol)


@pytest.mark.parametrize(
    "data, reason",
    [(b"a,b\n1,2\n", "header is"), (b"symbol,company_name,industry_group,listing_date,market_cap,batch_number\n", "no rows"),
     (b"symbol,company_name,industry_group,listing_date,market_cap,batch_number\nBHP,B,M,13/08/1885,1,0\n", "line 2"),
     (b"symbol,company_name,industry_group,listing_date,market_cap,batch_number\nbhp,B,M,,1,0\n", "not an ASX code"),
     (b"\xff\xfe\x00", "codec")],
)
def test_read_symbols_names_a_corrupt_file(tmp_path, data, reason):
    store = LocalStore(tmp_path)
    store.put("symbols/2026-08-22-symbols.csv", data)
    with pytest.raises(CorruptFileError, match=f"symbols/2026-08-22-symbols.csv.*{reason}"):
        stored_symbols.read_symbols(store, D2)


def test_read_symbols_when_missing_says_what_to_run(tmp_path):
    with pytest.raises(InputError) as caught:
        stored_symbols.read_symbols(LocalStore(tmp_path), D2)
    assert str(caught.value) == (
        f"no ASX list for 2026-08-22 in {tmp_path}: run `stockstream symbols --date 2026-08-22` first"
    )


# ------------------------------------------------------------------------------------------ the whole step


def settings(**typed):
    return Settings.resolve(**typed)


def write_file(tmp_path, name, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_first_list_then_diff_against_the_latest_earlier_list(tmp_path):
    store = LocalStore(tmp_path / "store")
    first = write_file(tmp_path, "first.csv", markit_csv(["BHP", "CBA", "14D", "NWSLV"]))
    document = symbols_step.update_symbols(store, D1, settings(batch_size=3), from_file=first).to_document()
    assert document == {
        "statusCode": 200,
        "symbols": ["14D", "BHP", "CBA", "NWSLV"],
        "symbolBatches": [{"symbols": ["14D", "BHP", "CBA"], "batchNumber": 0}, {"symbols": ["NWSLV"], "batchNumber": 1}],
        "metadata": {"total_symbols": 4, "num_batches": 2, "s3_key": "symbols/2026-08-21-symbols.csv",
                     "changes": {"added": [], "removed": []}, "previous_key": None},
    }
    assert [item.batch_number for item in stored_symbols.read_symbols(store, D1)] == [0, 0, 0, 1]

    later = write_file(tmp_path, "later.csv", markit_csv(["BHP", "CBA", "14D", "WOW"]))
    store.put("symbols/2026-08-25-symbols.csv", stored_symbols.to_csv(stored_symbols.assign_batches([Company("XYZ", "X")], 1)))  # later: ignored
    document = symbols_step.update_symbols(store, D3, settings(), from_file=later).to_document()
    assert document["metadata"]["previous_key"] == "symbols/2026-08-21-symbols.csv"
    assert document["metadata"]["changes"] == {"added": ["WOW"], "removed": ["NWSLV"]}
    assert document["metadata"]["s3_key"] == "symbols/2026-08-23-symbols.csv"


def test_written_csv_is_exactly_the_contract_columns(tmp_path):
    store = LocalStore(tmp_path / "store")
    symbols_step.update_symbols(store, D2, settings(batch_size=20), from_file=str(MARKIT_SAMPLE)).to_document()
    lines = store.get("symbols/2026-08-22-symbols.csv").decode().split("\n")
    assert lines[0] == "symbol,company_name,industry_group,listing_date,market_cap,batch_number"
    assert lines[1] == "10X,EXULTANT MINING LIMITED,Materials,2025-12-11,4675000,0"
    assert lines[2] == "14D,1414 DEGREES LIMITED,Capital Goods,2018-09-12,43541178,0"
    assert lines[3] == '1AD,ADALTA LIMITED,"Pharmaceuticals, Biotechnology & Life Sciences",2016-08-22,9636507,0'
    assert "CCON,THE CALMER CO INTERNATIONAL LIMITED,Household & Personal Products,2018-12-20,,1" in lines
    assert "SCX,SCX.AI HOLDINGS LIMITED,Class Pend,2026-08-21,,1" in lines
    assert lines[-2] == "ZNC,ZENITH MINERALS LIMITED,Materials,2007-05-29,57923575,2" and lines[-1] == "" and len(lines) == 44


def full_list_stored(tmp_path, count=1838) -> tuple[LocalStore, bytes]:
    store = LocalStore(tmp_path / "store")
    real = codes_in(PARTIAL_1130.read_bytes()) if count >= 1130 else []
    path = write_file(tmp_path, "full.csv", markit_csv(real + make_codes(count - len(real))))
    assert symbols_step.update_symbols(store, D1, settings(), from_file=path).to_document()["metadata"]["total_symbols"] == count
    return store, store.get("symbols/2026-08-21-symbols.csv")


def assert_untouched(store, previous: bytes):
    assert store.list("symbols/") == ["symbols/2026-08-21-symbols.csv"]
    assert store.get("symbols/2026-08-21-symbols.csv") == previous


@pytest.mark.parametrize("name", sorted(FAILURE_BODIES))
def test_every_real_failure_body_from_the_source_is_refused_previous_list_intact(tmp_path, name):
    store, previous = full_list_stored(tmp_path)
    with ListServer().answer((200, FAILURE_BODIES[name].read_bytes(), "text/plain")) as server:
        with pytest.raises(SourceError) as caught:
            symbols_step.update_symbols(store, D2, settings(source_url=server.url, retries=2)).to_document()
    assert f"the ASX source {server.url} answered with {FAILURE_MESSAGES[name]}" in str(caught.value)
    assert str(caught.value).endswith("(3 tries)")
    assert server.hits == 3  # a non-list body may be transient: retried like a 5xx
    assert_untouched(store, previous)


def test_partial_1130_row_list_after_a_full_one_is_refused(tmp_path):
    store, previous = full_list_stored(tmp_path)
    notes = []
    with ListServer().answer((200, PARTIAL_1130.read_bytes())) as server:
        with pytest.raises(SourceError) as caught:
            symbols_step.update_symbols(store, D2, settings(source_url=server.url), note=notes.append).to_document()
    assert server.hits == 3
    assert caught.value.naming(flag) == (  # as the CLI says it
        f"the ASX list from {server.url} has 1,130 symbols (the largest of 3 downloads) but needs at least 1,783 "
        "(97% of the previous list symbols/2026-08-21-symbols.csv); nothing written. "
        "If the market really shrank, run again with --force"
    )
    assert len(notes) == 2 and "downloading again (try 2 of 3)" in notes[0]
    assert_untouched(store, previous)

    with pytest.raises(SourceError, match="has 1,130 symbols but needs at least 1,783"):
        symbols_step.update_symbols(store, D2, settings(), from_file=str(PARTIAL_1130)).to_document()
    assert_untouched(store, previous)


def test_short_download_retried_until_a_full_list_comes(tmp_path):
    store, _ = full_list_stored(tmp_path)
    full = markit_csv(make_codes(1800))
    with ListServer().answer((200, PARTIAL_1130.read_bytes()), (200, full)) as server:
        document = symbols_step.update_symbols(store, D2, settings(source_url=server.url)).to_document()
    assert server.hits == 2 and document["metadata"]["total_symbols"] == 1800
    assert document["metadata"]["num_batches"] == 18


def test_still_short_after_three_tries_keeps_the_largest_and_force_accepts_it(tmp_path):
    store, previous = full_list_stored(tmp_path)
    answers = [(200, PARTIAL_1130.read_bytes()), (200, markit_csv(make_codes(1700))), (200, markit_csv(make_codes(1200)))]
    with ListServer().answer(*answers) as server:
        with pytest.raises(SourceError, match="has 1,700 symbols \\(the largest of 3 downloads\\)"):
            symbols_step.update_symbols(store, D2, settings(source_url=server.url)).to_document()
    assert_untouched(store, previous)

    with ListServer().answer(*answers) as server:
        document = symbols_step.update_symbols(store, D2, settings(source_url=server.url), force=True).to_document()
    assert server.hits == 3 and document["metadata"]["total_symbols"] == 1700
    assert document["symbols"] == make_codes(1700)
    assert len(stored_symbols.read_symbols(store, D2)) == 1700
    assert store.get("symbols/2026-08-21-symbols.csv") == previous


def test_97_percent_boundary(tmp_path):
    store, _ = full_list_stored(tmp_path, count=1000)
    path = write_file(tmp_path, "969.csv", markit_csv(make_codes(969, skip=2000)))
    with pytest.raises(SourceError, match="needs at least 970"):
        symbols_step.update_symbols(store, D2, settings(), from_file=path).to_document()
    path = write_file(tmp_path, "970.csv", markit_csv(make_codes(970, skip=2000)))
    assert symbols_step.update_symbols(store, D2, settings(), from_file=path).to_document()["metadata"]["total_symbols"] == 970


def test_floor_of_1500_guards_the_default_source_only(tmp_path):
    store = LocalStore(tmp_path / "store")
    get = fake_get((200, markit_csv(make_codes(1499))))
    with pytest.raises(SourceError, match="has 1,499 symbols .* needs at least 1,500 \\(the floor of 1,500 for the ASX source\\)"):
        symbols_step.update_symbols(store, D2, settings(), http_get=get).to_document()
    assert len(get.calls) == 3 and get.calls[0] == (MARKIT_URL, 30.0)
    assert store.list() == []

    get = fake_get((200, markit_csv(make_codes(1500))))
    assert symbols_step.update_symbols(store, D2, settings(), http_get=get).to_document()["metadata"]["total_symbols"] == 1500

    small = LocalStore(tmp_path / "small")
    with ListServer().answer((200, markit_csv(["BHP", "CBA"]))) as server:
        document = symbols_step.update_symbols(small, D2, settings(source_url=server.url)).to_document()
    assert server.hits == 1 and document["symbols"] == ["BHP", "CBA"]


def test_timeouts_and_connection_errors_retried_with_exponential_backoff():
    waits = []
    get = fake_get(requests.Timeout(), requests.ConnectionError(), (200, markit_csv(["BHP"])))
    parsed = asx.download_list("http://asx.test/list", settings(retry_wait=1.5, timeout=7), http_get=get,
                               note=lambda _: None, sleep=waits.append)
    assert [c.symbol for c in parsed.companies] == ["BHP"]
    assert waits == [1.5, 3.0] and [call[1] for call in get.calls] == [7.0, 7.0, 7.0]

    waits.clear()
    get = fake_get(requests.Timeout())
    with pytest.raises(SourceError) as caught:
        asx.download_list("http://asx.test/list", settings(retry_wait=2, retries=3, timeout=5), http_get=get,
                          note=lambda _: None, sleep=waits.append)
    assert str(caught.value) == "the ASX source http://asx.test/list did not answer within 5s (4 tries)"
    assert waits == [2, 4, 8] and len(get.calls) == 4


def test_no_sleeping_when_retry_wait_is_zero():
    waits = []
    get = fake_get(requests.Timeout())
    with pytest.raises(SourceError):
        asx.download_list("http://asx.test/list", settings(), http_get=get, note=lambda _: None, sleep=waits.append)
    assert waits == [] and len(get.calls) == 4  # STOCKSTREAM_RETRY_WAIT=0 from conftest; retries default 3


def test_5xx_retried_4xx_not(tmp_path):
    with ListServer().answer((503, b"Service Unavailable"), (502, b"Bad Gateway"), (200, markit_csv(["BHP", "CBA"]))) as server:
        assert len(asx.download_list(server.url, settings(), note=lambda _: None).companies) == 2
    assert server.hits == 3

    with ListServer().answer((404, b"<html><title>Not Found</title></html>")) as server:
        with pytest.raises(SourceError, match=r"answered HTTP 404 Not Found: '<html><title>Not Found</title></html>'$"):
            asx.download_list(server.url, settings(), note=lambda _: None)
    assert server.hits == 1

    with ListServer().answer((500, b'{"error":{"code":500,"errors":[{}]}}')) as server:
        with pytest.raises(SourceError, match=r"answered HTTP 500 Internal Server Error: .*\(2 tries\)$"):
            asx.download_list(server.url, settings(retries=1), note=lambda _: None)
    assert server.hits == 2


def test_connection_refused_is_a_clear_source_error(tmp_path):
    with ListServer() as server:
        url = server.url
    with pytest.raises(SourceError, match=r"cannot connect to the ASX source http://127\.0\.0\.1:\d+/.*\(2 tries\)$"):
        asx.download_list(url, settings(retries=1, timeout=2), note=lambda _: None)


def test_bad_source_url_and_missing_file_are_input_errors_before_any_io(tmp_path):
    store = LocalStore(tmp_path / "store")
    with pytest.raises(InputError, match="^source_url 'ftp://x' is not an http\\(s\\) URL"):
        symbols_step.update_symbols(store, D2, settings(source_url="ftp://x")).to_document()
    with pytest.raises(InputError, match="^from_file .*nope.csv: no such file"):
        symbols_step.update_symbols(store, D2, settings(), from_file=str(tmp_path / "nope.csv")).to_document()
    with pytest.raises(InputError, match="not a file"):
        symbols_step.update_symbols(store, D2, settings(), from_file=str(tmp_path)).to_document()
    assert not (tmp_path / "store").exists()


def test_corrupt_previous_list_is_named(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.put("symbols/2026-08-21-symbols.csv", b"<html>oops</html>")
    with pytest.raises(CorruptFileError, match="symbols/2026-08-21-symbols.csv"):
        symbols_step.update_symbols(store, D2, settings(), from_file=str(MARKIT_SAMPLE)).to_document()
    assert store.list() == ["symbols/2026-08-21-symbols.csv"]


def test_s3_store_round_trip(s3_bucket):
    from stockstream_cli.dataset.store import open_store

    store = open_store(f"s3://{s3_bucket}/asx")
    symbols_step.update_symbols(store, D1, settings(batch_size=10), from_file=str(OLD_FORMAT_SAMPLE)).to_document()
    document = symbols_step.update_symbols(store, D2, settings(batch_size=10), from_file=str(MARKIT_SAMPLE)).to_document()
    assert document["metadata"]["previous_key"] == "symbols/2026-08-21-symbols.csv"
    assert "BHP" in document["metadata"]["changes"]["added"]
    assert [item.symbol for item in stored_symbols.read_symbols(store, D2)] == document["symbols"]
