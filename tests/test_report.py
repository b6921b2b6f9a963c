"""`protein-sedd report` as a user sees it: a small real campaign (a briefly trained tiny model, the toy
ESMFold) rendered into one HTML page and opened in headless Chromium, plus the page's numbers against its
inputs, missing parts, and damaged inputs."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import protein_sedd
from protein_sedd.campaign import sections
from protein_sedd.errors import UserError
from protein_sedd.io.fasta import read_fasta
from protein_sedd.testing.browser import chromedriver

from .conftest import acyp_available, data_dir, run_cli

pytest.importorskip("transformers")
pytest.importorskip("logomaker")

SECTION_KEYS = ["training", "family", "differences", "structure", "plate", "variants"]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> dict[str, Path]:
    """train (30 steps) -> design 12 -> fold-eval (toy) -> seq-eval -> select -> score-variants --scan,
    each through its command, on 400 ACYP sequences."""
    if not acyp_available():
        pytest.skip("ACYP (hypf.fa) not found under $PROTEIN_SEDD_DATA/acyp")
    from protein_sedd.testing.tiny_esmfold import build_tiny_esmfold

    root = tmp_path_factory.mktemp("campaign")
    family = read_fasta(data_dir() / "acyp" / "hypf.fa", unique_ids=False)[:400]
    reference = root / "family.fa"
    reference.write_text("".join(f">{r.id}\n{r.sequence}\n" for r in family))
    paths = {
        "reference": reference, "run": root / "run", "designs": root / "designs.fasta",
        "fold_eval": root / "fold", "seq_eval": root / "seq", "select": root / "picks",
        "variants": root / "scan.csv", "wildtype": root / "wt.fasta",
    }  # fmt: skip
    paths["wildtype"].write_text(f">wt\n{family[0].sequence}\n")
    steps = [
        ["train", "--fasta", reference, "--out", paths["run"], "--max-steps", 30, "--device", "cpu",
         "trainer.batch_size=16", "trainer.val_every=15", "trainer.val_sequences=16",
         "trainer.val_t_samples=1",
         "trainer.log_every=5", "trainer.warmup_steps=5"],
        ["design", "--checkpoint", paths["run"], "--n", 12, "--steps", 32, "--out", paths["designs"],
         "--device", "cpu"],
        ["fold-eval", paths["designs"], "--out-dir", paths["fold_eval"], "--device", "cpu",
         "--model", build_tiny_esmfold(root / "esmfold")],
        ["seq-eval", paths["designs"], "--reference", reference, "--out-dir", paths["seq_eval"],
         "--hmm-sample-size", 200],
        ["select", paths["designs"], "--out", paths["select"], "--seq-eval", paths["seq_eval"], "--n", 12,
         "--min-family-bits", 0, "--keep-low-complexity", "--max-pair-identity", 1.0],  # all 12: ranks 1-12
        ["score-variants", "--checkpoint", paths["run"], "--wildtype", paths["wildtype"], "--scan",
         "--positions", "1-40", "--out", paths["variants"], "--device", "cpu"],
    ]  # fmt: skip
    for args in steps:
        assert run_cli(args)[0] == 0, args[0]
    return paths


def _report(campaign: dict[str, Path], out: Path, **parts) -> Path:
    given = parts or {
        k: campaign[k] for k in ("run", "designs", "seq_eval", "fold_eval", "select", "variants")
    }
    args = ["report", "--out", out]
    for name, path in given.items():
        args += [f"--{name.replace('_', '-')}", path]
    code = run_cli(args)[0]
    assert code == 0
    return out


class _Page(HTMLParser):
    """Section ids with their class, the text of each section, images and tables, from the HTML."""

    def __init__(self, html: str):
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.current = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.current = {"class": attrs.get("class"), "text": "", "images": 0}
            self.sections[attrs["id"]] = self.current
        elif tag == "img" and self.current is not None:
            self.current["images"] += 1

    def handle_endtag(self, tag):
        if tag == "section":
            self.current = None

    def handle_data(self, data):
        if self.current is not None:
            self.current["text"] += data


@pytest.mark.skipif(shutil.which("chromium") is None or chromedriver() is None,
                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")  # fmt: skip
def test_the_report_opens_offline_in_chromium_draws_every_section_and_the_table_sorts(tmp_path, campaign):
    from matplotlib.image import imread
    from selenium.webdriver.common.by import By

    from protein_sedd.testing.browser import open_page

    out = _report(campaign, tmp_path / "campaign.html")
    driver, load = open_page(out, 1280, 900)
    try:
        fetched = [
            url for url in load.requests if not url.startswith(("data:", "blob:"))
        ]  # inline: in the file
        assert fetched == [out.resolve().as_uri()]  # the page itself, nothing else
        assert load.failed == [] and load.console_errors == []
        for key in SECTION_KEYS:
            section = driver.find_element(By.ID, key)
            assert section.get_attribute("class") == "present", key
            images = section.find_elements(By.CSS_SELECTOR, "figure img")
            assert images, key
            for image in images:  # decoded pictures of real size, not broken-image icons
                width = driver.execute_script("return arguments[0].naturalWidth", image)
                assert width > 200, (key, image.get_attribute("alt"))
        canvases = driver.find_elements(By.CSS_SELECTOR, "#structure .structure canvas")
        assert len(canvases) == 6  # the viewer replaced every still picture
        painted = driver.execute_script(
            "const c = arguments[0], d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 200 || d[i + 2] < 200) n++;"
            "return n;",
            canvases[0],
        )
        assert painted > 500  # the trace is drawn
        before = driver.execute_script("return arguments[0].toDataURL()", canvases[0])
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(driver).drag_and_drop_by_offset(canvases[0], 60, 20).perform()
        assert driver.execute_script("return arguments[0].toDataURL()", canvases[0]) != before  # it turns

        picks = pd.read_csv(campaign["select"] / "picks.csv")
        picked = picks[picks["picked"]].sort_values("rank")
        table = driver.find_element(By.ID, "picks")
        column = lambda name: [  # noqa: E731
            row.find_elements(By.TAG_NAME, "td")[sections.Plate.COLUMNS.index(name)].text
            for row in table.find_elements(By.CSS_SELECTOR, "tbody tr") if row.is_displayed()
        ]  # fmt: skip
        assert column("id") == picked["id"].tolist()
        header = table.find_element(
            By.CSS_SELECTOR, f"th[data-column='{sections.Plate.COLUMNS.index('length')}']"
        )
        header.click()
        lengths = [int(v) for v in column("length")]
        assert lengths == sorted(picked["length"].tolist())  # as numbers
        header.click()
        assert [int(v) for v in column("length")] == sorted(lengths, reverse=True)
        assert len(picked) >= 10  # ranks 1-12 sort differently as text ("10" < "2")
        rank = table.find_element(By.CSS_SELECTOR, "th[data-column='0']")
        rank.click()
        assert [int(v) for v in column("rank")] == sorted(picked["rank"].astype(int))
        identity = table.find_element(By.CSS_SELECTOR, "th[data-column='4']")
        identity.click()
        assert [float(v) for v in column("nearest_identity")] == sorted(
            round(v, 3) for v in picked["nearest_identity"]
        )
        target = picked["id"].iloc[-1]
        driver.find_element(By.ID, "picks-filter").send_keys(target)
        assert column("id") == [target]
        assert driver.find_element(By.ID, "picks-count").text == f"1 of {len(picked)} picks shown"
        fasta = driver.execute_script("return document.getElementById('picks-fasta').value")
        assert fasta == (campaign["select"] / "picks.fasta").read_text()

        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1280, min(height, 8000))
        shot = tmp_path / "page.png"
        driver.save_screenshot(str(shot))
        pixels = imread(shot)[..., :3]
        assert pixels.shape[0] > 2000 and pixels.std() > 0.1  # a long page, not blank
    finally:
        driver.quit()


def test_the_page_shows_the_inputs_numbers_and_says_the_structures_are_a_toy(tmp_path, campaign):
    out = _report(campaign, tmp_path / "campaign.html")
    html = out.read_text()
    page = _Page(html)
    assert [k for k in page.sections] == SECTION_KEYS
    assert all(page.sections[k]["class"] == "present" for k in SECTION_KEYS)
    seq = json.loads((campaign["seq_eval"] / "summary.json").read_text())
    family = page.sections["family"]["text"]
    assert sections.format_rate(seq["family_pass"]) in family
    assert sections.format_rate(seq["natural_baseline"]["family_pass"]) in family
    assert f"{seq['mean_pairwise_identity']:.3f}" in family
    fold = json.loads((campaign["fold_eval"] / "summary.json").read_text())
    structure = page.sections["structure"]["text"]
    assert "Plumbing check only" in structure and sections.format_rate(fold["success"]) in structure
    metrics = pd.read_csv(campaign["run"] / "metrics.csv")
    training = page.sections["training"]["text"]
    assert f"{int(metrics['step'].iloc[-1]):,} steps" in training
    parameters = sum(p.numel() for p in protein_sedd.load(campaign["run"], "cpu").network.parameters())
    assert f"{parameters:,} parameters" in training
    from protein_sedd.data.datasets import sha256_of

    for name in ("designs.fasta",):
        assert f"{name}: {sha256_of(campaign['designs'])[:16]}" in html  # the header traces each file
    assert f"protein-sedd report --out {out} --run {campaign['run']} --designs" in html  # what made it
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", html)  # nothing fetched from anywhere
    # the API writes the same page (up to the command line and the time)
    parts = {k: campaign[k] for k in ("run", "designs", "seq_eval", "fold_eval", "select", "variants")}
    again = protein_sedd.report(tmp_path / "api.html", **parts)
    strip = lambda text: re.sub(r"<header>.*?</header>", "", text, flags=re.S)  # noqa: E731
    assert strip(again.read_text()) == strip(html)


def test_missing_parts_leave_their_sections_out_with_what_would_fill_them(tmp_path, campaign):
    out = _report(
        campaign, tmp_path / "part.html", designs=campaign["designs"], seq_eval=campaign["seq_eval"]
    )
    page = _Page(out.read_text())
    drawn = {k for k, v in page.sections.items() if v["class"] == "present"}
    assert drawn == {"family", "differences"}
    for key, flag in [("training", "--run"), ("structure", "--fold-eval"), ("plate", "--select"),
                      ("variants", "--variants")]:  # fmt: skip
        assert page.sections[key]["images"] == 0 and flag in page.sections[key]["text"], key
    only = _report(campaign, tmp_path / "designs.html", designs=campaign["designs"])
    page = _Page(only.read_text())
    assert page.sections["family"]["class"] == "present"  # lengths need only the FASTA
    assert "--seq-eval" in page.sections["family"]["text"]


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize(
    "damage, message",
    [
        ("seq_csv", r"seq/results.csv row 3: family_bits 'lots' is not a number"),
        ("seq_json", r"seq/summary.json: damaged, not valid JSON"),
        ("seq_column", r"seq/results.csv: damaged, no column 'family_bits'"),
        ("fold_pdb", r"\.pdb line 1: damaged ATOM record"),
        ("owner", r"--seq-eval .*picks: written by `protein-sedd select`, not `seq-eval`"),
        ("variants", r"scan.csv: changed since score-variants wrote it"),
        ("other_designs", r"holds design 'design_0001', which is not in .*other.fasta"),
        ("funnel", r"picks/summary.json: damaged, funnel is not a list of stages"),
    ],
)
def test_a_damaged_input_is_one_line_naming_the_file_and_writes_nothing(tmp_path, capsys, campaign, damage,
                                                                          message):  # fmt: skip
    parts = {k: campaign[k] for k in ("designs", "seq_eval", "fold_eval", "select", "variants")}
    seq, fold, picks = (_copy(campaign[k], tmp_path / n) for k, n in
                        (("seq_eval", "seq"), ("fold_eval", "fold"), ("select", "picks")))  # fmt: skip
    parts.update(seq_eval=seq, fold_eval=fold, select=picks)
    if damage == "seq_csv":
        table = (seq / "results.csv").read_text().splitlines()
        cells = table[2].split(",")
        cells[3] = "lots"
        (seq / "results.csv").write_text("\n".join([*table[:2], ",".join(cells), *table[3:]]) + "\n")
    elif damage == "seq_json":
        (seq / "summary.json").write_text('{"n": 12,')
    elif damage == "seq_column":
        pd.read_csv(seq / "results.csv").drop(columns="family_bits").to_csv(seq / "results.csv", index=False)
    elif damage == "fold_pdb":
        for pdb in fold.glob("*.pdb"):
            pdb.write_text("ATOM      2  CA  MET A   1      -1.98x  -1.276   2.473  1.00 35.73           C\n")
    elif damage == "owner":
        parts["seq_eval"] = picks
    elif damage == "variants":
        scan = tmp_path / "scan.csv"
        shutil.copy(campaign["variants"], scan)
        shutil.copy(campaign["variants"].with_name("scan.summary.json"), tmp_path / "scan.summary.json")
        scan.write_text(scan.read_text() + "A1C,0.5,1,A,C\n")  # a row added by hand
        parts["variants"] = scan
    elif damage == "other_designs":
        other = tmp_path / "other.fasta"
        other.write_text(">x\nMKV\n")
        parts["designs"] = other
    elif damage == "funnel":
        summary = json.loads((picks / "summary.json").read_text())
        summary["funnel"] = [{"stage": "designs", "left": "twelve"}]
        (picks / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "report.html"
    args = ["report", "--out", out]
    for name, path in parts.items():
        args += [f"--{name.replace('_', '-')}", path]
    code, stdout, err = run_cli(args, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not out.exists()


def test_the_output_file_is_checked_like_every_command_output(tmp_path, capsys, campaign):
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my notes</html>")
    base = ["report", "--designs", campaign["designs"]]
    code, _, err = run_cli([*base, "--out", mine], capsys)
    assert code == 2 and "was not written by `protein-sedd report`" in err and "my notes" in mine.read_text()
    assert (
        run_cli([*base, "--out", mine, "--overwrite"], capsys)[0] == 0 and "my notes" not in mine.read_text()
    )
    assert run_cli([*base, "--out", mine], capsys)[0] == 0  # now its own output: replaced
    for out, message in [
        (tmp_path / "report.txt", "a report is an HTML file; name it *.html"),
        (campaign["seq_eval"] / "r.html", "lies inside the input folder"),
        (tmp_path / "missing" / "r.html", "missing does not exist; create it first"),
    ]:
        code, _, err = run_cli([*base, "--seq-eval", campaign["seq_eval"], "--out", out], capsys)
        assert code == 2 and message in err and not out.exists(), err
    code, _, err = run_cli(["report", "--out", tmp_path / "x.html"], capsys)
    assert code == 2 and "nothing to report: pass at least one of --run" in err
    with pytest.raises(UserError, match=r"^seq_eval: expected a path \(str or pathlib.Path\), got int"):
        protein_sedd.report(tmp_path / "y.html", seq_eval=3)
    with pytest.raises(UserError) as caught:  # the API names its parameter, the command its flag
        protein_sedd.report(tmp_path / "y.html", seq_eval=campaign["select"])
    assert str(caught.value).startswith(f"seq_eval {campaign['select']}: written by `protein-sedd select`")
    assert not (tmp_path / "y.html").exists()


# -- the computations behind the pictures, against answers by hand ----------------------------------------
def test_kmer_profiles_and_principal_components_by_hand():
    profile = sections.kmer_profiles(["ACA", "AXA"])
    index = {r: i for i, r in enumerate("ACDEFGHIKLMNPQRSTVWY")}
    assert profile[0, index["A"] * 20 + index["C"]] == 0.5 and profile[0, index["C"] * 20 + index["A"]] == 0.5
    assert profile[0].sum() == 1.0 and profile[1].sum() == 0.0  # 2-mers with X are skipped
    line = np.array([[0.0, 0.0, 1.0], [1.0, 2.0, 1.0], [2.0, 4.0, 1.0]])
    points = sections.principal_components(line, 2)
    np.testing.assert_allclose(np.abs(points[:, 0]), [np.sqrt(5), 0.0, np.sqrt(5)], atol=1e-12)
    np.testing.assert_allclose(points[:, 1], 0.0, atol=1e-12)


def test_match_counts_put_each_residue_in_its_hmm_column():
    from protein_sedd.evaluation.family_hmm import build_family_hmm

    family = ["MKVLAAGIVGAVLLAMKVLAEEW", "MKVLAAGIVGAVLLAMKVLAEEW", "MKVIAAGIVGSVLLAMKVLAEEW"] * 4
    hmm = build_family_hmm(family)
    counts = sections.match_counts(hmm, ["MKVLAAGIVGAVLLAMKVLAEEW"] * 3)
    assert counts.shape == (hmm.M, 20) and hmm.M == 23
    consensus = "".join("ACDEFGHIKLMNPQRSTVWY"[i] for i in counts.argmax(axis=1))
    assert consensus == "MKVLAAGIVGAVLLAMKVLAEEW" and (counts.sum(axis=1) == 3).all()


def test_a_ca_trace_reads_coordinates_and_plddt_from_the_b_factors(tmp_path):
    pdb = tmp_path / "x.pdb"
    pdb.write_text(
        "ATOM      1  N   MET A   1      -2.301   0.085   2.045  1.00 35.73           N\n"
        "ATOM      2  CA  MET A   1      -1.989  -1.276   2.473  1.00 35.73           C\n"
        "ATOM      3  CA  LYS A   2       1.500   2.000   3.250  1.00 91.20           C\n"
    )
    ca, plddt = sections.read_ca_trace(pdb)
    np.testing.assert_array_equal(ca, [[-1.989, -1.276, 2.473], [1.5, 2.0, 3.25]])
    np.testing.assert_array_equal(plddt, [35.73, 91.2])
    pdb.write_text(pdb.read_text().replace("91.20", "191.2"))
    with pytest.raises(UserError, match="pLDDT outside 0-100"):
        sections.read_ca_trace(pdb)
