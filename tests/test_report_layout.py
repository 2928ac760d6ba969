"""The HTML report's layout: settings and long tables folded away, tables that scroll rather
than overflow, paragraphs, numbered parts, and viewers that embed plotly.js once and nothing else."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from gradfit import report as rp


class Tree(HTMLParser):
    """Each element's tag, attributes and the tags of its open ancestors."""

    VOID = {"meta", "input", "img", "br", "link", "path", "use"}

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[tuple[str, dict, tuple[str, ...]]] = []
        self._open: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs, tuple(f"{t}.{a.get('class', '')}" for t, a in self._open)))
        if tag not in self.VOID:
            self._open.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs), tuple(f"{t}.{a.get('class', '')}" for t, a in self._open)))

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:
            pass

    def find(self, tag):
        return [(attrs, parents) for t, attrs, parents in self.elements if t == tag]


def table(rows: int) -> rp.Table:
    return rp.Table(("k", "value", "a long column name that should wrap or scroll"),
                    tuple((k, k / 7, "x" * 40) for k in range(rows)), f"{rows} rows")


def viewer(id: str = "v", frames: int = 3) -> rp.Viewer:
    return rp.Viewer(id, "a caption", ({"type": "scatter", "x": [0.0], "y": [1.0]},), {"title": {"text": "t"}},
                     "step", tuple(f"step {k}" for k in range(frames)),
                     tuple({0: {"x": [float(k)], "y": [float("nan") if k == 1 else k * 0.5]}} for k in range(frames)))


def test_settings_and_long_tables_are_folded_short_tables_are_not():
    section = rp.Section("S", settings={"seed": 0}, tables=(table(rp.FOLD_ROWS), table(rp.FOLD_ROWS + 1)))
    tree = Tree(rp.to_html(rp.Report("r", sections=(section,))))
    details = tree.find("details")
    assert len(details) == 2 and all("open" not in attrs for attrs, _ in details)
    tables = tree.find("table")
    assert len(tables) == 2
    short, long = (parents for _, parents in tables)
    assert "details.table" not in short and "details.table" in long
    assert all("div.table-wrap" in parents for _, parents in tables)  # each scrolls on its own


def test_folded_table_says_what_it_holds():
    html = rp.to_html(rp.Report("r", sections=(rp.Section("S", tables=(table(12),)),)))
    assert f"<summary>12 rows ({12} rows)</summary>" in html


def test_css_keeps_figures_and_tables_inside_the_page():
    css = rp._CSS
    assert re.search(r"\.table-wrap \{[^}]*overflow-x: auto", css)
    assert re.search(r"caption \{[^}]*white-space: normal", css)
    assert re.search(r"figure \{[^}]*max-width: 100%", css)


def test_text_splits_into_paragraphs_at_blank_lines():
    text = "First, with <b> escaped.\n\nSecond\nstill second.\n   \nThird."
    html = rp.to_html(rp.Report("r", sections=(rp.Section("S", text),)))
    body = html.split("<section", 1)[1]
    paragraphs = re.findall(r"<p>(.*?)</p>", body, re.S)
    assert paragraphs == ["First, with &lt;b&gt; escaped.", "Second\nstill second.", "Third."]


def test_parts_number_their_sections_and_nest_the_contents():
    parts = (rp.Part("1", "One", "part-1", "Intro.", (rp.Formula("x = 1", "<svg id='f'></svg>"),),
                     (rp.Section("A", anchor="a", number="1.1"), rp.Section("B", anchor="b", number="1.2"))),
             rp.Part("2", "Two", "part-2", sections=(rp.Section("C", anchor="c", number="2.1"),)))
    html = rp.to_html(rp.Report("r", parts=parts, sections=(rp.Section("Loose", anchor="loose"),)))
    nav = html.split("<nav>", 1)[1].split("</nav>", 1)[0]
    assert re.findall(r'href="#([^"]+)"', nav) == ["part-1", "a", "b", "part-2", "c", "loose"]
    assert nav.count("<ol>") == 3  # the parts' list, and one inside each part
    assert '<h3><span class="num">1.2</span>B</h3>' in html
    assert '<article class="part" id="part-1"><header class="part-head"><h2><span class="num">1</span>One</h2>' in html
    assert "<div class=\"formulas\"><div class=\"formula\"><svg id='f'></svg></div></div>" in html
    assert html.index('id="c"') < html.index('id="loose"')


def test_a_page_without_viewers_has_no_script():
    html = rp.to_html(rp.Report("r", sections=(rp.Section("S", tables=(table(2),)),)))
    assert "<script" not in html and "every image is embedded" in html


def test_viewers_embed_plotly_once_and_their_data_inline():
    from plotly.offline import get_plotlyjs

    sections = (rp.Section("A", viewers=(viewer("v1"),)), rp.Section("B", viewers=(viewer("v2", 5),)))
    html = rp.to_html(rp.Report("r", sections=sections))
    assert html.count(get_plotlyjs()) == 1
    scripts = Tree(html).find("script")
    assert all("src" not in attrs for attrs, _ in scripts)  # inline: nothing is fetched
    data = re.findall(r'<script type="application/json" class="viewer-data">(.*?)</script>', html, re.S)
    assert len(data) == 2
    spec = json.loads(data[1])
    assert spec["positions"] == [f"step {k}" for k in range(5)]
    assert spec["frames"][1] == {"0": {"x": [1.0], "y": [None]}}  # NaN as null: JSON has no NaN
    sliders = Tree(html).find("input")
    assert [(a["id"], a["type"], a["min"], a["max"]) for a, _ in sliders] == [
        ("v1-slider", "range", "0", "2"), ("v2-slider", "range", "0", "4")]


def test_viewer_data_cannot_close_its_script_early():
    v = rp.Viewer("v", "c", ({"name": "</script><script>alert(1)</script>"},), {}, "k", ("a",), ({},))
    text = rp.viewer_json(v)
    assert "</" not in text and json.loads(text)["traces"][0]["name"].startswith("</script>")


@pytest.mark.parametrize("kwargs,message", [
    (dict(positions=("a",), frames=({}, {})), "one label per frame"),
    (dict(positions=(), frames=()), "at least one frame"),
    (dict(positions=("a",), frames=({},), start=1), "not a position"),
])
def test_viewer_checks_its_frames(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rp.Viewer("v", "c", (), {}, "k", **kwargs)


def test_a_png_figure_keeps_its_text_readable_in_a_narrow_window():
    """Shown at no less than `READABLE` of its own width, in a box that scrolls sideways."""
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5))
    fig.add_subplot().plot([0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150)
    html = rp.to_html(rp.Report("r", sections=(rp.Section("S", images=(rp.Image("c", png=buffer.getvalue()),)),)))
    assert f"min-width: {round(rp.READABLE * 13 * 150)}px" in html
    assert '<div class="figure-scroll"><img' in html
