"""The HTML report: self-contained, names every method, tables and directions, a gallery of
the best and worst images by the ranking metric (checked against the database), escaped
data strings; the gallery selection on hand-made databases."""

from __future__ import annotations

import base64
import dataclasses
import io
from html.parser import HTMLParser

import pytest
import torch
from PIL import Image
from test_runner import BLUE, GREEN, RED, Listed, colour_classifier, painted, toy_samples

from axiomcam.data import Sample
from axiomcam.evaluation.gallery import build_gallery
from axiomcam.evaluation.report import (
    RANKING_METRICS,
    GalleryItem,
    select_gallery,
    write_report,
)
from axiomcam.evaluation.runner import evaluate
from axiomcam.evaluation.store import ImageRow, ResultRow, ResultStore
from axiomcam.evaluation.summary import summarize

EVIL_CLASS = "red <script>alert('class')</script>"
EVIL_ID = "<script>alert('id')</script>.png"
URL_ID = "http://example.com/square.png"
METHODS = ["gradcam", "layercam"]
K = 3  # with 6 images: the 3 best and the 3 worst, so every id is shown


class Page(HTMLParser):
    """The parts of the report the tests look at: every tag's attributes, the gallery
    figures and the text of each figure's caption."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.figures: list[dict[str, str | None]] = []
        self.captions: list[str] = []
        self._caption: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "figure" and attributes.get("class") == "gallery-item":
            self.figures.append(attributes)
            self._caption = []

    def handle_endtag(self, tag):
        if tag == "figure" and self._caption is not None:
            self.captions.append(" ".join(self._caption))
            self._caption = None

    def handle_data(self, data):
        if self._caption is not None:
            self._caption.append(data)


def square(name, colour, label, x0, y0, x1, y1, background=(0, 0, 0)) -> Sample:
    return Sample(name, painted(background, [(colour, x0, y0, x1, y1)]), label,
                  torch.tensor([[float(x0), float(y0), float(x1), float(y1)]]),
                  torch.tensor([label]))


def report_samples() -> list[Sample]:
    return [*toy_samples(),
            square(EVIL_ID, RED, 0, 4, 4, 28, 28),
            square(URL_ID, BLUE, 2, 0, 16, 16, 32, background=(40, 40, 40)),
            square("small-green", GREEN, 1, 20, 2, 28, 10, background=(90, 0, 0))]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    pretrained = dataclasses.replace(colour_classifier(),
                                     class_names=[EVIL_CLASS, "green", "blue"])
    out_dir = tmp_path_factory.mktemp("report")
    return evaluate(pretrained, Listed(report_samples()), METHODS, out_dir=out_dir,
                    metrics="faithfulness,deletion,localization", deletion_steps=4,
                    batch_size=3, gallery_images=K, progress=False)


@pytest.fixture(scope="module")
def page(run) -> tuple[str, Page]:
    text = run.report.read_text(encoding="utf-8")
    return text, Page(text)


def test_the_report_is_one_self_contained_file(run, page):
    text, parsed = page
    assert run.report == run.out_dir / "report.html"
    for outside in ("http://", "https://", "<link", "<script", "@import", "url("):
        assert outside not in text, outside
    sources = [attributes.get("src") for _, attributes in parsed.tags if "src" in attributes]
    assert sources and all(source.startswith("data:image/") for source in sources)
    assert text.count('src="') == len(sources)  # no src the parser did not see
    formats = []
    for source in sources:
        header, data = source.split(",", 1)
        assert header.endswith(";base64")
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        image.load()  # a truncated or corrupt image raises here
        formats.append(image.format)
        assert header == f"data:image/{image.format.lower()};base64"
    # every plot the summary wrote, as PNG; the gallery pictures as JPEG
    assert formats.count("PNG") == len(run.files.plots) > 0
    assert formats.count("JPEG") == len(parsed.figures) == 2 * K * len(METHODS)
    for plot in run.files.plots:
        encoded = base64.b64encode(plot.read_bytes()).decode("ascii")
        assert f"data:image/png;base64,{encoded}" in text, plot.name


def test_the_report_names_every_method_and_the_configuration(run, page):
    text, _ = page
    headings = " ".join(text.split("<h3")[1:])
    for method in METHODS:
        assert f'id="gallery-{method}">{method}</h3>' in headings
        assert f"<th>{method}</th>" in text  # a column of the summary table
    for shown in ("colours", "hand-made colours", "faithfulness, deletion, localization",
                  "axiomcam version", "<th>images evaluated</th><td>6</td>", "<th>seed</th>"):
        assert shown in text, shown


def test_summary_tables_reuse_summarize_with_directions(run, page):
    text, _ = page
    summaries = summarize(run.out_dir)
    assert summaries == run.summaries
    for summary in summaries:
        assert f'id="metric-{summary.metric}"' in text
    assert "average_drop</a></th><td>lower is better</td>" in text
    assert "insertion_auc</a></th><td>higher is better</td>" in text
    # the detailed rows of the lowest mean Average Drop are highlighted (on the identity
    # network Grad-CAM and Layer-CAM draw the same maps: a tie, both; the hand-made test
    # below has a strict winner)
    drops = [s for s in summaries if s.metric == "average_drop"]
    lowest = min(s.mean for s in drops)
    section = text.split('id="metric-average_drop"')[1].split("</table>")[0]
    winners = [s for s in drops if s.mean == pytest.approx(lowest, rel=1e-5)]
    for summary in winners:
        assert f'<tr class="best"><td>{summary.method}</td><td class="num">{summary.n}</td>' \
            in section
    assert section.count('class="best"') == len(winners)


def test_the_gallery_holds_the_best_and_worst_images_by_the_ranking_metric(run, page):
    _, parsed = page
    with ResultStore.open(run.out_dir) as store:
        rows = store.results()
    assert RANKING_METRICS[0] == "insertion_minus_deletion"
    for method in METHODS:
        insertion = {r.image_id: r.value for r in rows
                     if r.method == method and r.metric == "insertion_auc"}
        deletion = {r.image_id: r.value for r in rows
                    if r.method == method and r.metric == "deletion_auc"}
        values = {image: insertion[image] - deletion[image] for image in insertion}
        assert len(values) == 6
        figures = [f for f in parsed.figures if f["data-method"] == method]
        best = [f for f in figures if f["data-rank"] == "best"]
        worst = [f for f in figures if f["data-rank"] == "worst"]
        assert len(best) == len(worst) == K
        assert {f["data-metric"] for f in figures} == {"insertion_minus_deletion"}
        for figure in figures:
            assert float(figure["data-value"]) == pytest.approx(values[figure["data-image-id"]],
                                                                abs=1e-12)
        # higher is better: the best row starts at the maximum, the worst at the minimum
        assert float(best[0]["data-value"]) == pytest.approx(max(values.values()), abs=1e-12)
        assert float(worst[0]["data-value"]) == pytest.approx(min(values.values()), abs=1e-12)
        ranked = sorted(values, key=values.get, reverse=True)
        assert [f["data-image-id"] for f in best] == ranked[:K]
        assert [f["data-image-id"] for f in worst] == ranked[::-1][:K]


def test_data_strings_are_escaped(run, page):
    text, parsed = page
    assert "<script" not in text
    assert "&lt;script&gt;alert(&#x27;class&#x27;)&lt;/script&gt;" in text  # class name
    assert "&lt;script&gt;alert(&#x27;id&#x27;)&lt;/script&gt;.png" in text  # image id
    assert "http://" not in text  # the URL-like id is written http:&#47;&#47;...
    # in a browser (a parser) both ids and the class name read exactly as in the data
    captions = {figure["data-image-id"]: caption
                for figure, caption in zip(parsed.figures, parsed.captions, strict=True)}
    assert captions[EVIL_ID].startswith(f"{EVIL_ID} class: {EVIL_CLASS} the label")
    assert captions[URL_ID].startswith(f"{URL_ID} class: blue the label")


def test_the_escaping_of_every_gallery_string(tmp_path):
    with ResultStore.create(tmp_path, {"seed": 0, "data": "https://x/<b>"}) as store:
        store.write_batch(results=[ResultRow(EVIL_ID, "gradcam", "average_drop", 4.0)])
    item = GalleryItem(EVIL_ID, "best", "average_drop", 4.0, Image.new("RGB", (300, 150)),
                       class_name=EVIL_CLASS, note="<i>note</i>")
    text = write_report(tmp_path, {"gradcam": [item]}).read_text(encoding="utf-8")
    assert "<script" not in text and "<i>" not in text and "https://" not in text
    parsed = Page(text)
    assert parsed.figures[0]["data-image-id"] == EVIL_ID
    assert parsed.captions[0] == f"{EVIL_ID} class: {EVIL_CLASS} <i>note</i> average_drop = 4"
    assert "<title>axiomcam evaluation: a model on https://x/<b></title>" not in text
    title = text.split("<title>")[1].split("</title>")[0]
    assert title == "axiomcam evaluation: a model on https:&#47;&#47;x/&lt;b&gt;"
    # a picture larger than a thumbnail is shrunk to 224 px on its longest side
    source = next(a["src"] for tag, a in parsed.tags
                  if tag == "img" and a["src"].startswith("data:image/jpeg"))
    picture = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
    assert picture.size == (224, 112) and picture.format == "JPEG"


def test_gallery_pictures_put_the_map_on_the_whole_image(run):
    """Redrawn for every image (k = 10): "wrong-class" is red with a green square at
    8..24 of 32, labelled green; its map is 1 on the square and 0 elsewhere, so the
    thumbnail (224 px, square at 56..168) is jet(1) = (0.5, 0, 0) blended half-half with
    green inside and jet(0) = (0, 0, 0.5) with red outside, the box drawn in white."""
    pretrained = colour_classifier()
    gallery = build_gallery(pretrained, Listed(report_samples()), run.out_dir, k=10)
    assert set(gallery) == set(METHODS)
    for method in METHODS:
        items = {item.image_id: item for item in gallery[method]}
        assert len(items) == 6  # 3 best, 3 worst: every image once
        item = items["wrong-class"]
        assert item.class_name == "green" and item.note.startswith("the label; top-1: red")
        picture = item.picture
        assert picture.size == (224, 224)
        inside = picture.getpixel((112, 112))
        outside = picture.getpixel((20, 20))
        assert all(abs(a - b) <= 3 for a, b in zip(inside, (64, 128, 0), strict=True))
        assert all(abs(a - b) <= 3 for a, b in zip(outside, (128, 0, 64), strict=True))
        assert picture.getpixel((56, 112)) == (255, 255, 255)  # the box's left edge
        assert picture.getpixel((112, 167)) == (255, 255, 255)  # its bottom edge
        # off centre: "small-green" has its square at x 20..28, y 2..10 of 32 on dark red
        # (90, 0, 0): at x 140..196, y 14..70 of the thumbnail
        picture = items["small-green"].picture
        inside = picture.getpixel((168, 42))
        outside = picture.getpixel((40, 180))
        assert all(abs(a - b) <= 3 for a, b in zip(inside, (64, 128, 0), strict=True))
        assert all(abs(a - b) <= 3 for a, b in zip(outside, (45, 0, 64), strict=True))
        assert picture.getpixel((140, 42)) == (255, 255, 255)
        # the unlabelled image is explained for its top-1 class (blue)
        assert items["unlabelled"].class_name == "blue"
        assert items["unlabelled"].note.startswith("no label")
    assert build_gallery(pretrained, Listed(report_samples()), run.out_dir, k=0) == {}


def test_the_gallery_shows_its_progress_over_the_maps_it_draws(run, capsys):
    pretrained = colour_classifier()
    build_gallery(pretrained, Listed(report_samples()), run.out_dir, k=1, progress=True)
    bar = capsys.readouterr().err.split("\r")[-1]
    drawn = 2 * len(METHODS)  # one best and one worst per method
    assert bar.startswith("gallery: 100%") and f" {drawn}/{drawn} " in bar
    build_gallery(pretrained, Listed(report_samples()), run.out_dir, k=1, progress=False)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- selection, by hand
def stored(tmp_path, rows: list[tuple[str, str, str, float]]) -> None:
    with ResultStore.create(tmp_path, {"seed": 0}, overwrite=True) as store:
        images = list(dict.fromkeys(row[0] for row in rows))
        store.write_batch(images=[ImageRow(i, None, None, 0, 0.5, 8, 8) for i in images],
                          results=[ResultRow(*row) for row in rows])


def ids(ranked) -> list[str]:
    return [item.image_id for item in ranked]


def test_the_ranking_metric_falls_back_in_order(tmp_path):
    drops = [("a", 40.0), ("b", 10.0), ("c", 90.0), ("d", 10.0), ("e", 55.0)]
    stored(tmp_path, [
        # deletion ran: insertion - deletion = 0.6, 0.1, -0.2 ranks, not the Average Drop
        ("a", "m1", "insertion_auc", 0.7), ("a", "m1", "deletion_auc", 0.1),
        ("b", "m1", "insertion_auc", 0.3), ("b", "m1", "deletion_auc", 0.2),
        ("c", "m1", "insertion_auc", 0.1), ("c", "m1", "deletion_auc", 0.3),
        ("a", "m1", "average_drop", 99.0),
        # Average Drop, lower is better; b and d tie: the stored order decides
        *[(image, "m2", "average_drop", drop) for image, drop in drops],
        ("a", "m2", "energy_pointing_game", 1.0),
        # energy pointing game, higher is better
        ("a", "m3", "energy_pointing_game", 0.2), ("b", "m3", "energy_pointing_game", 0.9),
        ("a", "m3", "conservation_error", 0.0),
        # conservation error alone, one image: best only
        ("c", "m4", "conservation_error", 0.3),
        # nothing that ranks
        ("a", "m5", "bias_share", 0.1),
    ])
    chosen = select_gallery(tmp_path, k=3)
    assert list(chosen) == ["m1", "m2", "m3", "m4"]
    m1 = chosen["m1"]
    assert (m1.metric, m1.better, m1.images) == ("insertion_minus_deletion", "higher", 3)
    assert ids(m1.best) == ["a", "b"] and ids(m1.worst) == ["c"]  # ceil(3 / 2) best
    assert [item.value for item in m1.best] == pytest.approx([0.6, 0.1])
    m2 = chosen["m2"]
    assert (m2.metric, m2.better) == ("average_drop", "lower")
    assert ids(m2.best) == ["b", "d", "a"] and ids(m2.worst) == ["c", "e"]
    assert (chosen["m3"].metric, ids(chosen["m3"].best), ids(chosen["m3"].worst)) == \
        ("energy_pointing_game", ["b"], ["a"])
    assert (chosen["m4"].metric, ids(chosen["m4"].best), chosen["m4"].worst) == \
        ("conservation_error", ["c"], ())
    one = select_gallery(tmp_path, k=1)["m2"]
    assert ids(one.best) == ["b"] and ids(one.worst) == ["c"]
    assert all(not s.best and not s.worst for s in select_gallery(tmp_path, k=0).values())
    with pytest.raises(ValueError, match="k must be an int >= 0, got -1"):
        select_gallery(tmp_path, k=-1)


def test_a_report_without_gallery_still_has_tables_and_plots(tmp_path):
    stored(tmp_path, [("a", "gradcam", "average_drop", 10.0),
                      ("b", "gradcam", "average_drop", 30.0),
                      ("c", "gradcam", "average_drop", 80.0),
                      ("a", "xgradcam", "average_drop", 5.0),
                      ("a", "hirescam", "average_drop", 5.00001),  # float rounding: a tie
                      ("a", "cam", "average_drop", 5.001)])
    text = write_report(tmp_path, title="my <run>").read_text(encoding="utf-8")
    assert "<h1>my &lt;run&gt;</h1>" in text
    assert "No gallery" in text
    section = text.split('id="metric-average_drop"')[1].split("</table>")[0]
    # gradcam: mean 40, median 30 over 3 images; xgradcam: one image, interval [5, 5]
    assert '<td>gradcam</td><td class="num">3</td><td class="num">40</td>' \
           '<td class="num">30</td>' in section
    assert '<tr class="best"><td>xgradcam</td><td class="num">1</td><td class="num">5</td>' \
           '<td class="num">5</td><td class="num">[5, 5]</td>' in section
    assert '<tr class="best"><td>hirescam</td>' in section
    assert "<tr><td>cam</td>" in section and section.count('class="best"') == 2
    assert "(<b>lower is better</b>)" in section
    assert (tmp_path / "bars" / "average_drop.png").is_file()
    assert text.count("data:image/png;base64,") == 1
