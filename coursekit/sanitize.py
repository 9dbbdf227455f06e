"""A student's notebook shown to a person (formgrader, feedback) as text, tables and pictures, never active content.

formgrader and `nbgrader generate_feedback` render a notebook with nbconvert's HTMLExporter, and formgrader serves
the page from the Jupyter server's own origin: a script in it runs as the logged-in instructor (it can read
source/ with the hidden tests, or start a kernel). nbconvert's `HTMLExporter.sanitize_html` (off by default) is not
enough on its own: nbgrader's `formgrade` and `feedback` templates render markdown cells without nbconvert's
`clean_html`, and that filter escapes headings, paragraphs, images and table headers into visible tags. So, in
nbgrader_config.py, three layers configured on the HTMLExporter (both formgrader and GenerateFeedback build theirs
from that config):

- `SanitizeStudentHTML`, an exporter preprocessor: code outputs keep only inert types (text, PNG/JPEG/GIF, SVG,
  LaTeX); `text/html` and `text/markdown` become sanitized HTML; `application/javascript`, widgets and any other
  type are dropped. It also keeps the templates' SVG as an `<img>` data URL, where a browser runs no script.
- `SanitizedMarkdown2HTML`, the templates' `markdown2html` filter: the exporter's own, its HTML then sanitized.
  This covers the markdown cells that formgrade and feedback render raw.
- `clean_html`, the templates' filter for `sanitize_html=True`: nh3 (ammonia) with a list that keeps what
  notebooks show (headings, lists, code, tables, data-URL images) instead of escaping it.

Removable in part when nbgrader's formgrade and feedback templates pass markdown cells through `clean_html` (no
upstream issue found as of nbgrader 0.9.6) and nbconvert's `clean_html` keeps headings, paragraphs and tables
(nbconvert issue 2016, open as of nbconvert 7.17; issue 1014 asks for sanitizing by default).
"""
import nh3
from jinja2 import pass_context
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from nbconvert.preprocessors import Preprocessor
from traitlets import Set
from traitlets.config import LoggingConfigurable

# GitHub's prefix for ids in rendered user content: a student's `id` cannot take over one of formgrader's own
# (its score inputs and comment boxes are found by id); in-page links are rewritten to match.
ID_PREFIX = "user-content-"
# nh3's defaults (ammonia's: text, headings, lists, code, tables, images) plus class/id, which rendered markdown
# (anchor links, highlighted code) and pandas tables use. No style, no form elements, no iframe/object/svg/math.
ATTRIBUTES = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
ATTRIBUTES["*"] = {"class", "id", "title", "lang", "dir"}
ATTRIBUTES["table"] = ATTRIBUTES.get("table", set()) | {"border"}  # pandas draws its tables' lines with it
URL_SCHEMES = {"http", "https", "mailto", "data"}


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """Images only from data: URLs (an <img src="/logout"> or a tracking pixel would load by itself);
    links anywhere but to data: (opaque, but still a page of the student's making); in-page links to prefixed ids."""
    if tag == "img" and attribute == "src":
        return value if value.strip().lower().startswith("data:image/") else None
    if attribute == "href":
        if value.strip().lower().startswith("data:"):
            return None
        if value.startswith("#") and not value.startswith("#" + ID_PREFIX):
            return "#" + ID_PREFIX + value[1:]
    return value


CLEANER = nh3.Cleaner(
    tags=set(nh3.ALLOWED_TAGS),
    clean_content_tags={"script", "style"},
    attributes=ATTRIBUTES,
    attribute_filter=_attribute_filter,
    url_schemes=URL_SCHEMES,
    id_prefix=ID_PREFIX,
)


def clean(html: str | bytes | list[str]) -> str:
    """`html` without anything that runs: scripts, event handlers, javascript: URLs, styles, frames, forms, SVG."""
    if isinstance(html, list):  # a notebook's multiline string, as its file stores it
        html = "".join(html)
    return CLEANER.clean(html.decode() if isinstance(html, bytes) else str(html))


def clean_html(element) -> str:
    """nbconvert's `clean_html` template filter (used when `HTMLExporter.sanitize_html` is on), with nh3."""
    return clean(element)


class SanitizedMarkdown2HTML(LoggingConfigurable):
    """The exporter's `markdown2html` filter (attachments, anchor links, math), its HTML then sanitized.

    Registered through `c.HTMLExporter.filters`; nbconvert builds it with the exporter as its parent."""

    @pass_context
    def __call__(self, context, source):
        render = getattr(self.parent, "markdown2html", None)
        html = render(context, source) if render is not None else markdown2html_mistune(source)
        return clean(html)

    jinja_pass_arg = __call__.jinja_pass_arg  # Jinja looks for it on the callable: an instance needs it too


class SanitizeStudentHTML(Preprocessor):
    """Outputs without active content, whatever the template does with them (an exporter preprocessor)."""

    inert_output_types = Set(
        {"text/plain", "text/latex", "image/png", "image/jpeg", "image/gif", "image/svg+xml"},
        help="Output types kept as they are: the HTML templates escape text and show images as <img> data URLs "
             "(an SVG too, which a browser then shows without running its scripts).",
    ).tag(config=True)

    def preprocess(self, nb, resources):
        # An SVG inlined into the page would be live markup: keep nbconvert's default, an <img> data URL.
        resources["should_not_encode_svg"] = False
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "raw":
            cell.source = clean(cell.source)
        elif cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if "data" in output:
                    self._sanitize_data(output)
        return cell, resources

    def _sanitize_data(self, output):
        data = output["data"]
        if "text/markdown" in data:
            markdown = data.pop("text/markdown")
            data.setdefault("text/html", markdown2html_mistune(markdown))
        if "text/html" in data:
            data["text/html"] = clean(data["text/html"])
        for mimetype in [m for m in data if m != "text/html" and m not in self.inert_output_types]:
            self.log.info("Removed a %s output from a student's notebook", mimetype)
            del data[mimetype]
        # nbconvert puts "isolated" HTML into an iframe of its own; sanitized HTML needs none
        output.get("metadata", {}).pop("text/html", None)
