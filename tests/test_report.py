"""main.py report: discovery, rendering, comparison, errors, and the page in Chromium."""

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import run_main

pytestmark = pytest.mark.backend_independent  # see conftest.py

TINY_CAE = ["--dataset", "digits", "--epochs", "1", "--conv-filters", "4", "8", "8",
            "--dense-units", "16", "--latent-dim", "3", "--verbose", "0"]
CAE_A, CAE_B = "20250101-000000", "20250101-000100"
CLASSIFY = "20250102-000000"
OTHER = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}  # the copy's backend


def backend():
    import keras
    return keras.backend.backend()


def make_hand_run(folder):
    """A run as another task might write it: nested metrics, markdown, CSV, captions,
    a figure in a sub-folder, and a sub-run of its own."""
    os.makedirs(os.path.join(folder, "figs"))
    os.makedirs(os.path.join(folder, "cae"))
    with open(os.path.join(folder, "metrics.json"), "w") as f:
        json.dump({"task": "classify", "backend": "jax", "dataset": "fashion_mnist",
                   "accuracy": 0.87314, "per_class": {"T-shirt/top": {"recall": 0.79},
                                                      "Trouser": {"recall": 0.96}},
                   "confusion": [[50, 2], [3, 45]],
                   "note": "<script>alert('x')</script>"}, f)
    with open(os.path.join(folder, "results.md"), "w") as f:
        f.write("# Heads\nAccuracy by head.\n\n| head | accuracy |\n|---|---:|\n"
                "| frozen | 0.81 |\n| fine \\| tuned | 0.87 |\n")
    with open(os.path.join(folder, "log.csv"), "w") as f:
        f.write("epoch,loss\n" + "".join(f"{i},0.123456789\n" for i in range(1, 31)))
    with open(os.path.join(folder, "captions.json"), "w") as f:
        json.dump({"figs/<odd> & 'x'.png": "Confusion matrix <on test>"}, f)
    with open(os.path.join(folder, "cae", "metrics.json"), "w") as f:
        json.dump({"backend": "jax", "test_mse": 0.02}, f)  # no "task": named by folder


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    """runs/cae/<two runs> (one real CLI run, one copy relabelled as another backend),
    a hand-made classify run with a sub-run, and an 'other' task."""
    root = tmp_path_factory.mktemp("runs")
    first = root / "cae" / CAE_A
    result = run_main("cae", *TINY_CAE, "--out", str(first))
    assert result.returncode == 0, result.stderr[-2000:]
    second = root / "cae" / CAE_B
    shutil.copytree(first, second)
    metrics = json.loads((second / "metrics.json").read_text())
    metrics.update(backend=OTHER[metrics["backend"]], test_mse=metrics["test_mse"] * 2)
    (second / "metrics.json").write_text(json.dumps(metrics))
    hand = root / "classify" / CLASSIFY
    make_hand_run(str(hand))
    shutil.copy(first / "loss.png", hand / "figs" / "<odd> & 'x'.png")
    other = root / "zeta" / "x"
    other.mkdir(parents=True)
    (other / "metrics.json").write_text('{"task": "zeta", "score": 1}')
    return root


@pytest.fixture(scope="module")
def report(runs_root):
    """The report written by the real command line, once."""
    import contextlib
    import io

    import main

    # In-process main.main: the real command line (argparse, run, error handling)
    # without a second start-up of TensorFlow in a subprocess.
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main.main(["report", str(runs_root)]) == 0
    path = runs_root / "report.html"
    assert f"outputs written to {path}" in stdout.getvalue()
    assert "5 runs in 3 tasks (cae, classify, zeta)" in stdout.getvalue()
    return path, path.read_text()


# ----------------------------------------------------------------- discovery

class TestDiscovery:
    def test_finds_every_run_grouped_and_ordered(self, runs_root):
        from tasks.report.discovery import discover_runs

        runs = discover_runs(str(runs_root))
        assert [(r.task, r.rel) for r in runs] == [
            ("cae", os.path.join("cae", CAE_A)),
            ("cae", os.path.join("cae", CAE_B)),
            # the sub-run without a "task" key is named by its folder
            ("cae", os.path.join("classify", CLASSIFY, "cae")),
            ("classify", os.path.join("classify", CLASSIFY)),
            ("zeta", os.path.join("zeta", "x")),
        ]
        assert runs[0].label == f"{backend()} · {CAE_A}"
        assert runs[1].label == f"{OTHER[backend()]} · {CAE_B}"
        assert runs[0].config["latent_dim"] == 3
        assert [f.path for f in runs[0].figures] == ["loss.png", "reconstructions.png"]

    def test_run_owns_subfolders_but_not_sub_runs(self, runs_root):
        from tasks.report.discovery import discover_runs

        hand = [r for r in discover_runs(str(runs_root)) if r.task == "classify"][0]
        assert [(f.path, f.caption) for f in hand.figures] == [
            (os.path.join("figs", "<odd> & 'x'.png"), "Confusion matrix <on test>")]
        sources = [t.source for t in hand.tables]
        assert sources == ["log.csv", "results.md"]
        csv_table = hand.tables[0]
        assert len(csv_table.rows) == 20 and csv_table.total_rows == 30

    def test_bad_json_is_a_problem_not_a_crash(self, tmp_path):
        from tasks.report.discovery import discover_runs

        folder = tmp_path / "gan" / "20250101-000000"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text("{not json")
        (run,) = discover_runs(str(tmp_path))
        assert run.task == "gan" and run.metrics == {}
        assert "not readable JSON" in run.problems[0]

    def test_caption_from_name(self):
        from tasks.report.discovery import caption_from_name

        assert caption_from_name("tsne_by-class.png") == "Tsne by class"
        assert caption_from_name(os.path.join("latent", "pca.png")) == "latent: Pca"

    def test_markdown_tables_and_prose(self):
        from tasks.report.discovery import parse_markdown

        tables, prose = parse_markdown(
            "# T\nintro\n| a | b |\n|:--|--:|\n| 1 | x \\| y |\n| 2 |\n\nafter", "t.md")
        assert len(tables) == 1
        assert tables[0].header == ["a", "b"]
        assert tables[0].rows == [["1", "x | y"], ["2", ""]]
        assert prose == ["# T", "intro", "after"]
        assert parse_markdown("| not | a table |\nno separator", "t.md")[0] == []


# ----------------------------------------------------------------- rendering

class TestRendering:
    @pytest.mark.parametrize("value, text", [
        (3, "3"), (48000, "48,000"), (0.142091608, "0.1421"), (8.4962, "8.496"),
        (2e-5, "2.000e-05"), (1234.56, "1,234.6"), (5.0, "5"), (True, "true"),
        (float("nan"), "nan"), (0.0, "0")])
    def test_format_number(self, value, text):
        from tasks.report.html import format_number

        assert format_number(value) == text

    def test_nested_values_become_tables(self):
        from tasks.report.html import render_value

        nested = render_value({"T-shirt": {"recall": 0.5}, "Bag": {"recall": 0.25}})
        assert re.search(r"<th>T-shirt</th><td class=\"num\">0.5</td>", nested)
        grid = render_value([[1, 2], [3, 4]])
        assert grid.count("<tr>") == 2 and '<td class="num">4</td>' in grid
        assert render_value(list(range(30))).endswith("… (30 items)]")

    def test_report_has_every_section_and_escapes(self, report):
        path, page = report
        for anchor in ("overview", "task-cae", "task-classify", "task-zeta", "compare-cae"):
            assert f'id="{anchor}"' in page
        # study order: cae before classify before tasks not in the list
        assert page.index('id="task-cae"') < page.index('id="task-classify"') \
            < page.index('id="task-zeta"')
        assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)" in page
        assert "Confusion matrix &lt;on test&gt;" in page
        assert "(figs/&lt;odd&gt; &amp; &#x27;x&#x27;.png)" in page
        assert "<th>accuracy</th>" in page and "<td>fine | tuned</td>" in page
        assert "first 20 of 30 rows" in page
        # every PNG inline: 2 cae runs x 2 figures + side by side 2 x 2 + 1 hand-made
        assert page.count('src="data:image/png;base64,') == 9
        assert "src=\"http" not in page and "file:" not in page

    def test_page_opens_with_each_runs_headline_figure(self, report):
        _, page = report
        assert page.index('id="headlines"') < page.index('id="overview"')
        section = page[page.index('id="headlines"'):page.index("</section>")]
        rows = re.findall(r"<tr><td>(\w+)</td><td><a href=\"#[^\"]+\">([^<]+)</a></td>"
                          r"<td>\w+</td><td>([^<]+)</td><td class=\"num\">([^<]+)</td></tr>",
                          section)
        # The three CAE runs (two stamps and the classify run's sub-run) have a test
        # MSE; the hand-made classify run lacks its figure and 'zeta' has none.
        assert [(task, label) for task, _, label, _ in rows] == [("cae", "test MSE")] * 3
        mse = {stamp: float(value) for _, stamp, _, value in rows}
        assert mse[CAE_B] == pytest.approx(2 * mse[CAE_A], rel=1e-3)
        assert mse[f"classify/{CLASSIFY}/cae"] == 0.02

    def test_comparison_has_a_column_per_run_and_a_row_per_metric(self, report):
        _, page = report
        section = page[page.index('id="compare-cae"'):page.index(f'<article class="run"')]
        table = section[section.index('<table class="compare">'):section.index("</table>")]
        header = re.findall(r"<th><a href=\"#[^\"]+\">([^<]+)</a></th>", table)
        assert header == [f"{backend()} · {CAE_A}", f"{OTHER[backend()]} · {CAE_B}",
                          f"jax · classify/{CLASSIFY}/cae"]
        test_mse = re.search(r'<tr class="differs"><th>test_mse</th>(.*?)</tr>', table).group(1)
        values = [float(v) for v in re.findall(r'<td class="num">([\d.]+)</td>', test_mse)]
        assert values[1] == pytest.approx(2 * values[0], rel=1e-3) and values[2] == 0.02
        # same value in both CAE runs, absent in the sub-run: shown as a dash
        assert re.search(r"<tr class=\"differs\"><th>epochs</th><td class=\"num\">1</td>"
                         r"<td class=\"num\">1</td><td class=\"num note\">–</td></tr>", table)
        assert section.count('<div class="side-by-side"') == 2  # loss and reconstructions


# --------------------------------------------------------------- bad input

class TestBadInput:
    def _main(self, capsys, *argv):
        import main

        code = main.main(list(argv))
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
        return err

    def test_missing_runs_dir(self, tmp_path, capsys):
        err = self._main(capsys, "report", str(tmp_path / "absent"))
        assert "main.py report: error:" in err and "absent" in err and "not a folder" in err

    def test_runs_dir_without_runs(self, tmp_path, capsys):
        (tmp_path / "empty" / "deeper").mkdir(parents=True)
        err = self._main(capsys, "report", str(tmp_path / "empty"))
        assert "holds no run" in err and "metrics.json" in err

    def test_out_in_missing_folder(self, runs_root, tmp_path, capsys):
        err = self._main(capsys, "report", str(runs_root), "--out",
                         str(tmp_path / "nowhere" / "r.html"))
        assert "--out" in err and "does not exist" in err


# ----------------------------------------------------------------- Chromium

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]
# The report has no scripts; the test copy gets this one, which reports every image
# that failed to decode as a console error and counts the ones that did.
IMAGE_CHECK = """<script>window.addEventListener("load", () => { let ok = 0;
for (const img of document.images) { if (img.complete && img.naturalWidth > 0) ok++;
else console.error("broken image: " + img.alt); }
document.body.dataset.imagesLoaded = ok; });</script>"""


def chromium_or_skip():
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("REQUIRE_CHROMIUM") == "1":
            pytest.fail("REQUIRE_CHROMIUM=1 but no `chromium` on PATH (apt-get install chromium)")
        pytest.skip("no `chromium` on PATH: install Debian's chromium package to check the "
                    "report in a browser (CI does)")
    return exe


def load_in_chromium(page_path, screenshot=None, timeout=90):
    """Opens a file in headless Chromium; returns (DOM after load, console lines).

    ``--dump-dom`` prints the DOM after the load event; with ``--enable-logging=stderr``
    every console message arrives on stderr as a line holding ``:CONSOLE``. Both are
    plain files, which is sturdier than driving the DevTools protocol.
    """
    exe = chromium_or_skip()
    with tempfile.TemporaryDirectory() as profile:
        args = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom"]
        if screenshot:
            args += [f"--screenshot={screenshot}", "--window-size=1280,2000"]
        result = subprocess.run(args + [f"file://{os.path.abspath(page_path)}"],
                                capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


@pytest.mark.slow
class TestInBrowser:
    def test_console_check_catches_errors(self, tmp_path):
        """The detector itself: a broken script and a broken image must be seen."""
        page = tmp_path / "bad.html"
        page.write_text("<!DOCTYPE html><html><body><img alt='gone' src='data:image/png;"
                        "base64,AAAA'><script>notAFunction();</script>"
                        f"{IMAGE_CHECK}</body></html>")
        dom, console = load_in_chromium(page)
        assert 'data-images-loaded="0"' in dom
        assert any("notAFunction" in line for line in console)
        assert any("broken image: gone" in line for line in console)

    def test_page_loads_clean_shows_sections_and_screenshots(self, report, tmp_path):
        import numpy as np
        from PIL import Image

        path, page = report
        probe = tmp_path / "report.html"
        probe.write_text(page.replace("</body>", IMAGE_CHECK + "</body>"))
        shot = tmp_path / "report.png"
        dom, console = load_in_chromium(probe, screenshot=shot)
        assert console == []
        n_images = page.count("<img ")
        assert f'data-images-loaded="{n_images}"' in dom
        for anchor in ("overview", "task-cae", "task-classify", "task-zeta", "compare-cae"):
            assert f'id="{anchor}"' in dom
        image = Image.open(shot)
        assert image.size == (1280, 2000)
        # not a blank page: the dark header and the text make dark pixels
        pixels = np.asarray(image.convert("L"))
        assert pixels.std() > 20 and (pixels < 60).mean() > 0.01
