"""The trace reader turns Azure, BurstGPT and Mooncake files into one table, and bad files into one-line errors."""

from __future__ import annotations

import importlib.util

import pytest

from profiler.errors import UserError
from profiler.load.traces import read_trace
from tests.conftest import ROOT

TRACES = ROOT / "configs" / "traces"


def _make_traces():
    spec = importlib.util.spec_from_file_location("make_traces", TRACES / "make_traces.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MT = _make_traces()


def gap_cv(df) -> float:
    gaps = df["arrival_s"].diff().dropna()
    return float(gaps.std() / gaps.mean())


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("azure_conv_2023.csv", "azure"),
        ("azure_code_2024.csv", "azure"),
        ("burstgpt.csv", "burstgpt"),
        ("burstgpt_old.csv", "burstgpt"),
        ("mooncake.jsonl", "mooncake"),
    ],
)
def test_shipped_traces_parse(name, fmt):
    df = read_trace(TRACES / name)
    assert df.attrs["format"] == fmt
    assert list(df.columns) == ["arrival_s", "input_tokens", "output_tokens", "prefix_blocks"]
    assert len(df) == 200
    assert df["arrival_s"].iloc[0] == 0.0
    assert df["arrival_s"].is_monotonic_increasing
    assert str(df["input_tokens"].dtype) == "int64" and str(df["output_tokens"].dtype) == "int64"
    if fmt == "mooncake":
        assert all(isinstance(b, list) and b for b in df["prefix_blocks"])
    else:
        assert df["prefix_blocks"].isna().all()


def within(value: float, target: float, factor: float) -> bool:
    return target / factor <= value <= target * factor


def test_conversation_trace_shape():
    df = read_trace(TRACES / "azure_conv_2023.csv")
    assert within(df["input_tokens"].median(), MT.CONV["input_p50"], 1.3)
    assert within(df["output_tokens"].median(), MT.CONV["output_p50"], 1.3)
    assert within(len(df) / df["arrival_s"].iloc[-1], MT.CONV["rate"], 1.5)
    assert 0.7 <= gap_cv(df) <= 1.6


def test_code_trace_is_bursty():
    df = read_trace(TRACES / "azure_code_2024.csv")
    assert within(df["input_tokens"].median(), MT.CODE["input_p50"], 1.3)
    assert within(df["output_tokens"].median(), MT.CODE["output_p50"], 1.5)
    assert within(len(df) / df["arrival_s"].iloc[-1], MT.CODE["rate"], 1.5)
    assert gap_cv(df) > 2
    text = (TRACES / "azure_code_2024.csv").read_text().splitlines()[1:]
    assert any("." not in row.split(",")[0] for row in text)  # some rows on a whole second, without a fraction
    assert all(row.split(",")[0].endswith("+00:00") for row in text)


def test_burstgpt_keeps_failed_requests():
    for name in ("burstgpt.csv", "burstgpt_old.csv"):
        df = read_trace(TRACES / name)
        assert (df["output_tokens"] == 0).sum() > 0


def test_mooncake_prefixes_are_shared():
    df = read_trace(TRACES / "mooncake.jsonl")
    firsts = [b[0] for b in df["prefix_blocks"]]
    assert len(set(firsts)) < len(firsts)
    for blocks, tokens in zip(df["prefix_blocks"], df["input_tokens"], strict=True):
        assert len(blocks) == -(-tokens // MT.BLOCK_TOKENS)


def test_generator_is_deterministic(tmp_path):
    MT.main(["--seed", "0", "--out", str(tmp_path)])
    for name in ("azure_conv_2023.csv", "azure_code_2024.csv", "burstgpt.csv", "burstgpt_old.csv", "mooncake.jsonl"):
        assert (tmp_path / name).read_text() == (TRACES / name).read_text(), name


# hand-written files with known values


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_azure_2023_seven_digit_fractions(tmp_path):
    path = write(
        tmp_path,
        "a.txt",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:46.6805901,396,109\n2023-11-16 18:15:48.0000000,879,0\n",
    )
    df = read_trace(path)
    assert df.attrs["format"] == "azure"
    assert df["arrival_s"].tolist() == pytest.approx([0.0, 1e-7, 1.3194100], abs=1e-9)
    assert df["arrival_s"].iloc[1] > 0
    assert df["input_tokens"].tolist() == [374, 396, 879]
    assert df["output_tokens"].tolist() == [44, 109, 0]
    assert df["prefix_blocks"].tolist() == [None, None, None]


def test_azure_2024_tz_aware_and_whole_seconds(tmp_path):
    path = write(
        tmp_path,
        "b.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00.009930+00:00,4808,10\n"
        "2024-05-10 00:00:01+00:00,3180,8\n2024-05-10 02:00:00.5+02:00,110,27\n",
    )
    with pytest.raises(UserError, match="line 4: timestamp goes backwards"):  # 02:00:00.5+02:00 is 00:00:00.5 UTC
        read_trace(path)
    path2 = write(
        tmp_path,
        "c.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00.009930+00:00,4808,10\n"
        "2024-05-10 00:00:01+00:00,3180,8\n2024-05-10 02:00:02.5+02:00,110,27\n",
    )
    df = read_trace(path2)
    assert df["arrival_s"].tolist() == pytest.approx([0.0, 0.99007, 2.49007], abs=1e-9)
    assert df["input_tokens"].tolist() == [4808, 3180, 110]
    assert df["output_tokens"].tolist() == [10, 8, 27]


def test_burstgpt_old_columns(tmp_path):
    path = write(
        tmp_path,
        "old.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5.0,ChatGPT,472,18,490,Conversation log\n45.5,GPT-4,1087,0,1087,API log\n45.5,ChatGPT,12,300,312,Conversation log\n",
    )
    df = read_trace(path)
    assert df.attrs["format"] == "burstgpt"
    assert df["arrival_s"].tolist() == [0.0, 40.5, 40.5]
    assert df["input_tokens"].tolist() == [472, 1087, 12]
    assert df["output_tokens"].tolist() == [18, 0, 300]


def test_burstgpt_full_columns(tmp_path):
    path = write(
        tmp_path,
        "new.csv",
        "Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "100.25,7,3.5,ChatGPT,10,20,30,Conversation log\n101,7,1.0,ChatGPT,11,0,11,Conversation log\n102.75,8,2.0,GPT-4,12,22,34,API log\n",
    )
    df = read_trace(path)
    assert df["arrival_s"].tolist() == [0.0, 0.75, 2.5]
    assert df["input_tokens"].tolist() == [10, 11, 12]
    assert df["output_tokens"].tolist() == [20, 0, 22]


def test_mooncake_lines(tmp_path):
    path = write(
        tmp_path,
        "trace.csv",  # the extension does not matter: the content decides
        '{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59]}\n'
        '{"timestamp": 30535, "input_length": 600, "output_length": 3, "hash_ids": [46, 60]}\n'
        "\n"
        '{"timestamp": 30535, "input_length": 1, "output_length": 0, "hash_ids": []}\n',
    )
    df = read_trace(path)
    assert df.attrs["format"] == "mooncake"
    assert df["arrival_s"].tolist() == pytest.approx([0.0, 3.053, 3.053])
    assert df["input_tokens"].tolist() == [6955, 600, 1]
    assert df["output_tokens"].tolist() == [52, 3, 0]
    assert df["prefix_blocks"].tolist() == [list(range(46, 60)), [46, 60], []]


# bad input: one line naming the file and, where it applies, the line

AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
BAD = [
    ("empty", "", None, "empty"),
    ("blank", "\n\n", None, "empty"),
    ("header only", AZURE, None, "no requests"),
    ("unknown header", "time,in,out\n1,2,3\n", 1, "TIMESTAMP,ContextTokens,GeneratedTokens"),
    ("bad timestamp", AZURE + "2023-11-16 18:15:46.6805900,1,2\nyesterday,3,4\n", 3, "TIMESTAMP"),
    ("backwards", AZURE + "2023-11-16 18:15:46.5,1,2\n2023-11-16 18:15:47.5,1,2\n2023-11-16 18:15:47.0,1,2\n", 4, "backwards"),
    ("negative tokens", AZURE + "2023-11-16 18:15:46.5,1,2\n2023-11-16 18:15:47.5,-1,2\n", 3, "ContextTokens"),
    ("fractional tokens", AZURE + "2023-11-16 18:15:46.5,1,2.5\n", 2, "GeneratedTokens"),
    ("text tokens", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n1.0,ChatGPT,ten,1,11,API log\n", 2, "Request tokens"),
    ("burstgpt bad timestamp", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\nnoon,ChatGPT,1,1,2,API log\n", 2, "Timestamp"),
    ("burstgpt backwards", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n9.0,a,1,1,2,b\n8.0,a,1,1,2,b\n", 3, "backwards"),
    ("malformed json", '{"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": [1]}\n{"timestamp": 5, "input_length": \n', 2, "JSON"),
    ("json missing key", '{"timestamp": 0, "input_length": 1, "output_length": 1}\n{"timestamp": 5, "input_length": 1}\n', 2, "output_length"),
    ("json backwards", '{"timestamp": 10, "input_length": 1, "output_length": 1}\n{"timestamp": 5, "input_length": 1, "output_length": 1}\n', 2, "backwards"),
    ("json negative", '{"timestamp": 10, "input_length": -4, "output_length": 1}\n', 1, "input_length"),
    ("json bad hash_ids", '{"timestamp": 10, "input_length": 4, "output_length": 1, "hash_ids": ["a"]}\n', 1, "hash_ids"),
    ("json bad timestamp", '{"timestamp": "10", "input_length": 4, "output_length": 1}\n', 1, "timestamp"),
]


@pytest.mark.parametrize("case, text, line, word", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line(tmp_path, case, text, line, word):
    path = write(tmp_path, "trace.dat", text)
    with pytest.raises(UserError) as info:
        read_trace(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    if line is not None:
        assert f"line {line}:" in message
    assert word in message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(UserError, match="no such trace file") as info:
        read_trace(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
