from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.loaders import detect_kind, load_file
from rag.core.errors import LoadError
from rag.core.types import LoadOptions
from tests.helpers import PAPERS, PDF_EDGE, needs_shared


def load(path: Path, options: LoadOptions | None = None):  # noqa: ANN201
    return load_file(path, path.read_bytes(), options or LoadOptions())


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("a.pdf", b"%PDF-1.7\n...", "pdf"),
        ("renamed.txt", b"%PDF-1.4\n...", "pdf"),
        ("page.dat", b"  <!DOCTYPE html><html><body>x</body></html>", "html"),
        ("notes.md", b"# Title\n\ntext", "markdown"),
        ("corpus.jsonl", b'{"_id": "1", "title": "t", "text": "x"}\n', "beir"),
        ("data.jsonl", b'{"id": 1}\n', "text"),
        ("readme", b"plain words", "text"),
        ("scan.txt", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image"),
    ],
)
def test_detect_kind_by_content(name: str, data: bytes, kind: str) -> None:
    assert detect_kind(Path(name), data) == kind


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"  \n\n", "empty file"),
        (b"ID3\x03\x00" + b"\x00" * 64, "unsupported file type: audio/mpeg"),
        (b"PK\x03\x04" + b"\x00" * 64, "unsupported file type: application/zip"),
        (b"\x01\x02\x00\x00\xff" * 20, "unsupported binary file"),
    ],
)
def test_refused_content_has_specific_reason(data: bytes, reason: str) -> None:
    with pytest.raises(LoadError, match=reason):
        detect_kind(Path("x.txt"), data)


def test_markdown_heading_path(tmp_path: Path) -> None:
    md = tmp_path / "guide.md"
    md.write_text("intro\n\n# Guide\n\nabout\n\n## Install\n\nrun pip\n\n## Use\n\nrun rag\n")
    doc = load(md).documents[0]
    assert doc.title == "Guide"
    titles = [s.title for s in doc.sections]
    assert titles == [None, "Guide", "Guide > Install", "Guide > Use"]
    assert "run pip" in doc.sections[2].text


@pytest.mark.parametrize(("text", "title", "first"), [
    ('---\ntitle: "Install the widget"\ntags: [setup]\n---\n\nRun the installer.\n\n## Options\n\n'
     "Use --fast.\n", "Install the widget", "Run the installer."),
    ('+++\ntitle = "Hugo page"\ndate = 2020-01-01\n+++\nBody text.\n', "Hugo page", "Body text."),
    # a thematic break, not front matter: nothing is taken out
    ("---\n\nA break first.\n\n---\n\nMore.\n", "page", "---\n\nA break first."),
])
def test_markdown_front_matter_titles_the_page_and_is_not_indexed(
        tmp_path: Path, text: str, title: str, first: str) -> None:
    """A docs site's page: its front matter is not a section (CommonMark would read the closing
    --- as a heading underline) and its title is the document's."""
    md = tmp_path / "page.md"
    md.write_text(text)
    doc = load(md).documents[0]
    assert doc.title == title and doc.sections[0].title is None
    assert doc.sections[0].text.strip().startswith(first)
    assert not any("tags:" in s.text or "date =" in s.text for s in doc.sections)


RST = """.. _tut-morecontrol:

***********************
More Control Flow Tools
***********************

Besides the :keyword:`while` statement, see :ref:`the tutorial <tut-for>`.

:keyword:`!for` Statements
==========================

The for statement iterates.

Else clauses
------------

Run when the loop ends without break.

.. code-block:: python

   x = 1
   =====

Other tools
===========

End.
"""


def test_rst_section_titles_are_sections(tmp_path: Path) -> None:
    """A Sphinx source: levels in the order the title styles appear (overline first), roles
    read as their text; an indented line over punctuation in a code block is not a title."""
    page = tmp_path / "controlflow.rst"
    page.write_text(RST)
    doc = load(page).documents[0]
    assert doc.kind == "rst" and doc.title == "More Control Flow Tools"
    assert [s.title for s in doc.sections] == [
        None, "More Control Flow Tools", "More Control Flow Tools > for Statements",
        "More Control Flow Tools > for Statements > Else clauses",
        "More Control Flow Tools > Other tools"]
    assert "Besides the while statement, see the tutorial." in doc.sections[1].text
    assert "x = 1" in doc.sections[3].text


@pytest.mark.parametrize(("name", "data"), [
    ("win.md", b"# Title\r\n\r\nBody one.\r\n\r\n## Sub\r\n\r\nBody two.\r\n"),
    ("win.rst", b"Title\r\n=====\r\n\r\nBody one.\r\n\r\nSub\r\n---\r\n\r\nBody two.\r\n"),
    ("mac.md", b"# Title\r\rBody one.\r\r## Sub\r\rBody two.\r"),
])
def test_windows_and_old_mac_line_ends_read_as_newlines(tmp_path: Path, name: str,
                                                        data: bytes) -> None:
    page = tmp_path / name
    page.write_bytes(data)
    doc = load(page).documents[0]
    assert [s.title for s in doc.sections] == ["Title", "Title > Sub"]
    assert not any("\r" in s.text for s in doc.sections)


def test_a_notebook_reads_as_its_cells_without_image_outputs(tmp_path: Path) -> None:
    import json

    from rag.core.errors import LoadError

    cells = [
        {"cell_type": "markdown", "source": ["# Fitting a line\n", "We fit a line."]},
        {"cell_type": "code", "source": "print(2 * 21)", "outputs": [
            {"output_type": "stream", "name": "stdout", "text": ["42\n"]},
            {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo" * 500,
                                                     "text/plain": ["<Figure>"]}}]},
        {"cell_type": "markdown", "source": "## Results\nThe slope is 2."}]
    book = tmp_path / "fit.ipynb"
    book.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {"language": "python"}}}))
    doc = load(book).documents[0]
    assert doc.kind == "notebook" and doc.title == "Fitting a line"
    assert [s.title for s in doc.sections] == ["Fitting a line", "Fitting a line > Results"]
    assert "```python\nprint(2 * 21)\n```\n\n```\n42\n```" in doc.sections[0].text
    assert "iVBOR" not in doc.sections[0].text
    book.write_text('{"nbformat": 4}')
    with pytest.raises(LoadError, match="not a Jupyter notebook"):
        load(book)


def test_a_bare_heading_opens_the_next_section(tmp_path: Path) -> None:
    """"# Guide" straight over "## Install" is not a section of its own (a chunk saying only
    "Guide"); 20,000 bare headings are one section, not 20,000 chunks."""
    md = tmp_path / "guide.md"
    md.write_text("# Guide\n\n## Install\n\nrun pip\n\n## Use\n\nrun rag\n")
    doc = load(md).documents[0]
    assert [(s.title, s.text) for s in doc.sections] == [
        ("Guide > Install", "# Guide\n\n## Install\n\nrun pip\n\n"), ("Guide > Use", "## Use\n\nrun rag\n")]
    md.write_text("# h\n" * 20_000)
    assert len(load(md).documents[0].sections) == 1


def test_markdown_code_block_hash_is_not_a_heading(tmp_path: Path) -> None:
    md = tmp_path / "code.md"
    md.write_text("# Real\n\n```sh\n# not a heading\n```\n")
    assert [s.title for s in load(md).documents[0].sections] == ["Real"]


def test_html_main_text_and_headings(tmp_path: Path) -> None:
    page = tmp_path / "p.html"
    page.write_text(
        "<html><head><title>Doc T</title><script>var x=1;</script></head><body>"
        "<nav>menu items</nav><main><h1>Top</h1><p>First para.</p><h2>Sub</h2>"
        "<p>Second <b>bold</b> para.</p></main><footer>copyright</footer></body></html>"
    )
    doc = load(page).documents[0]
    text = " ".join(s.text for s in doc.sections)
    assert doc.title == "Doc T"
    assert "var x" not in text and "menu items" not in text and "copyright" not in text
    assert [s.title for s in doc.sections] == ["Top", "Top > Sub"]
    assert "Second\nbold\npara." in doc.sections[1].text or "bold" in doc.sections[1].text


SPHINX_PAGE = """<html><head><title>More Control Flow Tools</title></head><body>
<div class="related" role="navigation"><a href="index.html">Python</a> &#187;</div>
<div class="document"><div class="body" role="main"><section>
<h1>More Control Flow Tools<a class="headerlink" href="#top">\u00b6</a></h1>
<p>Besides the while statement,
Python has a few more.</p>
<h2><code class="docutils literal"><span class="pre">for</span></code> Statements<a class="headerlink"
 href="#for">#</a></h2>
<p>The <code>for</code> statement <em>iterates</em> over items.<br>Then a new line.</p>
<div class="highlight"><pre><span class="gp">&gt;&gt;&gt; </span><span class="n">words</span> <span
 class="o">=</span> <span class="p">[</span><span class="s1">&#39;cat&#39;</span><span class="p">]</span>
<span class="gp">&gt;&gt;&gt; </span><span class="k">for</span> <span class="n">w</span> <span
 class="ow">in</span> <span class="n">words</span><span class="p">:</span></pre></div>
<div>outer <p>inner</p> tail</div></section></div>
<div class="sphinxsidebar" role="navigation"><h3>Table of Contents</h3>sidebar link</div></div>
<div class="footer">Copyright 2001-2024</div></body></html>"""


def test_a_documentation_sites_page_reads_as_a_browser_shows_it(tmp_path: Path) -> None:
    """A Sphinx page: inline code flows within its sentence, code blocks keep their lines, the
    permalinks after headings and the navigation, sidebar and footer are not text."""
    page = tmp_path / "controlflow.html"
    page.write_text(SPHINX_PAGE)
    doc = load(page).documents[0]
    assert [s.title for s in doc.sections] == ["More Control Flow Tools",
                                               "More Control Flow Tools > for Statements"]
    text = "\n".join(s.text for s in doc.sections)
    assert "Besides the while statement, Python has a few more." in text
    assert "The for statement iterates over items.\nThen a new line." in text
    assert ">>> words = ['cat']\n>>> for w in words:" in text
    assert "outer\ninner\ntail" in text
    for boilerplate in ("\u00b6", "#", "Python \u00bb", "sidebar link", "Copyright"):
        assert boilerplate not in text


DOCUSAURUS_PAGE = """<html><head><title>Install | Widget</title></head><body>
<nav class="navbar">Docs Blog</nav><aside class="theme-doc-sidebar-container">Intro Install</aside>
<main><div class="col"><nav aria-label="Breadcrumbs">Home</nav><article>
<header><h1>Install</h1></header><p>Run <code>npm i widget</code> first.</p>
<h2 id="req">Requirements<a class="hash-link" href="#req">\u200b</a></h2><p>Node 18 or later.</p>
<nav class="pagination-nav">Previous Next</nav></article></div>
<div class="theme-doc-toc-desktop">Requirements</div></main>
<footer class="footer">Copyright</footer></body></html>"""


def test_an_articles_own_header_is_its_heading_and_the_toc_beside_it_is_left_out(
        tmp_path: Path) -> None:
    """Docusaurus: the h1 sits in the article's header element; a table of contents sits in
    main beside the one article."""
    page = tmp_path / "install.html"
    page.write_text(DOCUSAURUS_PAGE)
    doc = load(page).documents[0]
    assert [(s.title, s.text.strip()) for s in doc.sections] == [
        ("Install", "Install\n\nRun npm i widget first."),
        ("Install > Requirements", "Requirements\n\nNode 18 or later.")]
    # an article that is a teaser beside main's own text is not the page
    page.write_text("<html><body><main><h1>Guide</h1><p>" + "Real words here. " * 30 +
                    "</p><article><h2>Related</h2><p>A teaser.</p></article></main></body></html>")
    assert [s.title for s in load(page).documents[0].sections] == ["Guide", "Guide > Related"]


def test_non_utf8_text_is_decoded(tmp_path: Path) -> None:
    f = tmp_path / "latin.txt"
    f.write_bytes("Café crème brûlée, naïve façade. " .encode("cp1252") * 20)
    assert "Café crème" in load(f).documents[0].sections[0].text


def test_beir_rows_and_bad_lines(tmp_path: Path) -> None:
    f = tmp_path / "corpus.jsonl"
    rows = [{"_id": "d1", "title": "T1", "text": "alpha"}, {"_id": "d2", "text": "beta"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    loaded = load(f)
    assert [d.key for d in loaded.documents] == ["d1", "d2"]
    assert loaded.warnings == ["1 malformed line(s) skipped, first at line 3"]


@needs_shared(PDF_EDGE)
def test_encrypted_pdf_reports_password() -> None:
    with pytest.raises(LoadError, match="encrypted PDF"):
        load(PDF_EDGE / "libreoffice-writer-password.pdf")


@needs_shared(PDF_EDGE)
def test_image_only_pages_are_named() -> None:
    loaded = load(PDF_EDGE / "imagemagick-images.pdf", LoadOptions(ocr="off"))
    assert any("no text layer on page(s) 4-5" in w for w in loaded.warnings)


@needs_shared(PDF_EDGE)
def test_pdf_outline_names_sections_and_pages_are_numbered() -> None:
    doc = load(PDF_EDGE / "pdflatex-outline.pdf").documents[0]
    assert [s.page for s in doc.sections] == [1, 2, 3, 4]
    assert "Foo" in {s.title for s in doc.sections}


@needs_shared(PAPERS)
def test_scanned_paper_is_flagged() -> None:
    loaded = load(PAPERS / "Huffman1952.pdf", LoadOptions(ocr="off"))
    joined = " ".join(loaded.warnings)
    assert "no text layer on page(s) 3-4" in joined
    assert "mostly images" in joined


@needs_shared(PAPERS)
def test_truncated_pdf_is_a_load_error_not_a_crash(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes((PAPERS / "BPE.pdf").read_bytes()[:3000])
    with pytest.raises(LoadError):
        load(broken)


def test_garbage_after_pdf_magic(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\nthis is not a pdf at all\n")
    with pytest.raises(LoadError, match="PDF"):
        load(bad)
