import gzip

import pytest

from protein_sedd.errors import UserError
from protein_sedd.io.fasta import read_fasta, write_fasta


def test_reads_multiline_records_with_descriptions(tmp_path):
    path = tmp_path / "ok.fa"
    path.write_text(">seq1 first protein\nMKV\nLAG\n>seq2\nacdef*\n")
    records = read_fasta(path)
    assert [(r.id, r.sequence) for r in records] == [("seq1", "MKVLAG"), ("seq2", "ACDEF")]
    assert records[0].description == "seq1 first protein"


def test_reads_gzip_and_crlf(tmp_path):
    path = tmp_path / "ok.fa.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b">a\r\nMKV\r\nLAG\r\n>b\r\nWW\r\n")
    assert [(r.id, r.sequence) for r in read_fasta(path)] == [("a", "MKVLAG"), ("b", "WW")]


def test_invalid_residue_names_file_record_and_position(tmp_path):
    path = tmp_path / "bad.fa"
    path.write_text(">seq1\nMKVLAG\n>seq7\nMKVLAGHEAWT1QR\n")
    with pytest.raises(UserError) as info:
        read_fasta(path)
    assert str(info.value) == f"{path}: record 'seq7': invalid residue '1' at position 12"


def test_write_then_read_round_trip(tmp_path):
    path = tmp_path / "out.fa"
    long = "MKV" * 50
    write_fasta(path, [("d1 length=150", long), ("d2", "ACD")])
    assert [(r.id, r.sequence) for r in read_fasta(path)] == [("d1", long), ("d2", "ACD")]
    assert max(len(line) for line in path.read_text().splitlines()) == 80
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"\n\n  \n", "empty file"),
        (b"MKVLAG\n", "does not start with '>'"),
        (b"\x00\x01\x02binary\xff\xfe", "not a text FASTA file"),
        (b">a\x00\nMK\n", "binary content"),
        (b">a\n>b\nMKV\n", "record 'a': empty sequence"),
        (b">\nMKV\n", "empty header"),
    ],
)
def test_malformed_files_give_one_clear_line(tmp_path, content, message):
    path = tmp_path / "bad.fa"
    path.write_bytes(content)
    with pytest.raises(UserError) as info:
        read_fasta(path)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_fasta(tmp_path / "missing.fa")
    with pytest.raises(UserError, match="is a directory"):
        read_fasta(tmp_path)


def test_duplicate_ids_refused_unless_allowed(tmp_path):
    path = tmp_path / "dup.fa"
    path.write_text(">a\nMK\n>a\nMV\n")
    with pytest.raises(UserError, match="duplicate record id 'a'"):
        read_fasta(path)
    assert len(read_fasta(path, unique_ids=False)) == 2
