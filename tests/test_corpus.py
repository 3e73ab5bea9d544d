"""char-lm on any corpus through Hugging Face datasets: a saved Dataset, a DatasetDict's splits, a .txt file; the
text column, the joined text, its vocabulary and split point, the record's name; one-line errors offline."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

from base.errors import ReproError
from datamodules.corpus import load_corpus
from datamodules.text import TextDataConfig, TextDataModule, decode
from tests.conftest import tiny_text


@pytest.fixture
def hf(tmp_path, monkeypatch):
    """The datasets library (the test is skipped without it), its cache in this test's folder, offline."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REPRO_OFFLINE", "1")
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    return datasets


def one_line(call, match: str) -> str:
    with pytest.raises(ReproError, match=match) as e:
        call()
    assert "\n" not in str(e.value)
    return str(e.value)


ROWS = tiny_text(lines=60).splitlines()  # play-like lines, blank ones included: about 2,400 characters


def test_a_saved_dataset_becomes_one_text_split_as_tiny_shakespeare(hf, tmp_path):
    folder = tmp_path / "plays"
    hf.Dataset.from_dict({"text": ROWS, "act": list(range(len(ROWS)))}).save_to_disk(str(folder))
    dm = TextDataModule(TextDataConfig(dataset=str(folder), window_len=16))
    t = dm.load()
    joined = "\n".join(ROWS)  # the only string column, its rows joined by "\n" (the int column is not text)
    n = int(len(joined) * 0.9)  # nanoGPT's split: the last 10% of the characters are the validation text
    assert t.vocab == "".join(sorted(set(joined)))
    assert decode(t.train, t.vocab) == joined[:n] and decode(t.val, t.vocab) == joined[n:]
    assert t.fingerprint == hashlib.sha256(joined.encode()).hexdigest()[:16]
    info = dm.data_info()
    assert info["name"] == f"plays (train, {len(joined):,} characters)"
    assert info["source"] == str(folder.resolve()) and info["text_column"] == "text" and info["splits"] == ["train"]


def test_splits_are_joined_train_validation_test_then_the_others_by_name(hf, tmp_path):
    parts = {"test": ["T1"], "zeta": ["Z"], "validation": ["V1", "V2"], "train": ["A", "", "B"], "extra": ["E"]}
    hf.DatasetDict({k: hf.Dataset.from_dict({"text": v}) for k, v in parts.items()}).save_to_disk(str(tmp_path / "d"))
    c = load_corpus(str(tmp_path / "d"))
    assert c.splits == ("train", "validation", "test", "extra", "zeta")
    assert c.text == "A\n\nB\nV1\nV2\nT1\nE\nZ" and c.name == "d (train+validation+test+extra+zeta, 17 characters)"


def test_a_text_file_is_read_line_by_line(hf, tmp_path):
    path = tmp_path / "verse.txt"
    path.write_text("ROMEO:\nBut soft!\n\nJULIET:\nAy me.\n")
    c = load_corpus(str(path))
    assert c.text == "ROMEO:\nBut soft!\n\nJULIET:\nAy me." and c.splits == ("train",) and c.column == "text"
    assert c.name == "verse.txt (train, 32 characters)"
    json_file = tmp_path / "rows.jsonl"
    json_file.write_text("".join(json.dumps({"id": i, "body": r}) + "\n" for i, r in enumerate(["x", "yz"])))
    assert load_corpus(str(json_file)).text == "x\nyz"  # read by suffix; the only string column
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "train.txt").write_text("a\nb\n")
    (folder / "test.txt").write_text("c\n")
    assert load_corpus(str(folder)).text == "a\nb\nc"  # a folder of files: splits by their names
    other = tmp_path / "verse.doc"
    other.write_text("x\n")
    one_line(lambda: load_corpus(str(other)), r"a file must end in one of \.txt")


def test_the_text_column_is_the_only_string_column_else_text_else_an_error(hf, tmp_path):
    def saved(name, columns):
        hf.Dataset.from_dict(columns).save_to_disk(str(tmp_path / name))
        return str(tmp_path / name)

    two = saved("two", {"title": ["t1", "t2"], "body": ["b1", "b2"], "n": [1, 2]})
    message = one_line(lambda: load_corpus(two), "cannot tell which column holds the text")
    assert "'title', 'body'" in message and "data.text_column" in message and "'n'" not in message
    assert load_corpus(two, "body").text == "b1\nb2" and load_corpus(two, "body").column == "body"
    one_line(lambda: load_corpus(two, "n"), r"data.text_column='n' holds .*int64.*, not text; the string columns")
    one_line(lambda: load_corpus(two, "nope"), "data.text_column='nope' is not a column")
    named = saved("named", {"title": ["t"], "text": ["the text"]})
    assert load_corpus(named).text == "the text"  # several string columns: the one named "text"
    large = hf.Dataset.from_dict(
        {"n": [1], "words": ["a b"]}, features=hf.Features({"n": hf.Value("int32"), "words": hf.Value("large_string")})
    )
    large.save_to_disk(str(tmp_path / "large"))
    assert load_corpus(str(tmp_path / "large")).text == "a b"


def test_the_form_of_data_dataset_is_checked_without_reading_anything(hf, tmp_path):
    for good in ("tinyshakespeare", "hf:tiny_shakespeare", "hf:Salesforce/wikitext:wikitext-2-raw-v1", "no/such/dir"):
        TextDataConfig(dataset=good).validate()
    for bad in ("hf:", "hf:a b", "hf:x/y/z", "hf:name:", "", " "):
        with pytest.raises(ValueError):
            TextDataConfig(dataset=bad).validate()
    from engine.registry import get

    one_line(
        lambda: get("char-lm").resolve("bigram", "smoke", {"data.dataset": "hf:two words"}),
        r"bad value for data.dataset: 'hf:two words' \(an hf: data set is hf:<name>\[:<config>\]",
    )
    missing = TextDataModule(TextDataConfig(dataset=str(tmp_path / "absent")))
    one_line(missing.load, "is no file or folder; it must be tinyshakespeare, hf:<name>")
    one_line(TextDataModule(TextDataConfig(text_column="body")).load, "data.text_column applies to hf: and local")


def test_an_hf_name_not_in_the_cache_offline_is_one_line(hf, tmp_path):
    message = one_line(TextDataModule(TextDataConfig(dataset="hf:no-such/corpus")).load, "not in the datasets cache")
    assert "hf:no-such/corpus" in message and str(tmp_path / "cache" / "hf") in message


def test_an_hf_corpus_in_the_cache_loads_offline(hf, tmp_path):
    """A hub data set cached by an earlier online load, in the layout datasets gives it
    (<namespace>___<name>/<config>/<version>/<hash>/<name>-<split>.arrow); made here from local parquet files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = {}
    for split, rows in (("test", ["T"]), ("train", ["A", "B"])):
        files[split] = str(tmp_path / f"{split}.parquet")
        pq.write_table(pa.table({"text": rows, "id": list(range(len(rows)))}), files[split])
    hf.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "build"))
    built = next((tmp_path / "build" / "parquet").glob("*/*/*/dataset_info.json")).parent
    cached = tmp_path / "cache" / "hf" / "someone___plays" / "default" / "0.0.0" / "abc"
    cached.mkdir(parents=True)
    info = json.loads((built / "dataset_info.json").read_text())
    (cached / "dataset_info.json").write_text(json.dumps({**info, "builder_name": "plays", "dataset_name": "plays"}))
    for split in files:
        (cached / f"plays-{split}.arrow").write_bytes((built / f"parquet-{split}.arrow").read_bytes())
    c = load_corpus("hf:someone/plays")
    assert (
        c.text == "A\nB\nT"
        and c.name == "hf:someone/plays (train+test, 5 characters)"
        and c.source == "hf:someone/plays"
    )


def test_without_the_datasets_library_it_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    (tmp_path / "c.txt").write_text("x\n")
    for spec in ("hf:tiny_shakespeare", str(tmp_path / "c.txt")):
        one_line(lambda: load_corpus(spec), "needs the Hugging Face datasets library: pip install datasets")


def test_a_smoke_run_on_a_local_corpus_records_its_name_and_fingerprint(hf, data_env, tmp_path, capsys):
    from engine.cli import main

    rows = tiny_text(lines=400).splitlines()  # enough for the smoke profile's 4,096 + 1,024 + 1,024 characters
    hf.Dataset.from_dict({"text": rows}).save_to_disk(str(tmp_path / "corpus"))
    args = ["run", "char-lm", "--profile", "smoke", "--variant", "bigram", "--no-report", "--wandb", "off"]
    assert main([*args, "--set", f"data.dataset={tmp_path / 'corpus'}"]) == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "runs/char-lm/smoke/bigram/seed0/record.json").read_text())
    data, joined = record["provenance"]["data"], "\n".join(rows)
    assert data["name"] == f"corpus (train, {len(joined):,} characters)" and data["vocab_size"] == len(set(joined))
    assert data["fingerprint"] == hashlib.sha256(joined.encode()).hexdigest()[:16]
    assert record["config"]["data"]["dataset"] == str(tmp_path / "corpus")
    capsys.readouterr()
    bad = ["--set", "data.dataset=hf:no-such/corpus", "--seed", "1"]
    assert main([*args, *bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("repro: error: hf:no-such/corpus is not in the datasets cache")
