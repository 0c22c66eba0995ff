"""The ``axiomcam`` command line: help, exit codes, one-line errors, a tiny real run."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from cli_helpers import invoke, one_line_error


def test_help_shows_the_example():
    result = invoke("evaluate", "--help")
    assert result.exit_code == 0
    assert "axiomcam evaluate --model mobilenet_v2 --data composite:200" in result.output
    assert "--layer features.17.conv.1" in result.output
    top = invoke("--help")
    assert top.exit_code == 0 and "evaluate" in top.output


def test_unknown_method_is_a_usage_error_listing_the_known_ones(tmp_path):
    result = invoke("evaluate", "--data", "composite:2", "--out", str(tmp_path),
                    "--methods", "gradcam,gradkam")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "unknown method 'gradkam'" in line
    assert "gradcam, gradcam++, xgradcam, hirescam, layercam, ablationcam, scorecam" in line
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--methods", "guided_gradcam", "guided_gradcam is not evaluated"),
    ("--metrics", "axioms,speed", "unknown metric group 'speed'; known: axioms, faithfulness"),
    ("--road-percentages", "10,100", "--road-percentages must be numbers in (0, 100)"),
    ("--model", "resnet9000", "unknown model 'resnet9000'. --model takes a built-in "
                             "pretrained model (mobilenet_v2, efficientnet_lite0)"),
])
def test_bad_choices_are_usage_errors(tmp_path, option, value, expected):
    result = invoke("evaluate", "--data", "composite:2", "--out", str(tmp_path), option, value)
    assert result.exit_code == 2
    assert expected in one_line_error(result)


@pytest.mark.parametrize("spec", ["composite:zero", "composite:-3"])
def test_bad_data_spec_is_a_usage_error(tmp_path, spec):
    result = invoke("evaluate", "--data", spec, "--out", str(tmp_path), "--methods", "gradcam")
    assert result.exit_code == 2
    assert f"'{spec}'" in one_line_error(result)


def test_unknown_layer_is_a_usage_error_with_near_matches(tmp_path):
    result = invoke("evaluate", "--data", "composite:2", "--out", str(tmp_path),
                    "--methods", "gradcam", "--layer", "features.17.conv.9")
    assert result.exit_code == 2
    assert "target_layer 'features.17.conv.9' does not exist in MobileNetV2. Near matches: " \
        "features.17.conv.3" in one_line_error(result)


def test_missing_folder_is_a_one_line_failure(tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    result = invoke("evaluate", "--data", str(missing), "--out", str(tmp_path / "out"),
                    "--methods", "gradcam")
    assert result.exit_code == 1
    assert str(missing) in one_line_error(result)


def test_debug_shows_the_exception_itself(tmp_path):
    missing = tmp_path / "missing"
    result = invoke("evaluate", "--data", str(missing), "--out", str(tmp_path / "out"),
                    "--methods", "gradcam", "--debug")
    assert result.exit_code == 1
    assert isinstance(result.exception, FileNotFoundError)


def test_tiny_real_run_writes_the_files_and_prints_a_table(tmp_path):
    out = tmp_path / "run"
    arguments = ["evaluate", "--model", "mobilenet_v2", "--data", "composite:1",
                 "--methods", "gradcam,layercam", "--layer", "features.18",
                 "--metrics", "axioms,faithfulness,deletion,localization", "--deletion-steps", "3",
                 "--batch-size", "1", "--out", str(out)]
    result = invoke(*arguments)
    assert result.exit_code == 0, result.output + result.stderr
    for name in ("results.sqlite", "summary.csv", "summary.md", "deletion.png",
                 "insertion.png", "bars/average_drop.png", "bars/conservation_error.png"):
        assert (out / name).is_file(), name
    with (out / "summary.csv").open() as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"gradcam", "layercam"}
    assert rows["layercam"]["conservation_error"] == ""  # Layer-CAM has no channel weights
    assert float(rows["gradcam"]["average_drop"]) >= 0
    table = result.stdout.splitlines()
    assert table[0].split() == ["metric", "gradcam", "layercam"]
    assert any(line.split()[:1] == ["conservation_error"] and line.split()[-1] == "-"
               for line in table)
    assert "1 image x 2 methods at features.18" in result.stdout
    # the axioms were asked for by name: a one-line warning that Layer-CAM gets none
    warning = next(line for line in result.stderr.splitlines() if "warning" in line)
    assert warning.startswith("axiomcam: warning: the axioms apply to maps sum_k w_k A^k")
    assert warning.endswith("and layercam has none: no axiom rows for it")
    assert "Warning" not in result.stderr  # not Python's file:line: AxiomCamWarning form

    # the same directory with another configuration: refused, one line, exit 1
    again = invoke(*arguments, "--seed", "1")
    assert again.exit_code == 1
    assert "different configuration" in one_line_error(again)
    assert "--overwrite" in again.stderr

    # more images of the same benchmark: the run is extended, its first image kept
    before = (out / "summary.csv").read_text()
    longer = invoke(*[("composite:2" if argument == "composite:1" else argument)
                      for argument in arguments])
    assert longer.exit_code == 0, longer.output + longer.stderr
    assert "extended the run of composite:1 (seed 0): 1 image was already done" in longer.stdout
    assert "2 images x 2 methods at features.18 (1 computed in" in longer.stdout
    assert (out / "summary.csv").read_text() != before


# ------------------------------------------------------------- explain, compare, layers

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """chelsea written in several formats and modes (and coffee), as a user's folder would
    hold them; returns (folder, {file name: (width, height) upright})."""
    from PIL import Image

    from axiomcam.images import sample_image

    folder = tmp_path_factory.mktemp("photos")
    cat = sample_image("chelsea")  # 451 x 300
    sizes = {}

    def save(name, image, **options):
        image.save(folder / name, **options)
        sizes[name] = image.size

    save("cat.jpg", cat, quality=92)
    save("cat_rgba.png", cat.convert("RGBA"))
    save("cat.bmp", cat)
    save("cat.tiff", cat)
    save("cat.webp", cat, quality=90)
    sixteen = Image.fromarray(np.asarray(cat.convert("L"), dtype=np.uint16) * 257)
    assert sixteen.mode in ("I;16", "I")
    save("cat_16bit.png", sixteen)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    cat.transpose(Image.Transpose.ROTATE_90).save(folder / "cat_exif.jpg", exif=exif)
    sizes["cat_exif.jpg"] = cat.size  # upright it is the original again
    save("coffee_grey.png", sample_image("coffee").convert("L"))
    return folder, sizes


def test_every_subcommand_has_help_with_an_example():
    for command in ("explain", "compare", "layers", "samples", "evaluate"):
        result = invoke(command, "--help")
        assert result.exit_code == 0, command
        assert "Example" in result.output and f"axiomcam {command} " in result.output


def test_explain_writes_overlays_at_the_original_size_and_results_json(photo_folder, tmp_path):
    import json

    from PIL import Image

    folder, sizes = photo_folder
    out = tmp_path / "maps"
    result = invoke("explain", str(folder), "--method", "gradcam", "--out", str(out))
    assert result.exit_code == 0, result.output + result.stderr
    assert f"explained {len(sizes)} images ({len(sizes)} maps, gradcam at features.18)" \
        in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "mobilenet_v2" and results["layer"] == "features.18"
    assert results["failures"] == []
    by_name = {record["path"].rsplit("/", 1)[-1]: record for record in results["images"]}
    assert set(by_name) == set(sizes)
    for name, record in by_name.items():
        assert record["size"] == list(sizes[name])
        (entry,) = record["maps"]
        overlay_file = Image.open(out / entry["overlay"])
        assert overlay_file.size == sizes[name], name
        assert overlay_file.text["class"] == entry["class_name"]
        assert entry["class_index"] == record["top_classes"][0]["index"]
        assert np.load(out / entry["raw"]).shape == (7, 7)
        if name.startswith("cat") and name != "cat_16bit.png":
            assert entry["class_index"] in CAT_CLASSES, (name, entry["class_name"])
    assert by_name["coffee_grey.png"]["top_classes"][0]["index"] == ESPRESSO


def test_explain_top3_and_named_targets(photo_folder, tmp_path):
    import json

    folder, _ = photo_folder
    out = tmp_path / "maps"
    result = invoke("explain", str(folder / "cat.jpg"), "--target", "top3", "--out", str(out),
                    "--method", "guided_gradcam", "--layer", "features.17")
    assert result.exit_code == 0, result.stderr
    (record,) = json.loads((out / "results.json").read_text())["images"]
    assert [m["class_index"] for m in record["maps"]] == \
        [t["index"] for t in record["top_classes"][:3]]
    assert all((out / m["guided"]).is_file() for m in record["maps"])
    named = invoke("explain", str(folder / "cat.jpg"), "--target", "Tabby,282",
                   "--out", str(out))
    assert named.exit_code == 0
    (record,) = json.loads((out / "results.json").read_text())["images"]
    assert [m["class_name"] for m in record["maps"]] == ["tabby", "tiger cat"]


def test_bad_images_are_listed_and_the_good_ones_still_written(photo_folder, tmp_path):
    import json

    folder, _ = photo_folder
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (tmp_path / "notes.png").write_text("just text")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "maps"
    result = invoke("explain", str(folder / "cat.jpg"), str(tmp_path / "missing.png"),
                    str(tmp_path / "corrupt.jpg"), str(tmp_path / "notes.png"),
                    str(tmp_path / "empty"), "--method", "gradcam", "--out", str(out))
    assert result.exit_code == 1
    failed = result.stderr.strip().splitlines()
    assert len(failed) == 4 and all(line.startswith("axiomcam: failed: ") for line in failed)
    for bad, reason in [("missing.png", "no such file"), ("corrupt.jpg", "corrupt"),
                        ("notes.png", "not an image"), ("empty", "no image files")]:
        assert any(bad in line and reason in line for line in failed), (bad, failed)
    results = json.loads((out / "results.json").read_text())
    assert len(results["images"]) == 1 and len(results["failures"]) == 4
    assert (out / results["images"][0]["maps"][0]["overlay"]).is_file()


@pytest.mark.parametrize(("arguments", "expected"), [
    (["--method", "gradkam"], "unknown method 'gradkam'; did you mean gradcam"),
    (["--model", "resnet9000"], "resnet9000"),
    (["--target", "tabbby"], "--target: unknown class name 'tabbby'; did you mean 'tabby'"),
    (["--target", "1000"], "target class 1000 is out of range"),
    (["--target", "crane bird,cranes"], "unknown class name 'cranes'; did you mean 'crane'"),
    (["--layer", "features.99"], "'features.99' does not exist"),
    (["--layer", "classifier.1"], "layer 'classifier.1' has no (B, C, h, w) output"),
    (["--layer", "features.18", "--layer", "features.18"], "--layer 'features.18' is given "
                                                           "twice"),
    (["--layer", "features.18", "--layer", "features.99"], "'features.99' does not exist"),
    (["--colormap", "jett"], "unknown matplotlib colormap 'jett'; did you mean jet"),
    (["--device", "cuda:0"], "no GPU is available"),
    (["--mean", "0.5,0.5"], "mobilenet_v2 takes 3-channel inputs but the mean has 2 values "
                            "and the std 3: give 1 or 3 values each"),
])
def test_explain_usage_errors_exit_2_with_one_line(photo_folder, tmp_path, arguments,
                                                   expected):
    import torch

    if "cuda:0" in arguments and torch.cuda.is_available():
        pytest.skip("a GPU is available here")
    folder, _ = photo_folder
    result = invoke("explain", str(folder / "cat.jpg"), "--out", str(tmp_path / "o"),
                    *arguments)
    assert result.exit_code == 2, result.output
    assert expected in one_line_error(result)
    assert not (tmp_path / "o").exists()


def test_explain_at_several_layers_and_compare_at_one(photo_folder, tmp_path):
    import json

    folder, _ = photo_folder
    out = tmp_path / "maps"
    result = invoke("explain", str(folder / "cat.jpg"), "--out", str(out), "--method",
                    "gradcam", "--layer", "features.13", "--layer", "features.18")
    assert result.exit_code == 0, result.output + result.stderr
    assert "(1 map, gradcam at features.13+features.18)" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["layer"] == ["features.13", "features.18"]
    (entry,) = results["images"][0]["maps"]
    raw = np.load(out / entry["raw"])
    assert raw["features.13"].shape == (14, 14) and raw["features.18"].shape == (7, 7)
    result = invoke("compare", str(folder / "cat.jpg"), "--out", str(tmp_path / "c.png"),
                    "--layer", "features.13", "--layer", "features.18")
    assert result.exit_code == 2
    assert "compare draws (and measures the axioms at) one layer, not 2" in \
        one_line_error(result)


def test_weights_that_do_not_fit_name_the_keys(photo_folder, tmp_path):
    import torch
    import torchvision

    folder, _ = photo_folder
    weights = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), weights)
    result = invoke("explain", str(folder / "cat.jpg"), "--weights", str(weights),
                    "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    line = one_line_error(result)
    assert str(weights) in line and "missing" in line and "unexpected" in line


def test_layers_lists_shapes_and_marks_the_default():
    result = invoke("layers", "--model", "mobilenet_v2")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    marked = [line for line in lines if line.startswith("*")]
    assert len(marked) == 1 and marked[0].split()[1:] == ["features.18", "1280x7x7"]
    assert any(line.split()[:2] == ["features.17.conv.1", "960x7x7"] for line in lines)
    assert lines[-1].endswith("* = default (features.18)")


def test_compare_writes_one_figure_with_axiom_errors(photo_folder, tmp_path):
    from PIL import Image

    folder, _ = photo_folder
    figure = tmp_path / "cmp.png"
    result = invoke("compare", str(folder / "cat.jpg"), str(folder / "coffee_grey.png"),
                    "--methods", "gradcam,xgradcam,layercam", "--layer", "features.17.conv.1",
                    "--axioms", "--out", str(figure))
    assert result.exit_code == 0, result.stderr
    assert "compared 3 methods on 2 images at features.17.conv.1" in result.stdout
    width, height = Image.open(figure).size
    assert width > height > 0  # 4 columns, 2 rows
    several = invoke("compare", str(folder / "cat.jpg"), "--target", "top3", "--out",
                     str(tmp_path / "x.png"))
    assert several.exit_code == 2
    assert "compare shows one class per image" in one_line_error(several)


def test_samples_writes_the_bundled_photographs(tmp_path):
    from PIL import Image

    from axiomcam.images import SAMPLE_IMAGES, sample_image

    result = invoke("samples", str(tmp_path / "photos"))
    assert result.exit_code == 0, result.stderr
    for name in SAMPLE_IMAGES:
        written = Image.open(tmp_path / "photos" / f"{name}.png")
        assert np.array_equal(np.asarray(written), np.asarray(sample_image(name)))
    (tmp_path / "file").write_text("")
    blocked = invoke("samples", str(tmp_path / "file" / "photos"))
    assert blocked.exit_code == 1 and "file" in one_line_error(blocked)


def test_explain_a_users_own_architecture_weights_and_classes(photo_folder, tmp_path):
    import json

    import torch
    import torchvision

    folder, _ = photo_folder
    torch.manual_seed(0)
    weights = tmp_path / "resnet18_3.pth"
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), weights)
    names = tmp_path / "names.txt"
    names.write_text("apple\nbanana\ncherry\n")
    out = tmp_path / "maps"
    result = invoke("explain", str(folder / "cat.jpg"), "--model", "resnet18", "--weights",
                    str(weights), "--classes", str(names), "--size", "96", "--mean", "0.5",
                    "--std", "0.25", "--target", "cherry", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["layer"] == "layer4" and results["model"] == "resnet18"
    assert results["preprocessing"] == {"resize": [96, 96], "crop": None, "channels": 3,
                                        "mean": [0.5] * 3, "std": [0.25] * 3}
    assert (results["score"], results["notes"]) == ("the model's output", [])
    (record,) = results["images"]
    assert {t["name"] for t in record["top_classes"]} == {"apple", "banana", "cherry"}
    (entry,) = record["maps"]
    assert entry["class_name"] == "cherry" and entry["class_index"] == 2
    assert np.load(out / entry["raw"]).shape == (3, 3)  # 96 / 32
    layers = invoke("layers", "--model", "resnet18", "--weights", str(weights), "--size", "96")
    assert "* layer4" in layers.stdout


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # deprecated, still loadable
def test_a_torchscript_model_gets_a_clear_message(photo_folder, tmp_path):
    import torch
    from torch import nn

    folder, _ = photo_folder
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    scripted = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(net), scripted)
    result = invoke("explain", str(folder / "cat.jpg"), "--model", str(scripted),
                    "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "TorchScript" in line and "torch.save(model" in line


# ------------------------------------------------------------ one-line usage, help, names


@pytest.mark.parametrize("arguments", [
    ["layers", "cat.jpg"],                 # an image where the model is expected
    ["layers", "--size", "3"],             # a value click itself refuses
    ["layers", "--nosuch"],
    ["explain"],                           # a missing argument
    ["explain", "x.png", "--batch-size", "0"],
    ["nosuch"],                            # an unknown subcommand
])
def test_clicks_own_usage_errors_are_one_line_too(arguments):
    result = invoke(*arguments)
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    assert "Usage:" not in result.stderr and "Try '" not in result.stderr
    assert line.endswith("--help')")
    if arguments[0] == "layers":
        assert "(see 'axiomcam layers --help')" in line
        assert arguments[1].lstrip("-") in line


@pytest.mark.parametrize("command", ["explain", "compare", "layers", "serve", "evaluate"])
def test_the_model_help_says_torchscript_files_are_refused(command):
    # the loader refuses TorchScript: hooks cannot run inside it (torch 2.x)
    text = " ".join(invoke(command, "--help").output.split())
    assert "TorchScript files are refused" in text
    assert "TorchScript or pickled" not in text


@pytest.mark.parametrize(("layer", "expected"), [
    ("features.99", "'features.99' does not exist in MobileNetV2. Near matches: features.9"),
    ("classifier.1", "layer 'classifier.1' has no (B, C, h, w) output"),
])
def test_a_bad_layer_names_the_command_that_lists_the_layers(photo_folder, tmp_path, layer,
                                                             expected):
    folder, _ = photo_folder
    result = invoke("explain", str(folder / "cat.jpg"), "--layer", layer, "--out",
                    str(tmp_path / "o"))
    assert result.exit_code == 2
    line = one_line_error(result)
    assert expected in line
    assert "'axiomcam layers --model mobilenet_v2' lists the usable layers" in line
    assert "candidate_layers" not in line and "axiomcam.layers" not in line


def test_explain_keeps_each_methods_files_and_warns_before_replacing_another_result(
        photo_folder, tmp_path):
    from PIL import Image

    folder, _ = photo_folder
    out = tmp_path / "maps"
    common = [str(folder / "cat.jpg"), "--out", str(out), "--target", "281"]
    first = invoke("explain", *common, "--method", "gradcam")
    assert first.exit_code == 0 and "warning" not in first.stderr
    second = invoke("explain", *common, "--method", "Grad-CAM++")  # the registry's spelling
    assert second.exit_code == 0, second.stderr
    for method in ("gradcam", "gradcam++"):
        (overlay,) = [path for path in out.glob("cat_*.png")
                      if Image.open(path).text["method"] == method]
        assert overlay.name.startswith(f"cat_{method.replace('+', 'p')}_281-tabby_p")
    (warning,) = second.stderr.splitlines()  # the first run's results.json is replaced
    assert warning.startswith("axiomcam: warning: replaced 1 file in ")
    assert "(method gradcam, model mobilenet_v2, layer features.18): results.json" in warning
    third = invoke("explain", *common, "--method", "gradcam++", "--layer", "features.17")
    assert third.exit_code == 0
    (warning,) = third.stderr.splitlines()
    assert "replaced 3 files" in warning and "layer features.18" in warning
    assert "cat_gradcampp_281-tabby.npy" in warning


def test_the_demo_is_a_subcommand_with_one_line_usage_errors(tmp_path):
    result = invoke("demo", "--help")
    assert result.exit_code == 0 and "axiomcam demo --out results" in result.output
    bad = invoke("demo", "--methods", "gradcam,nosuchcam", "--out", str(tmp_path / "o"))
    assert bad.exit_code == 2
    assert "unknown method(s) 'nosuchcam'" in one_line_error(bad)
    assert not (tmp_path / "o").exists()


def test_occlusion_explains_the_input_and_notes_an_ignored_layer(photo_folder, tmp_path):
    import json

    import torch
    import torchvision

    import axiomcam
    from axiomcam.images import load_image
    from axiomcam.models import load
    from axiomcam.workflows import network_inputs

    folder, _ = photo_folder
    torch.manual_seed(0)
    weights = tmp_path / "resnet18_3.pth"
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), weights)
    model = ["--model", "resnet18", "--weights", str(weights), "--size", "64"]
    out = tmp_path / "maps"
    result = invoke("explain", str(folder / "cat.jpg"), *model, "--method", "occlusion",
                    "--layer", "layer3", "--target", "1", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert "axiomcam: note: occlusion explains the input: --layer ignored" in result.stderr
    assert "occlusion at the input" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "occlusion" and results["layer"] is None
    (entry,) = results["images"][0]["maps"]
    raw = np.load(out / entry["raw"])  # the drop map at the input: windows of ceil(64 / 7)
    pretrained = load("resnet18", weights=weights, size=64)
    inputs = network_inputs(pretrained, [load_image(folder / "cat.jpg")])
    expected = axiomcam.explain(pretrained.model, inputs, "occlusion", targets=1, window=10,
                                stride=5).raw[0]
    assert raw.shape == (64, 64) and raw.std() > 0
    np.testing.assert_allclose(raw, expected.numpy(), rtol=1e-5, atol=1e-6)
    figure = tmp_path / "c.png"
    compared = invoke("compare", str(folder / "cat.jpg"), *model, "--methods",
                      "gradcam,occlusion", "--layer", "layer3", "--out", str(figure))
    assert compared.exit_code == 0, compared.stderr
    assert figure.stat().st_size > 0
