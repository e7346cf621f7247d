"""Markdown, reStructuredText, Jupyter notebooks, HTML and plain-text files: headings become
sections, HTML tables become Markdown tables, scripts and navigation are dropped."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from ingest.text import clean, decode_text, markdown_table
from rag.core.errors import LoadError
from rag.core.types import Document, Loaded, Section


class MarkdownLoader:
    """One section per heading, titled with the heading path (``Install > From source``); the
    front matter of a documentation site's page (Jekyll, Hugo, MkDocs, Docusaurus) gives the
    title and is not indexed."""

    kind = "markdown"

    def load(self, path: Path, data: bytes) -> Loaded:
        title, text = front_matter(clean(decode_text(data)))
        doc = heading_document(path, text, _markdown_headings(text), self.kind)
        return Loaded([replace(doc, title=title) if title else doc])


# YAML (---) or TOML (+++) front matter: first line of the file, closed by the same mark (YAML
# also by "..."), its first entry a key. CommonMark would read "---" under the entries as a
# heading's underline and make "title: ... tags: ..." a section title.
_FRONT_MATTER = re.compile(
    r"\A(?:---[ \t]*\n(?=[ \t]*[\w-]+[ \t]*:)(.*?)\n(?:---|\.\.\.)"
    r"|\+\+\+[ \t]*\n(?=[ \t]*[\w-]+[ \t]*=)(.*?)\n\+\+\+)[ \t]*(?:\n|\Z)", re.S)
_TITLE = re.compile(r"^title[ \t]*[:=][ \t]*(.+?)[ \t]*$", re.M | re.I)


def front_matter(text: str) -> tuple[str, str]:
    """(the front matter's title or "", the text after it)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return "", text
    entries = match.group(1) if match.group(1) is not None else match.group(2)
    title = _TITLE.search(entries)
    value = title.group(1).strip().strip("\"'").strip() if title else ""
    return value, text[match.end():]


def _markdown_headings(text: str) -> list[tuple[int, int, str]]:
    """(char offset, level, title) of each heading, via markdown-it's parser (not regexes)."""
    from markdown_it import MarkdownIt

    line_starts = [0]
    for match in re.finditer("\n", text):
        line_starts.append(match.end())
    tokens = MarkdownIt("commonmark").parse(text)
    headings = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            title = tokens[i + 1].content.strip()
            headings.append((line_starts[tok.map[0]], int(tok.tag[1]), title))
    return headings


def heading_document(
    path: Path, text: str, headings: list[tuple[int, int, str]], kind: str
) -> Document:
    """One section per heading (the text from it to the next), titled with the heading path.
    A heading with no text of its own before the next one opens that one's section instead of
    being a section alone: a chunk holding only "# Part II" says nothing, and a file of 200,000
    bare headings made 200,000 chunks."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    bounds = [(0, 0, "")] + headings + [(len(text), 0, "")]
    doc_title = next((t for _, level, t in headings if level == 1), "") or path.stem
    opened: int | None = None  # where a bare heading waiting for the next one's section began
    for (start, level, title), (end, _, _) in zip(bounds, bounds[1:], strict=False):
        if level:
            stack = [(lv, t) for lv, t in stack if lv < level] + [(level, title)]
        begin = start if opened is None else opened
        if level and end < len(text) and not _WORDS.search(text[start:end].replace(title, "", 1)):
            opened = begin
            continue
        opened = None
        body = text[begin:end]
        if body.strip():
            name = " > ".join(t for _, t in stack) or None
            sections.append(Section(text=body, page=None, title=name))
    if not sections:
        raise LoadError("no text content")
    return Document(str(path), doc_title, tuple(sections), str(path), kind)


class NotebookLoader:
    """A Jupyter notebook as the Markdown it reads as: markdown cells as written (their headings
    make sections), code cells fenced, text outputs after them (up to ``OUTPUT_CHARS`` each);
    images and other rich outputs, base64 that would index as noise, are left out."""

    kind = "notebook"
    OUTPUT_CHARS = 2000

    def load(self, path: Path, data: bytes) -> Loaded:
        import json

        try:
            notebook = json.loads(decode_text(data))
            cells = notebook["cells"]
            language = str(notebook.get("metadata", {}).get("kernelspec", {}).get("language", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise LoadError("not a Jupyter notebook (no cells in its JSON)") from None
        parts = []
        for cell in cells if isinstance(cells, list) else []:
            if not isinstance(cell, dict):
                continue
            source = _joined(cell.get("source")).strip()
            if cell.get("cell_type") == "markdown" and source:
                parts.append(source)
            elif cell.get("cell_type") == "code" and source:
                parts.append(f"```{language}\n{source}\n```")
                for output in cell.get("outputs") or []:
                    text = _output_text(output)[:self.OUTPUT_CHARS].strip()
                    parts += [f"```\n{text}\n```"] if text else []
        text = clean("\n\n".join(parts) + "\n")
        if not text.strip():
            raise LoadError("no text in any cell")
        return Loaded([heading_document(path, text, _markdown_headings(text), self.kind)])


def _joined(value: object) -> str:
    """A notebook string field: one string, or a list of lines."""
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


def _output_text(output: object) -> str:
    if not isinstance(output, dict):
        return ""
    if output.get("output_type") == "stream":
        return _joined(output.get("text"))
    data = output.get("data")
    return _joined(data.get("text/plain")) if isinstance(data, dict) else ""


class RstLoader:
    """reStructuredText (a Sphinx project's sources): one section per section title, titled
    with the title path, as for Markdown. Only the titles are parsed; directives and roles stay
    as written (running docutils on a file would follow its include directives)."""

    kind = "rst"

    def load(self, path: Path, data: bytes) -> Loaded:
        text = _ROLE.sub(r"\1", clean(decode_text(data)))
        return Loaded([heading_document(path, text, _rst_headings(text), self.kind)])


# An interpreted-text role reads as its text (":keyword:`!if`" as "if", ":ref:`the tutorial
# <tut-for>`" as "the tutorial"); the section titles then read as words.
_ROLE = re.compile(r":[\w.+-]+(?::[\w.+-]+)*:`[!~]?([^`<]*?)(?:\s*<[^`>]*>)?`")

_ADORNMENT = re.compile(r"([!-/:-@\[-`{-~])\1{2,}[ \t]*")


def _rst_headings(text: str) -> list[tuple[int, int, str]]:
    """(char offset, level, title) of each section title: a line underlined (and maybe
    overlined) with one punctuation character, at least as long as the title, after a blank
    line; levels in the order the styles first appear, as docutils assigns them."""
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    styles: list[tuple[str, bool]] = []
    headings = []
    i = 0
    while i + 1 < len(lines):
        title, under = lines[i], lines[i + 1]
        over = i > 0 and _ADORNMENT.fullmatch(lines[i - 1]) is not None
        blank_before = i == 0 or not lines[i - 1].strip() or over
        match = _ADORNMENT.fullmatch(under)
        if (match and title.strip() and not _ADORNMENT.fullmatch(title) and blank_before
                and len(under.rstrip()) >= len(title.strip())
                and (over or not title[:1].isspace())):
            style = (match.group(1), over and lines[i - 1].strip()[:1] == match.group(1))
            if style not in styles:
                styles.append(style)
            first = i - 1 if style[1] else i
            headings.append((starts[first], styles.index(style) + 1, title.strip()))
            i += 2
            continue
        i += 1
    return headings


_WORDS = re.compile(r"[^\W_]")  # a letter or digit: text beyond a heading's own markup

MARK = "\ue000"  # private-use character marking headings inside extracted HTML text


class HtmlLoader:
    """Main text via BeautifulSoup (boilerplate elements dropped), split into heading sections;
    tables become Markdown tables."""

    kind = "html"

    def load(self, path: Path, data: bytes) -> Loaded:
        return Loaded([html_document(path, decode_text(data), self.kind)])


HTML_DROP = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "svg",
             "template", "iframe"]
# The same boilerplate as documentation generators mark it: ARIA roles, and the classes of
# Sphinx (sidebar, "related" bars, the ¶ after each heading), MkDocs, Read the Docs and
# Docusaurus (its heading links hold a zero-width space).
DROP_ROLES = {"navigation", "banner", "contentinfo", "search", "complementary"}
DROP_CLASSES = {"headerlink", "hash-link", "sphinxsidebar", "related", "footer", "breadcrumbs",
                "wy-nav-side", "md-sidebar", "md-header", "md-footer", "rst-footer-buttons"}
# Elements that end a line; everything else (a, code, span, em...) flows within it.
BLOCKS = {"address", "article", "blockquote", "body", "center", "dd", "details", "dialog", "div",
          "dl", "dt", "fieldset", "figcaption", "figure", "hr", "li", "main", "ol", "p", "pre",
          "section", "summary", "ul"}


def html_document(path: Path, html: str, kind: str) -> Document:
    import warnings

    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)  # XHTML reads well as HTML
        soup = BeautifulSoup(html, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in _main_text(soup).splitlines()]
    text = clean(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip())
    headings, plain, pos, offset = [], [], 0, 0
    for match in re.finditer(f"{MARK}(\\d){MARK}(.*?){MARK}", text):
        plain.append(text[pos:match.start()])
        offset += len(plain[-1])
        heading = match.group(2)
        headings.append((offset, int(match.group(1)), heading))
        plain.append(heading)
        offset += len(heading)
        pos = match.end()
    plain.append(text[pos:])
    body = "".join(plain)
    if not body.strip():
        raise LoadError("HTML page has no text content")
    doc = heading_document(path, body, headings, kind)
    return Document(doc.source, title, doc.sections, doc.key, doc.kind) if title else doc


_HEADING = re.compile(r"^h[1-6]$")


def _main_text(soup) -> str:  # noqa: ANN001 - a bs4 soup
    """The text (``_html_text``) of where the page's own text is: its main element (or role),
    narrowed to the one article inside it when that holds most of main's text (Docusaurus and
    MkDocs keep a table of contents beside the article; a teaser card is not the page), else
    the first article, else the body."""
    def outside(found):  # noqa: ANN001, ANN202
        return [tag for tag in found if not tag.find_parent(HTML_DROP)]

    main = next(iter(outside(soup.find_all("main")) + outside(soup.find_all(attrs={"role": "main"}))),
                None)
    if main is None:
        return _html_text(next(iter(outside(soup.find_all("article"))), None) or soup.body or soup)
    text = _html_text(main)
    articles = main.find_all("article")
    if len(articles) == 1:
        article = _html_text(articles[0])
        if 2 * len(article.split()) >= len(text.split()):
            return article
    return text


SECTIONING = {"article", "main", "section"}


def _dropped(tag, in_section: bool = False) -> bool:  # noqa: ANN001 - a bs4 Tag
    """Boilerplate; a header inside an article or section is its heading, not the site's."""
    if tag.name == "header" and in_section:
        return False
    return (tag.name in HTML_DROP or tag.get("role") in DROP_ROLES
            or not DROP_CLASSES.isdisjoint(tag.get("class") or ()))


def _heading_text(tag) -> str:  # noqa: ANN001
    """A heading's words, without its permalink (a ¶ or # element, or character, after it on
    documentation sites); the marks of a heading nested in it (hostile HTML) are taken out."""
    words = " ".join(re.sub(f"{MARK}\\d?", " ", _html_text(tag)).split())
    return re.sub(r"\s*[¶§#]$", "", words)


def _html_text(main) -> str:  # noqa: ANN001 - a bs4 Tag
    """The text of ``main`` in one depth-first pass over its tree, as a browser lays it out:
    inline elements (links, code) flow within a line, block elements end one, ``pre`` keeps its
    lines; dropped elements (scripts, navigation) are skipped, headings marked (``MARK``), each
    outermost table a Markdown table (a table nested in a cell is that cell's text). Nothing in
    the tree is replaced, and an explicit stack walks it, so the cost stays linear in the page
    (bs4's ``replace_with`` is linear in the siblings, quadratic over thousands of headings;
    markdown nested in markdown is quadratic in the nesting depth)."""
    from bs4 import CData, NavigableString, Tag

    pieces: list[str] = []
    stack = [(main, iter(main.children))]
    pre = 0  # inside how many pre elements
    sections = int(main.name in SECTIONING)  # inside how many articles, mains, sections
    while stack:
        tag, children = stack[-1]
        node = next(children, None)
        if node is None:
            stack.pop()
            pre -= tag.name == "pre"
            sections -= tag.name in SECTIONING
            if tag.name in BLOCKS:
                pieces.append("\n")
        elif isinstance(node, Tag):
            if _dropped(node, sections > 0):
                continue
            if _HEADING.match(node.name):
                pieces.append(f"\n{MARK}{node.name[1]}{MARK}{_heading_text(node)}{MARK}\n")
            elif node.name == "table":
                rows = [[cell.get_text(" ", strip=True)
                         for cell in tr.find_all(["th", "td"], recursive=False)]
                        for tr in _table_rows(node)]
                pieces.append(f"\n\n{markdown_table(rows)}\n\n")
            elif node.name == "br":
                pieces.append("\n")
            else:
                pieces.append("\n" if node.name in BLOCKS else "")
                pre += node.name == "pre"
                sections += node.name in SECTIONING
                stack.append((node, iter(node.children)))
        elif type(node) in (NavigableString, CData):
            pieces.append(str(node) if pre else re.sub(r"\s+", " ", str(node)))
    return "".join(pieces)


def _table_rows(table):  # noqa: ANN001, ANN202 - bs4 Tags
    """The table's own rows (directly, or in its thead/tbody/tfoot), not those of tables nested
    in its cells."""
    for child in table.find_all(["tr", "thead", "tbody", "tfoot"], recursive=False):
        if child.name == "tr":
            yield child
        else:
            yield from child.find_all("tr", recursive=False)


class TextLoader:
    kind = "text"

    def load(self, path: Path, data: bytes) -> Loaded:
        text = clean(decode_text(data))
        if not text.strip():
            raise LoadError("no text content")
        return Loaded([Document(str(path), path.stem, (Section(text=text),), str(path), self.kind)])
