"""Markdown text for matching and for quoting (pure functions, each linear in its input).

`normalize` makes the view that is embedded and tokenized: zero-width characters, HTML tags and
entities, image links, emphasis and table bars removed, links reduced to their text, LaTeX turned
into readable tokens (`1\\times1` -> `1×1`, `\\alpha` -> `α`). Quotes stay exact spans of the file;
`markup_spans` gives the spans a quote must never contain (image links, HTML tags, zero-width
characters outside math, code, links and bold), `protected_spans` the spans a sentence must not end
inside (math, inline code, links, bold), and `display` text as a reader sees it (entities as their
characters, no zero-width characters): what answers show and read a sentence's shape from.
"""

from __future__ import annotations

import html
import re

ZERO_WIDTH = "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad"
_ZW = re.compile(f"[{ZERO_WIDTH}]")
_IMAGE = re.compile(r"!\[[^\]\n]{0,500}\]\([^)\n]{0,1000}\)")
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]{0,30}(?:\s[^<>\n]{0,1000})?/?>|<!--.{0,2000}?-->", re.S)
_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_LINK = re.compile(r"\[([^\]\n]{0,500})\]\([^)\n]{0,1000}\)")
_MATH = re.compile(r"\$\$[^$]{1,5000}\$\$|\$[^$]{1,1000}\$")  # inline math may span lines
_CODE = re.compile(r"`[^`\n]{1,1000}`")
_STRONG = re.compile(r"\*\*[^*\n]{1,500}\*\*|__[^_\n]{1,500}__")
_EMPHASIS = re.compile(r"\*{1,3}|_{2,3}|~~")
_TABLE_RULE = re.compile(r"^[ \t]*(?:\|[ \t]*)?:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)*(?:\|[ \t]*)?$", re.M)
# A backslash-escaped character is that character as text (`3\*3` is 3*3), not markup.
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|~<>$])")
_UNESCAPE = {0xE000 + c: chr(c) for c in range(128)}
_SPACES = re.compile(r"[ \t\u00a0\u2002\u2003\u3000]+")

# LaTeX commands as the characters a reader (and a question) would write.
LATEX = {
    "times": "×", "cdot": "·", "div": "÷", "pm": "±", "leq": "≤", "le": "≤", "geq": "≥", "ge": "≥",
    "neq": "≠", "ne": "≠", "approx": "≈", "sim": "~", "infty": "∞", "sum": "∑", "prod": "∏", "int": "∫",
    "partial": "∂", "nabla": "∇", "sqrt": "√", "in": "∈", "rightarrow": "→", "to": "→", "leftarrow": "←",
    "Rightarrow": "⇒", "log": "log", "exp": "exp", "max": "max", "min": "min", "ldots": "…", "cdots": "…",
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ",
    "sigma": "σ", "tau": "τ", "phi": "φ", "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω",
    "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Sigma": "Σ", "Phi": "Φ", "Omega": "Ω",
}
_LATEX_CMD = re.compile(r"\\([A-Za-z]+)")
_LATEX_DROP = {"left", "right", "mathrm", "mathbf", "mathit", "text", "operatorname", "rm", "bf", "displaystyle",
               "quad", "qquad", "frac", "dfrac", "begin", "end", "limits", "hat", "bar", "tilde", "vec", "overline"}


def _latex(m: re.Match) -> str:
    body = m.group(0).strip("$")

    def cmd(c: re.Match) -> str:
        name = c.group(1)
        if name in LATEX:
            return LATEX[name]
        return " " if name in _LATEX_DROP else name
    body = _LATEX_CMD.sub(cmd, body)
    return " " + re.sub(r"[{}\\]", " ", body).replace("  ", " ").strip() + " "


def normalize(text: str) -> str:
    """The matching view of markdown text (see the module doc); never longer than needed, linear."""
    text = _ZW.sub("", text)
    text = _ESCAPED.sub(lambda m: chr(0xE000 + ord(m.group(1))), text)  # kept out of the markup passes
    text = _IMAGE.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    text = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    text = _MATH.sub(_latex, text)
    text = _LINK.sub(r"\1", text)
    text = _CODE.sub(lambda m: m.group(0)[1:-1], text)
    text = _EMPHASIS.sub("", text)
    text = _TABLE_RULE.sub("", text)
    text = text.replace("|", " ")
    text = _SPACES.sub(" ", text).translate(_UNESCAPE)
    return "\n".join(line.strip() for line in text.split("\n") if line.strip()) if "\n" in text else text.strip()


def markup_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sorted [s, e) spans in text[start:end] that a quote must never contain: image links, HTML
    tags, and zero-width characters outside math, inline code, links and bold (inside them one is
    part of the span, which a quote takes whole; `display` drops it)."""
    spans = []
    for pattern in (_IMAGE, _HTML_TAG):
        spans += [m.span() for m in pattern.finditer(text, start, end)]
    zw = [m.start() for m in _ZW.finditer(text, start, end)]
    if zw:
        protected, p = protected_spans(text, start, end), 0
        for i in zw:
            while p < len(protected) and protected[p][1] <= i:
                p += 1
            if not (p < len(protected) and protected[p][0] < i):
                spans.append((i, i + 1))
    return _merge(spans)


def display(text: str) -> str:
    """Markdown text as a reader sees it, for display and for reading a sentence's shape: HTML
    entities as their characters (`&emsp;` an em space, `&lt;` "<"), zero-width characters dropped.
    A quote itself stays the exact span of the file; this is a view of it."""
    if "&" in text:
        text = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    return _ZW.sub("", text)


def shown_quote(text: str) -> str:
    """A quote as an answer shows it: `display`ed, without the table bars at its edges (a quote
    from a table row an image cell cut in two starts or ends at a cell bar)."""
    return display(text).strip("| \t")


def protected_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sorted [s, e) spans (math, inline code, links, bold) inside which a sentence does not end."""
    spans = []
    for pattern in (_MATH, _CODE, _LINK, _STRONG):
        spans += [m.span() for m in pattern.finditer(text, start, end)]
    return _merge(spans)


def is_space(text: str, i: int) -> bool:
    """A character a quote may not start or end with: whitespace or a zero-width character."""
    return text[i].isspace() or text[i] in ZERO_WIDTH


def entity_end(text: str, i: int, end: int) -> int:
    """The end of an HTML entity starting at i (e.g. `&emsp;`), or i if none starts there."""
    m = _ENTITY.match(text, i, end) if text[i] == "&" else None
    return m.end() if m else i


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]
