"""bench/bench_loader.py's daily-refresh copy: one new bar a file, one the price guard accepts
(no database)."""

from __future__ import annotations

from pathlib import Path

from bench.bench_loader import grow_by_one_line

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def test_every_file_gains_one_moving_bar_on_the_next_weekday(tmp_path: Path) -> None:
    data, grown = tmp_path / "data", tmp_path / "grown"
    files = {
        "stocks/AAA.csv": HEADER
        + "2020-04-02,10,11,9,10.5,10.0,1000\n"
        + "2020-04-03,10.5,11,10,10.25,9.75,1200\n",
        "etfs/BBB.csv": HEADER + "2020-04-01,20,21,19,20,20,500\n",
        "stocks/EMPTY.csv": HEADER + "2020-04-01,1,1,1,1,1,1\n2020-04-02,,,,,,\n",
    }
    for name, text in files.items():
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text(text)

    assert grow_by_one_line(data, grown) == 3
    bars = {}
    for name, text in files.items():
        after = (grown / name).read_text()
        assert after.startswith(text) and after[len(text) :].count("\n") == 1, name
        bars[name] = after[len(text) :].rstrip("\n").split(",")

    # Friday 2020-04-03 -> Monday; the close moves (a repeated close would be held), at most 1%,
    # the open is the last close, the bar is whole, adj_close moves by the same ratio.
    day, open_, high, low, close, adj_close, volume = bars["stocks/AAA.csv"]
    assert day == "2020-04-06" and float(open_) == 10.25 and volume == "1200"
    assert float(close) != 10.25 and abs(float(close) / 10.25 - 1) <= 0.01
    assert float(high) >= max(float(open_), float(close)) >= min(float(open_), float(close)) >= float(low)
    assert abs(float(adj_close) / 9.75 - float(close) / 10.25) < 1e-12
    assert bars["etfs/BBB.csv"][0] == "2020-04-02" and float(bars["etfs/BBB.csv"][4]) != 20
    assert bars["stocks/EMPTY.csv"] == ["2020-04-03", "", "", "", "", "", ""]
    # The same input gives the same bars (the benchmark's runs compare like with like).
    again = tmp_path / "again"
    grow_by_one_line(data, again)
    assert all((again / name).read_text() == (grown / name).read_text() for name in files)
