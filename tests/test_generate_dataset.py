"""bench/generate_dataset.py: determinism, the daily-refresh append, --defect-scale, --flood and
the --measure mode (no database; each test writes a few small datasets into tmp_path)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from bench import generate_dataset as gen

SMALL = ["--files", "60", "--rows", "30000", "--seed", "3"]


def write(out: Path, *args: str) -> Path:
    gen.main(["--out", str(out), *SMALL, *args])
    return out


def price_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.glob("*/*.csv"))}


def data_lines(content: bytes) -> list[str]:
    return content.decode().splitlines()[1:]


def measured(folder: Path):
    return gen.measure([folder], sessions_file=None).set_index("symbol")


def test_same_arguments_give_byte_identical_files(tmp_path):
    args = ["--real-world-defects", "--defect-scale", "3", "--extra-sessions", "4", "--flood", "2:3"]
    first, second = write(tmp_path / "a", *args), write(tmp_path / "b", *args)
    assert price_files(first) == price_files(second)
    assert len(price_files(first)) == 60
    assert (first / gen.FLOOD_FILE).read_bytes() == (second / gen.FLOOD_FILE).read_bytes()
    assert (first / "symbols_valid_meta.csv").read_bytes() == (second / "symbols_valid_meta.csv").read_bytes()


def test_without_real_world_rates_the_files_are_those_of_earlier_versions(tmp_path):
    # The digests of the files the script wrote before per-symbol rates, extra sessions and floods.
    out = tmp_path / "legacy"
    args = [
        "--files",
        "6",
        "--rows",
        "3000",
        "--seed",
        "5",
        "--defect-share",
        "0.01",
        "--malformed-share",
        "0.005",
    ]
    gen.main(["--out", str(out), *args])
    prices = hashlib.sha256(b"".join(price_files(out).values())).hexdigest()
    meta = hashlib.sha256((out / "symbols_valid_meta.csv").read_bytes()).hexdigest()
    assert prices == "77d52da643ebc1a6b9d47724b0b88d519b5439be7378bfc59d2ba408f7831a82"
    assert meta == "ebf514b08efc2b6decabbedf61b11eb1b8b324445709a890703c3b01f0598f34"


@pytest.mark.parametrize(
    "mode", [["--real-world-defects", "--defect-scale", "5"], ["--defect-share", "0.05"]]
)
def test_one_extra_session_appends_exactly_one_line_to_every_file(tmp_path, mode):
    before = price_files(write(tmp_path / "n0", *mode))
    after = price_files(write(tmp_path / "n1", *mode, "--extra-sessions", "1"))
    two = price_files(write(tmp_path / "n2", *mode, "--extra-sessions", "2"))
    assert before.keys() == after.keys() == two.keys()
    for name, content in before.items():
        assert after[name].startswith(content), name
        assert two[name].startswith(after[name]), name
        assert after[name][len(content) :].count(b"\n") == 1, name
        assert after[name][len(content) :].startswith(b"2020-04-02,"), name
        assert two[name][len(after[name]) :].startswith(b"2020-04-03,"), name


def test_an_extra_line_never_repeats_the_line_before(tmp_path):
    # Rates at which most extra lines would repeat the one before (stale runs of zero volume,
    # empty rows after empty rows) if nothing prevented it.
    shares = ["--stale-share", "0.2", "--zero-volume-share", "1", "--empty-share", "0.4"]
    files = price_files(write(tmp_path / "out", "--real-world-defects", *shares, "--extra-sessions", "40"))
    empty_rows = zero_volumes = 0
    for name, content in files.items():
        lines = data_lines(content)
        extra = [i for i, line in enumerate(lines) if line[:10] > "2020-04-01"]
        assert len(extra) == 40, name
        for i in extra:
            assert lines[i].split(",", 1)[1] != lines[i - 1].split(",", 1)[1], (name, lines[i - 1 : i + 1])
            empty_rows += lines[i].endswith(",,,,,,")
            zero_volumes += lines[i].endswith(",0")
    # the extra sessions still carry the defects, at their rates
    assert empty_rows > 0.2 * 40 * len(files)
    assert zero_volumes > 0.4 * 40 * len(files)


def test_defect_scale_zero_plants_nothing(tmp_path):
    table = measured(write(tmp_path / "out", "--real-world-defects", "--defect-scale", "0"))
    counts = table[[f"{name}_count" for name in gen.MEASURED]]
    assert counts.to_numpy().sum() == 0, counts[counts.sum(axis=1) > 0]


def test_defect_scale_multiplies_fixed_rates(tmp_path):
    shares = [f"--{name.replace('_', '-')}={0.002}" for name in gen.DEFECTS]
    args = ["--files", "20", "--rows", "60000", "--defect-share", "0", *shares]
    counts = {}
    for scale in ("1", "4"):
        gen.main(["--out", str(tmp_path / scale), *args, "--defect-scale", scale])
        table = measured(tmp_path / scale)
        counts[scale] = {name: table[f"{name}_count"].sum() for name in gen.DEFECTS}
    for name in gen.DEFECTS:
        assert counts["1"][name] > 40, (name, counts)  # about 120 each
        assert 3.2 < counts["4"][name] / counts["1"][name] < 4.8, (name, counts)


def test_defect_scale_multiplies_the_per_symbol_rates(tmp_path):
    # Below any cap (zero volume's largest measured rate is 1: scales up to 1 stay proportional).
    counts = {}
    for scale in ("0.25", "0.75"):
        table = measured(
            write(
                tmp_path / scale,
                "--files",
                "150",
                "--rows",
                "150000",
                "--real-world-defects",
                "--defect-scale",
                scale,
            )
        )
        counts[scale] = {name: table[f"{name}_count"].sum() for name in gen.DEFECTS}
    for name in ("zero_volume_share", "stale_share", "dividend_share"):
        assert counts["0.25"][name] > 40, (name, counts)
        assert 2.1 < counts["0.75"][name] / counts["0.25"][name] < 3.9, (name, counts)
    total = {scale: sum(by_name.values()) for scale, by_name in counts.items()}
    assert 2.55 < total["0.75"] / total["0.25"] < 3.45, counts


def test_per_symbol_rates_differ_by_group(tmp_path):
    spec = gen.Spec(2000, 2_000_000, 1, 0.0, 0.0, rate_spread=True)
    plans = gen.spread_plans(spec, len(gen.weekdays()))
    groups = {group: [p for p in plans if p.group == group] for group in gen.GROUPS}
    for group, members in groups.items():
        assert abs(len(members) / len(plans) - gen.GROUP_SHARES[group]) < 0.03, group
    assert all(p.length < gen.YOUNG_ROWS for p in groups["young"])
    assert all(p.length >= gen.YOUNG_ROWS for group in ("etf", "penny", "other") for p in groups[group])
    assert all(p.etf for p in groups["etf"]) and not any(p.etf for p in groups["penny"] + groups["other"])
    assert all(p.start_price < gen.PENNY_CLOSE for p in groups["penny"])

    def share_with(group: str, name: str) -> float:
        return sum(name in dict(p.rates) for p in groups[group]) / len(groups[group])

    # ETFs nearly all step their adj ratio (dividends), young listings mostly not
    assert share_with("etf", "dividend_share") > 0.7 > 0.3 > share_with("young", "dividend_share")
    rates = {dict(p.rates).get("zero_volume_share", 0.0) for p in plans}
    assert len(rates) > 1000  # a spread, not one rate


def test_flood_zeroes_volume_only_in_the_listed_symbols_and_last_sessions(tmp_path):
    args = ["--real-world-defects", "--extra-sessions", "6"]
    plain = price_files(write(tmp_path / "plain", *args))
    out = write(tmp_path / "flood", *args, "--flood", "4:5")
    flooded = price_files(out)
    flood = json.loads((out / gen.FLOOD_FILE).read_text())
    assert flood["sessions"] == gen.extra_weekdays(6)[-5:]
    assert len(flood["symbols"]) == 4
    listed = {f"{folder}/{symbol}.csv" for symbol in flood["symbols"] for folder in ("stocks", "etfs")}
    listed &= flooded.keys()
    assert len(listed) == 4
    for name, content in flooded.items():
        if name not in listed:
            assert content == plain[name], name  # untouched
            continue
        lines, before = data_lines(content), data_lines(plain[name])
        in_window = [line[:10] in flood["sessions"] for line in lines]
        assert sum(in_window) == 5, name
        assert lines[:-5] == before[:-5], name  # only the last sessions change
        assert all(line.endswith(",0") for line, window in zip(lines, in_window, strict=True) if window)
        assert not any(line.endswith(",0") for line in before), name  # had no zero volume
    # the first floodable symbols in file order: each symbol before the last listed one either is
    # listed or has a zero volume (or no bar on some flooded session)
    order = sorted(flooded, key=lambda name: name.split("/")[1])
    last = max(order.index(name) for name in listed)
    for name in order[:last]:
        bars = [line for line in data_lines(plain[name]) if not line.endswith(",,,,,,")]
        in_window = sum(line[:10] in flood["sessions"] for line in bars)
        has_zero = any(line.endswith(",0") for line in bars)
        assert name in listed or has_zero or in_window < 5 or len(bars) == in_window, name


# -- --measure on a hand-written universe ---------------------------------------------------------

# AAA: 10 rows on the sessions 2024-01-02 .. 01-16 but 01-15 (which BBB has), each defect once.
AAA = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,10.0,11.0,9.0,10.0,5.0,100
2024-01-03,10.0,11.0,9.0,10.0,5.0,0
2024-01-04,0.0,11.0,9.0,10.5,5.25,100
2024-01-05,,,,,,
2024-01-08,10.0,9.0,11.0,10.0,5.0,100
2024-01-09,40.0,41.0,39.0,40.0,20.0,100
2024-01-10,40.0,41.0,39.0,40.0,20.0,100
2024-01-11,40.0,41.0,39.0,40.0,20.0,100
2024-01-12,40.0,41.0,39.0,40.0,20.0,100
2024-01-16,40.0,41.0,39.0,40.0,22.0,100
"""
SESSIONS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09",
            "2024-01-10", "2024-01-11", "2024-01-12", "2024-01-15", "2024-01-16", "2024-01-17"]  # fmt: skip


def clean_file(closes: list[float]) -> str:
    rows = [f"{day},{c},{c + 0.5},{c - 0.5},{c},{c},1000" for day, c in zip(SESSIONS, closes, strict=True)]
    return "Date,Open,High,Low,Close,Adj Close,Volume\n" + "\n".join(rows) + "\n"


def test_measure_returns_the_rates_planted_in_a_hand_written_folder(tmp_path):
    (tmp_path / "stocks").mkdir()
    (tmp_path / "etfs").mkdir()
    (tmp_path / "stocks" / "AAA.csv").write_text(AAA)
    (tmp_path / "etfs" / "BBB.csv.gz").write_bytes(
        gzip.compress(clean_file([1.0 + i / 10 for i in range(12)]).encode())
    )
    table = measured(tmp_path)
    aaa, bbb = table.loc["AAA"], table.loc["BBB"]
    assert (aaa["folder"], aaa["rows"], aaa["life_sessions"], aaa["median_close"]) == ("stocks", 10, 11, 40.0)
    expected = {name: 0.1 for name in gen.DEFECTS} | {"missing_share": 1 / 11, "repeat_close_share": 0.5}
    assert {name: aaa[name] for name in gen.MEASURED} == pytest.approx(expected, abs=1e-12)
    assert aaa["group"] == "young"  # fewer than 500 rows
    assert (bbb["folder"], bbb["rows"], bbb["group"]) == ("etfs", 12, "young")
    assert all(bbb[name] == 0 for name in gen.MEASURED)
    # pooled over both: 10 + 12 rows, 11 + 12 sessions
    assert gen.pooled_rate(table, "hilo_share") == pytest.approx(1 / 22)
    assert gen.pooled_rate(table, "missing_share") == pytest.approx(1 / 23)


def test_measure_reads_what_the_generator_plants(tmp_path):
    shares = [f"--{name.replace('_', '-')}={0.01}" for name in gen.DEFECTS]
    gen.main(
        ["--out", str(tmp_path / "out"), "--files", "10", "--rows", "60000", "--defect-share", "0", *shares]
    )
    table = measured(tmp_path / "out")
    for name in gen.DEFECTS:
        # each defect at 1%; a few are hidden by another on the same row (a jump with an adj step,
        # High < Low inside a stale run)
        assert 0.0085 < gen.pooled_rate(table, name) < 0.0115, name


def test_groups_follow_rows_folder_and_price():
    assert gen.symbol_group(499, "etfs", 1.0) == "young"
    assert gen.symbol_group(500, "etfs", 1.0) == "etf"
    assert gen.symbol_group(500, "stocks", 4.99) == "penny"
    assert gen.symbol_group(500, "stocks", 5.0) == "other"


def test_flood_option_is_checked():
    assert gen.flood_option("5:15") == (5, 15)
    for bad in ("5", "0:3", "a:b", "1:2:3"):
        with pytest.raises(Exception, match=r"SYMBOL_COUNT:SESSIONS|at least 1"):
            gen.flood_option(bad)
