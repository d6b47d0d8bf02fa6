"""CLI smoke tests, in-process."""

import json

from seedtok.cli import main


def test_encode_three_parity_pngs_with_tiny_preset(golden_dir, capsys):
    files = [str(golden_dir / f"{n}.png") for n in ("astronaut", "coffee", "chelsea")]
    assert main(["encode", *files, "--preset", "tiny"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line, f in zip(lines, files):
        name, ids = line.split("\t")
        assert name == f and len(ids.split()) == 32 and all(0 <= int(i) < 1024 for i in ids.split())


def test_encode_json_and_bad_file_exit_code(tmp_path, golden_dir, capsys):
    bad = tmp_path / "x.jpg"
    bad.write_text("text")
    rc = main(["encode", str(golden_dir / "coffee.png"), str(bad), "--json"])
    out, err = capsys.readouterr()
    assert rc == 1 and "x.jpg: not a recognised image format" in err
    assert len(json.loads(out.strip())["ids"]) == 32


def test_encode_with_saved_model(tmp_path, tiny_model, golden_dir, capsys):
    from seedtok.checkpoint import save_pretrained

    save_pretrained(tiny_model, tmp_path / "m")
    assert main(["encode", str(golden_dir / "coffee.png"), "--model", str(tmp_path / "m")]) == 0
    assert len(capsys.readouterr().out.split("\t")[1].split()) == 32
    assert main(["encode", str(golden_dir / "coffee.png"), "--model", str(tmp_path / "missing")]) == 1
    assert "no config.json" in capsys.readouterr().err


def test_info_and_parity(capsys):
    assert main(["info", "--preset", "seed1"]) == 0
    out = capsys.readouterr().out
    assert "1,154,069,952" in out and '"num_queries": 32' in out
    assert main(["parity"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_bench_encode_tiny_writes_json(tmp_path):
    out = tmp_path / "b.json"
    assert main(["bench", "encode", "--preset", "tiny", "--batches", "1", "2", "--rounds", "1", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    row = res["batches"]["2"]["fp32"]
    assert row["images_per_s"] > 0 and row["achieved_gflop_per_s"] > 0 and row["percent_of_mm_probe"] > 0
    assert res["machine"]["torch"] and "int8" not in row


def test_bench_encode_int8_alternates_and_reports_agreement(one_thread):
    from seedtok.bench import bench_encode

    res = bench_encode("tiny", batches=(1, 2), rounds=2, int8=True, measure_rss=False)
    row = res["batches"]["2"]
    assert len(row["fp32"]["seconds_per_batch"]) == len(row["int8"]["seconds_per_batch"]) == 2
    assert row["int8_speedup"] > 0 and res["int8_layers"]["int8_linear_layers"] == 4 * 4
    golden = res["agreement"]["golden_seed1_weights"]
    assert golden["positions"] == 96 and golden["agreement"] > 0.85 and len(golden["agreement_per_position"]) == 32
    assert res["agreement"]["random_weights_sample_photos"]["images"] == 2


def test_demo_writes_report(tmp_path, capsys):
    """`seedtok demo` at a tiny size: parity, fresh data, metrics table, report.json keys."""
    from seedtok.demo.report import missing_keys

    assert main(["-q", "demo", "--out", str(tmp_path), "--num-test", "10", "--num-compositional", "5", "--keep", "2",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "== 6/6 report" in out and "floors met:" in out and "reconstruction per-object" in out
    rep = json.loads((tmp_path / "report.json").read_text())
    assert missing_keys(rep) == [] and rep["parity"]["ids_equal"] is True
    assert (tmp_path / "report.html").is_file() and len(list((tmp_path / "images").glob("*.png"))) == 4
