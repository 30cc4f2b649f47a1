"""The benchmark scripts run end to end and reject bad input in one line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import keras
from conftest import ROOT

SCRIPT = os.path.join(ROOT, "benchmarks", "cae_throughput.py")


@pytest.mark.slow
def test_throughput_benchmark_writes_json_for_backend_and_plain_loop(tmp_path):
    backend = keras.backend.backend()
    out = tmp_path / "throughput.json"
    result = subprocess.run(
        [sys.executable, SCRIPT, "--dataset", "digits", "--train-size", "256", "--epochs", "2",
         "--backends", backend, "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report) >= {"settings", "environment", "summary", "rounds"}
    assert list(report["summary"]) == [backend, "plain_torch"]
    for runner in (backend, "plain_torch"):
        measured = report["rounds"][0][runner]
        assert measured["images"] == 256
        assert len(measured["epoch_wall_s"]) == 2
        assert measured["images_per_s"] > 0
    assert report["rounds"][0]["plain_torch"]["ratio_to_plain_torch"] == 1.0
    assert report["summary"][backend]["ratio_to_plain_torch_median"] > 0
    assert "x plain" in result.stdout and backend in result.stdout  # the table


@pytest.mark.backend_independent
def test_throughput_benchmark_rejects_unknown_backend():
    result = subprocess.run([sys.executable, SCRIPT, "--backends", "jax,mxnet"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "mxnet" in result.stderr and "plain_torch" in result.stderr


RECIPES_SCRIPT = os.path.join(ROOT, "benchmarks", "classify_recipes.py")


@pytest.mark.slow
def test_classify_recipes_writes_a_row_per_recipe_in_the_asked_order(tmp_path):
    from conftest import real_data_or_skip
    from models.cae import build_cae

    real_data_or_skip("fashion_mnist", train_limit=10, test_limit=10)  # the script's data
    encoder_path = tmp_path / "cae.keras"
    build_cae().save(encoder_path)  # untrained: the plumbing, not the accuracy
    out = tmp_path / "recipes.json"
    result = subprocess.run(
        [sys.executable, RECIPES_SCRIPT, "--encoder", str(encoder_path),
         "--recipes", "c3,plain", "--jobs", "2", "--max-epochs", "1", "--train-size", "300",
         "--val-size", "200", "--test-size", "200", "--shared-val", "50",
         "--skip-baseline", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["recipe"] for r in rows] == ["c3", "plain"]  # as asked, not as finished
    for row in rows:
        # load_dataset keeps a quarter of --train-size for validation.
        assert (row["train_images"], row["val_images"]) == (300, 75)
        assert row["conv_filters"] == [32, 64, 128]
        assert "baseline" not in row  # --skip-baseline
        for model in ("frozen", "fine_tuned"):
            assert row[model]["epochs"] == 1  # --max-epochs
            # Scored on the 200 test images: a whole number of them is right.
            right = row[model]["test_accuracy"] * 200
            assert right == pytest.approx(round(right), abs=1e-6) and 0 <= right <= 200
        # ... and on the first 50 shared validation images.
        right = row["fine_tuned"]["val_accuracy_first_50"] * 50
        assert right == pytest.approx(round(right), abs=1e-6) and 0 <= right <= 50
    # Only the recipe with flips in its augmentation reports flip-averaged accuracy.
    assert "test_accuracy_flip_averaged" in rows[0]["fine_tuned"]
    assert "test_accuracy_flip_averaged" not in rows[1]["fine_tuned"]
    table = (tmp_path / "recipes.md").read_text()
    assert "| c3 |" in table and "| plain |" in table


@pytest.mark.backend_independent
def test_classify_recipes_rejects_an_unknown_recipe(tmp_path):
    result = subprocess.run(
        [sys.executable, RECIPES_SCRIPT, "--encoder", str(tmp_path / "none.keras"),
         "--recipes", "plain,nonsense", "--out", str(tmp_path / "r.json")],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert "unknown recipe 'nonsense'" in result.stderr and "c3_cosine" in result.stderr
    assert not (tmp_path / "r.json").exists()


WHOLE = os.path.join(ROOT, "benchmarks", "whole_process.py")


@pytest.mark.slow
def test_whole_process_benchmark_times_both_processes(tmp_path):
    backend = keras.backend.backend()
    result = subprocess.run(
        [sys.executable, WHOLE, "--models", "cae", "--backends", backend, "--dataset", "digits",
         "--train-size", "200", "--epochs", "1", "--rounds", "1", "--out", str(tmp_path / "wp")],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "wp.json").read_text())
    (row,) = report["results"]
    assert (row["model"], row["backend"]) == ("cae", backend)
    pair = row["rounds"][0]
    assert set(pair) == {"keras", "pytorch"}  # acceleration on only, by default
    # Each side is a real process: it took time, and its CPU time was counted.
    for side in ("keras", "pytorch"):
        assert pair[side]["wall_s"] > 1 and pair[side]["cpu_s"] > 0.5
    assert row["wall_ratio"] == pytest.approx(pair["keras"]["wall_s"] / pair["pytorch"]["wall_s"])
    assert row["command"].endswith("--rounds 1 --out " + str(tmp_path / "wp"))
    assert row["machine"]["cpu_count"] == os.cpu_count()
    table = (tmp_path / "wp.md").read_text()
    assert f"| cae | {backend} |" in table and row["command"] in table


@pytest.mark.slow
def test_whole_process_benchmark_times_keras_with_acceleration_off_too(tmp_path):
    backend = keras.backend.backend()
    result = subprocess.run(
        [sys.executable, WHOLE, "--models", "cae", "--backends", backend, "--dataset", "digits",
         "--train-size", "200", "--epochs", "1", "--rounds", "1", "--accel", "both",
         "--out", str(tmp_path / "wp")],
        capture_output=True, text=True, cwd=ROOT, timeout=400)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (row,) = json.loads((tmp_path / "wp.json").read_text())["results"]
    (times,) = row["rounds"]
    assert set(times) == {"keras", "keras_accel_off", "pytorch"}
    assert row["accel_off_wall_ratio"] == pytest.approx(
        times["keras_accel_off"]["wall_s"] / times["pytorch"]["wall_s"])
    line = next(r for r in (tmp_path / "wp.md").read_text().splitlines()
                if r.startswith(f"| cae | {backend} |"))
    assert "| - |" not in line  # every column measured, the "accel off" ones too


@pytest.mark.backend_independent
def test_whole_process_benchmark_rejects_an_unknown_model(tmp_path):
    result = subprocess.run([sys.executable, WHOLE, "--models", "cae,dcgan", "--out",
                             str(tmp_path / "wp")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert "dcgan" in result.stderr and "cae,vae,gan" in result.stderr
    assert not (tmp_path / "wp.json").exists()


@pytest.mark.backend_independent
def test_whole_process_plain_loop_runs_on_pytorch_defaults():
    from benchmarks import whole_process as wp

    caller = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000",
              "UNSUPERVISED28_ACCEL": "0", "PATH": "/bin"}
    peer = wp.child_env(wp.PEER, "torch", caller)
    assert not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "UNSUPERVISED28_ACCEL"} & set(peer)
    assert peer["PATH"] == "/bin"
    # The Keras side starts the same way: the toolkit's start-up picks its own policy.
    on = wp.child_env(wp.KERAS, "torch", caller)
    assert not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "UNSUPERVISED28_ACCEL"} & set(on)
    assert on["KERAS_BACKEND"] == "torch"
    off = wp.child_env(wp.KERAS_OFF, "jax", caller)
    assert (off["UNSUPERVISED28_ACCEL"], off["KERAS_BACKEND"]) == ("0", "jax")
    assert "OMP_WAIT_POLICY" not in off


@pytest.mark.backend_independent
def test_whole_process_turns_acceleration_off_on_main_py_command_line(tmp_path):
    from benchmarks import whole_process as wp

    args = wp.parse(["--models", "cae", "--dataset", "digits", "--train-size", "200"])
    on, peer = wp.commands("cae", "jax", args, str(tmp_path), accel=True)
    off, peer_again = wp.commands("cae", "jax", args, str(tmp_path), accel=False)
    assert "--no-accel" not in on and peer == peer_again and "--no-accel" not in peer
    # A global option of main.py: before the task's name.
    assert off.index("--no-accel") < off.index("cae")
    assert [a for a in off if a != "--no-accel"] == on


@pytest.mark.backend_independent
def test_whole_process_times_a_whole_vae_run_against_a_plain_script_of_as_many_epochs(tmp_path):
    from benchmarks import whole_process as wp

    args = wp.parse(["--models", "vae", "--vae-epochs", "4", "--dataset", "digits",
                     "--train-size", "300"])
    keras_cmd, _ = wp.commands("vae", "torch", args, str(tmp_path / "k"))
    _, peer = wp.commands("vae", "torch", args, str(tmp_path / "p"))
    assert keras_cmd[1].endswith("main.py") and keras_cmd[2:4] == ["--backend", "torch"]
    assert keras_cmd[keras_cmd.index("vae"):keras_cmd.index("vae") + 3] == ["vae", "--epochs", "4"]
    assert peer[1].endswith("plain_torch_vae.py") and peer[peer.index("--epochs") + 1] == "4"
    # The same batch on both sides, whatever main.py vae's default.
    import inspect
    from benchmarks import plain_torch_vae
    peer_batch = inspect.signature(plain_torch_vae.whole_process).parameters["batch_size"].default
    assert keras_cmd[keras_cmd.index("--batch-size") + 1] == str(peer_batch)
    for cmd in (keras_cmd, peer):  # the same images on both sides
        assert cmd[cmd.index("--dataset") + 1] == "digits"
        assert cmd[cmd.index("--train-size") + 1] == "300"
    # Each side writes its files into a folder of its own.
    assert peer[peer.index("--out") + 1] != keras_cmd[keras_cmd.index("--out") + 1]


@pytest.mark.backend_independent
def test_plain_torch_vae_is_the_default_vae_network():
    from benchmarks.plain_torch_vae import build_plain_vae
    from configs.vae import VAEConfig
    from models.vae import build_vae_decoder, build_vae_encoder

    config = VAEConfig()
    sizes = (config.latent_dim, config.width, config.dense_units)
    encoder, decoder = build_plain_vae()  # the peer's own defaults, as the benchmark times it
    for plain, keras_model in ((encoder, build_vae_encoder(*sizes)),
                               (decoder, build_vae_decoder(*sizes))):
        assert sum(p.numel() for p in plain.parameters()) == keras_model.count_params()


@pytest.mark.backend_independent
def test_whole_process_table_replaces_only_its_own_part_of_the_markdown():
    from benchmarks import whole_process as wp

    row = {"model": "cae", "backend": "torch", "rounds": [{}, {}], "pytorch_wall_s": 50.0,
           "keras_wall_s": 60.0, "wall_ratio": 1.2, "cpu_ratio": 1.05,
           "command": "python3 benchmarks/whole_process.py --models cae",
           "machine": {"cpu_count": 2}, "peer": "plain PyTorch on its defaults"}
    table = wp.markdown([row])
    line = next(r for r in table.splitlines() if r.startswith("| cae | torch |"))
    assert line == "| cae | torch | 50.0 | 60.0 | 1.20x | 1.05x | - | - | - | 2 |"
    assert "`python3 benchmarks/whole_process.py --models cae` (2 cores)" in table
    fresh = wp.with_table(None, table)
    assert fresh.count(wp.TABLE_BEGIN) == 1 and table in fresh
    old = f"# Title\n\nprose before\n\n{wp.TABLE_BEGIN}\nold table\n{wp.TABLE_END}\n\nprose after\n"
    new = wp.with_table(old, table)
    assert new == (f"# Title\n\nprose before\n\n{wp.TABLE_BEGIN}\n{table}{wp.TABLE_END}"
                   "\n\nprose after\n")


@pytest.mark.backend_independent
def test_whole_process_merge_replaces_the_measured_cells_and_keeps_the_rest():
    from benchmarks import whole_process as wp

    old = [{"model": m, "backend": b, "wall_ratio": 1.0} for m, b in
           (("cae", "jax"), ("cae", "torch"), ("vae", "torch"))]
    new = [{"model": "cae", "backend": "torch", "wall_ratio": 2.0},
           {"model": "gan", "backend": "jax", "wall_ratio": 3.0}]
    assert [(r["model"], r["backend"], r["wall_ratio"]) for r in wp.merged(old, new)] == [
        ("cae", "jax", 1.0), ("cae", "torch", 2.0), ("vae", "torch", 1.0), ("gan", "jax", 3.0)]


@pytest.mark.backend_independent
def test_whole_process_merge_of_one_side_keeps_the_other_sides_figures_and_command():
    from benchmarks import whole_process as wp

    on = {"model": "vae", "backend": "jax", "rounds": [{}, {}, {}], "pytorch_wall_s": 100.0,
          "keras_wall_s": 99.0, "wall_ratio": 0.99, "cpu_ratio": 0.85, "command": "on-cmd",
          "machine": {"cpu_count": 2}}
    off = {"model": "vae", "backend": "jax", "rounds": [{}], "pytorch_wall_s": 110.0,
           "accel_off_keras_wall_s": 700.0, "accel_off_wall_ratio": 6.4,
           "accel_off_cpu_ratio": 5.0, "command": "off-cmd", "machine": {"cpu_count": 2}}
    (row,) = wp.merged([on], [off])
    assert (row["wall_ratio"], row["pytorch_wall_s"], row["command"]) == (0.99, 100.0, "on-cmd")
    assert (row["accel_off_wall_ratio"], row["accel_off_command"]) == (6.4, "off-cmd")
    assert len(row["rounds"]) == 3 and len(row["accel_off_rounds"]) == 1
    table = wp.markdown([row])
    assert "| vae | jax | 100.0 | 99.0 | 0.99x | 0.85x | 700.0 | 6.40x | 5.00x | 3 (off: 1) |" in table
    assert "- vae jax: `on-cmd`" in table and "- vae jax (accel off): `off-cmd`" in table
    # Measuring "on" again keeps that "off" side, with its own command still.
    (again,) = wp.merged([row], [dict(on, wall_ratio=1.01, command="on-again")])
    assert (again["wall_ratio"], again["command"]) == (1.01, "on-again")
    assert (again["accel_off_wall_ratio"], again["accel_off_command"]) == (6.4, "off-cmd")
    # Both sides measured: the new row as it is.
    both = dict(on, **{k: v for k, v in off.items() if k.startswith("accel_off_")},
                command="both-cmd")
    (fresh,) = wp.merged([row], [both])
    assert fresh == both


@pytest.mark.backend_independent
def test_whole_process_result_file_is_one_table_with_its_commands():
    """The committed result: one row per cell, each with the command that measured
    it, and the Markdown's table is the one the JSON gives."""
    from benchmarks import whole_process as wp

    results = os.path.join(ROOT, "benchmarks", "results")
    with open(os.path.join(results, "whole_process.json")) as f:
        rows = json.load(f)["results"]
    cells = [(r["model"], r["backend"]) for r in rows]
    assert len(cells) == len(set(cells)) == len(wp.MODELS) * len(wp.BACKENDS)
    assert all(r["command"].startswith("python3 benchmarks/whole_process.py") for r in rows)
    with open(os.path.join(results, "whole_process.md")) as f:
        markdown = f.read()
    assert wp.with_table(markdown, wp.markdown(rows)) == markdown
