"""The app's HTTP server (axiomcam.app.server), in this process on a free loopback port:
every route answers what the explorer computes, every bad request is a JSON error with a
message and the server keeps serving, and nothing connects anywhere but loopback."""

from __future__ import annotations

import io
import ipaddress
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from axiomcam.app.explorer import METHODS, Explorer
from axiomcam.app.server import AppServer
from axiomcam.images import overlay, sample_image
from axiomcam.models import PretrainedModel

CLASSES = ["cat", "dog", "car", "tiger cat"]

#: every address a socket of this process connected to (an audit hook cannot be removed,
#: so it only records; the test below checks what was recorded while the server ran)
_CONNECTIONS: list[object] = []


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect":
        _CONNECTIONS.append(args[1])


sys.addaudithook(_audit)


@pytest.fixture(scope="module")
def server():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, len(CLASSES)))
    pretrained = PretrainedModel("tiny", model.eval(), None, None, CLASSES, "3", 32,
                                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    app = AppServer(Explorer(pretrained, deletion_steps=4), "127.0.0.1", 0)
    thread = threading.Thread(target=app.serve_forever, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        app.shutdown()
        app.server_close()
        thread.join(10)


def call(server, path: str, body: bytes | dict | None = None, method: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict | bytes, dict]:
    """(status, JSON or bytes, headers) of one request, sent as the app's page sends it."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    content_type = ("application/json" if path.startswith("/api/jobs")
                    else "application/octet-stream")
    request = urllib.request.Request(server.url.rstrip("/") + path, data=data,
                                     method=method or ("POST" if data is not None else "GET"),
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw, headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, headers = error.code, error.read(), dict(error.headers)
    if headers.get("Content-Type") == "application/json":
        return status, json.loads(raw), headers
    return status, raw, headers


def wait_for(server, job_id: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, payload, _ = call(server, f"/api/jobs/{job_id}")
        assert status == 200
        if payload["state"] in ("done", "failed"):
            return payload
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_page_is_one_file_with_nothing_from_another_address(server):
    status, page, headers = call(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    text = page.decode()
    assert "<script>" in text and "<style>" in text
    # no external script, style, font or image: every URL the page names is its own
    assert "http://" not in text and "https://" not in text and "//" + "cdn" not in text
    assert "<link" not in text and "src=\"http" not in text and "@import" not in text


def test_info_lists_layers_with_the_default_marked_and_the_methods(server):
    status, info, _ = call(server, "/api/info")
    assert status == 200
    assert [layer["name"] for layer in info["layers"]] == ["0", "1", "2", "3"]
    assert [layer["default"] for layer in info["layers"]] == [False, False, False, True]
    assert info["layers"][3]["shape"] == [8, 16, 16]
    assert [method["name"] for method in info["methods"]] == list(METHODS)
    assert {m["name"] for m in info["methods"] if m["default"]} == {"gradcam", "xgradcam"}
    assert info["class_names"] == CLASSES
    assert "chelsea" in [sample["name"] for sample in info["samples"]]
    assert (info["channels"], info["score"], info["notes"]) == (3, "the model's output", [])


def test_an_upload_is_classified_and_explained_with_the_explorers_numbers(server):
    pixels = np.random.default_rng(3).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    photo = Image.fromarray(pixels)
    status, opened, _ = call(server, "/api/images?name=my%20photo.png", png(photo))
    assert status == 200 and opened["notice"] is None
    assert (opened["width"], opened["height"], opened["name"]) == (50, 30, "my photo.png")
    reference = server.explorer.open_image(photo)
    assert [row["index"] for row in opened["top_classes"]] == \
        [row["index"] for row in reference.top_classes]
    status, image, _ = call(server, opened["url"])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(image))), pixels)

    status, job, _ = call(server, "/api/jobs", {"image": opened["id"], "target": "Dog",
                                                "layer": "", "methods": ["gradcam",
                                                                         "xgradcam"]})
    assert status == 200 and (job["class_index"], job["layer"]) == (1, "3")
    done = wait_for(server, job["id"])
    assert done["state"] == "done" and done["progress"] == 1.0
    expected = server.explorer.explain(reference, 1, "3", ["gradcam", "xgradcam"])
    for shown, result in zip(done["results"], expected, strict=True):
        assert shown["method"] == result.method and shown["error"] is None
        for key in ("conservation_error", "sensitivity_error", "bias_share", "deletion_auc"):
            assert shown[key] == pytest.approx(getattr(result, key), rel=1e-6, abs=1e-9)
        status, heatmap, _ = call(server, shown["heatmap"])
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(heatmap))),
                              np.asarray(result.heatmap))
        status, picture, headers = call(server, shown["overlay"] + "?alpha=0.25&download=1")
        assert status == 200 and headers["Content-Disposition"] == \
            f"attachment; filename*=UTF-8''my-photo_{result.method}_1-dog_3_overlay_a0.25.png"
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(picture))),
                              np.asarray(overlay(photo, result.cam_map, alpha=0.25)))


def test_a_sample_opens_by_name(server):
    status, opened, _ = call(server, "/api/images?sample=coffee", b"")
    assert status == 200
    assert (opened["width"], opened["height"]) == sample_image("coffee").size


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/api/images?name=notes.txt", b"plain words", 400,
     "'notes.txt' is not an image PIL can read"),
    ("/api/images?name=empty.png", b"", 400, "'empty.png' is empty"),
    ("/api/images?sample=moon", b"", 400, "unknown sample image 'moon'"),
    ("/api/jobs", b"{not json", 400, "the request is not JSON"),
    ("/api/jobs", b"[1, 2]", 400, "the request must be a JSON object"),
    ("/api/jobs", {"image": "i999", "target": "cat", "methods": ["gradcam"]}, 404,
     "no image 'i999'"),
    ("/api/nothing", b"", 404, "no such page: /api/nothing"),
])
def test_bad_requests_are_json_errors_and_the_server_goes_on(server, path, body, status,
                                                             message):
    got, payload, _ = call(server, path, body, method="POST")
    assert got == status and message in payload["error"]
    assert call(server, "/api/info")[0] == 200


def test_bad_job_requests_name_the_problem(server):
    _, opened, _ = call(server, "/api/images?sample=chelsea", b"")
    cases = [
        ({"target": "unicorn"}, "unknown class name 'unicorn'"),
        ({"target": "tiger"}, "did you mean 'tiger cat'?"),
        ({"target": "7"}, "target class 7 is out of range"),
        ({"layer": "9"}, "'9' does not exist"),
        ({"layer": "5"}, "layer '5' has no (B, C, h, w) output"),
        ({"methods": []}, "pick at least one method"),
        ({"methods": "gradcam"}, "methods must be a list"),
        ({"methods": ["nocam"]}, "unknown method 'nocam'"),
    ]
    for change, message in cases:
        request = {"image": opened["id"], "target": "cat", "layer": "", "methods": ["gradcam"]}
        request.update(change)
        status, payload, _ = call(server, "/api/jobs", request)
        assert status == 400 and message in payload["error"], (change, payload)
    for path, message in [("/api/jobs/j999", "no job 'j999'"),
                          ("/api/images/i999.png", "no image 'i999'")]:
        status, payload, _ = call(server, path)
        assert status == 404 and message in payload["error"]


def test_a_method_that_cannot_explain_is_shown_with_its_reason(server):
    _, opened, _ = call(server, "/api/images?sample=chelsea", b"")
    _, job, _ = call(server, "/api/jobs", {"image": opened["id"], "target": "0", "layer": "1",
                                           "methods": ["cam", "gradcam"]})
    done = wait_for(server, job["id"])
    cam, gradcam = done["results"]
    assert cam["error"] and cam["heatmap"] is None and gradcam["heatmap"]
    status, payload, _ = call(server, f"/api/jobs/{job['id']}/0/overlay.png")
    assert status == 404 and "CAM has no map" in payload["error"]
    status, payload, _ = call(server, f"/api/jobs/{job['id']}/1/overlay.png?alpha=2")
    assert status == 400 and "opacity must be a number in [0, 1]" in payload["error"]


def test_a_counterfactual_job_gives_the_explorers_counterfactual_maps(server):
    _, opened, _ = call(server, "/api/images?sample=chelsea", b"")
    _, info, _ = call(server, "/api/info")
    offered = {method["name"]: method["counterfactual"] for method in info["methods"]}
    assert offered["gradcam"] and offered["layercam"] and not offered["scorecam"]
    request = {"image": opened["id"], "target": "dog", "layer": "1",
               "methods": ["gradcam", "eigencam"], "counterfactual": True}
    status, job, _ = call(server, "/api/jobs", request)
    assert status == 200 and job["counterfactual"] is True
    done = wait_for(server, job["id"])
    assert done["counterfactual"] is True
    gradcam, eigencam = done["results"]
    assert gradcam["title"] == "Grad-CAM (counterfactual)"
    assert "has no counterfactual form" in eigencam["error"]
    opened_image = server.explorer.open_sample("chelsea")
    (expected,) = server.explorer.explain(opened_image, 1, "1", ["gradcam"],
                                          counterfactual=True)
    _, heatmap, _ = call(server, gradcam["heatmap"])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(heatmap))),
                          np.asarray(expected.heatmap))
    (plain,) = server.explorer.explain(opened_image, 1, "1", ["gradcam"])
    assert not np.array_equal(np.asarray(plain.heatmap), np.asarray(expected.heatmap))
    _, _, headers = call(server, gradcam["overlay"] + "?download=1")
    assert "chelsea_gradcam-counterfactual_1-dog_1_overlay" in headers["Content-Disposition"]
    request["counterfactual"] = "yes"
    status, payload, _ = call(server, "/api/jobs", request)
    assert status == 400 and payload["error"] == 'counterfactual must be true or false, not "yes"'


def test_nothing_connects_beyond_loopback(server):
    call(server, "/")
    call(server, "/api/info")
    for address in _CONNECTIONS:
        host = address[0] if isinstance(address, tuple) else None
        assert host is not None and ipaddress.ip_address(host).is_loopback, address


def test_an_upload_over_the_limit_is_answered_with_its_size(server, monkeypatch):
    from axiomcam.app import server as server_module

    monkeypatch.setattr(server_module, "MAX_UPLOAD_BYTES", 2**20)
    status, payload, _ = call(server, "/api/images?name=big.png", b"x" * (2**20 + 1))
    assert status == 400
    assert payload["error"] == "the upload is 1 MB; the app takes images up to 1 MB"


def test_the_command_line_says_when_the_port_is_taken():
    from click.testing import CliRunner

    from axiomcam.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert f"axiomcam: error: cannot listen on 127.0.0.1:{port}: Address already in use" \
        in result.output
    result = CliRunner().invoke(main, ["serve", "--port", "70000"])
    assert result.exit_code == 2 and "70000 is not in the range 0<=x<=65535" in result.output


def test_other_sites_pages_cannot_use_the_app(server):
    """A page from elsewhere can make the browser send requests to 127.0.0.1: a form post
    (its content type is refused) or a DNS-rebound name (its Host is refused)."""
    status, payload, _ = call(server, "/api/jobs", b'{"image": "i1"}',
                              headers={"Content-Type": "text/plain"})
    assert status == 415
    assert payload["error"] == "this request must be sent as application/json, not text/plain"
    status, payload, _ = call(server, "/api/images?sample=coffee", b"",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and "must be sent as application/octet-stream" in payload["error"]
    port = server.server_address[1]
    status, payload, _ = call(server, "/api/info", headers={"Host": f"evil.example:{port}"})
    assert status == 403
    assert payload["error"] == "the app answers only at a loopback address, not at " \
        "'evil.example'"
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert call(server, "/api/info", headers={"Host": host})[0] == 200
