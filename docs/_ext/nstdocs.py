"""The site's own checks and the API pages' directive.

- `automodules PACKAGE`: one section per module of a package folder (its `__init__` first), each the
  module's docstring and members through autodoc, so a module added to a folder gets its API page
  without an edit here.
- Links from a page to a file outside `docs/` (`../bench/results/….md`, `../weights/README.md`) stay
  plain relative links, which work on GitHub; the site turns them into downloads of that file. A
  link to a file that is not there still warns.
- The docstrings are prose in Markdown's habits (pipe tables, indented blocks); they are written as
  the reStructuredText autodoc reads, so no docstring needs markup of Sphinx's.
- The map (`design.md`) must name every module of the package, under its folder's heading, and every
  package folder must have its API page.
- The README's links to files and headings, and the files, commands and modules it names, must exist.
- A code span naming a file of the project (`nst_jax/…`, `tests/…`, `bench/…`), a command
  (`python -m nst_jax.X`, `nst-jax X`) or a dotted name (`nst_jax.a.b`) must name something that
  exists, so a page cannot keep teaching a module or command that moved.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "nst_jax"
log = logging.getLogger(__name__)

OUTSIDE_LINK = re.compile(r"\]\((\.\./[^)\s#]+)\)")
CODE_SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
FILE_PATH = re.compile(r"^(?:nst_jax|tests|bench)/[\w./+-]*[\w/]$")
DOTTED = re.compile(r"^nst_jax(?:\.\w+)+")
MODULE_COMMAND = re.compile(r"python -m (nst_jax(?:\.\w+)*)")
CLI_COMMAND = re.compile(r"^nst-jax ([a-z]\w*)(?:\s|$)")


def modules(package: str) -> list[str]:
    """The modules of a package folder (not its subpackages), its `__init__` first."""
    folder = ROOT / Path(*package.split("."))
    names = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__" and importable(p))
    return [package] + [f"{package}.{name}" for name in names]


def importable(path: Path) -> bool:
    """False for a `__main__` that runs its command when imported (autodoc cannot import it)."""
    return path.stem != "__main__" or "if __name__ == \"__main__\":" in path.read_text()


class AutoModules(SphinxDirective):
    """`automodules nst_jax.transfer`: a section per module, with autodoc's members."""
    required_arguments = 1

    def run(self):
        sections = []
        for name in modules(self.arguments[0]):
            section = nodes.section(ids=[nodes.make_id(name)], names=[nodes.fully_normalize_name(name)])
            section += nodes.title(name, "", nodes.literal(name, name))
            lines = ["```{eval-rst}", f".. automodule:: {name}", "```"]   # autodoc writes reStructuredText
            self.state.nested_parse(StringList(lines, self.get_source_info()[0]), self.content_offset, section)
            sections.append(section)
        return sections


TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
TABLE_RULE = re.compile(r"^\s*\|[\s:|-]+\|\s*$")
LIST_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d+[.)])\s+")


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rst_table(rows: list[str]) -> list[str]:
    """A Markdown pipe table as a reStructuredText list-table."""
    pad = " " * indent(rows[0])
    out = [f"{pad}.. list-table::", f"{pad}   :header-rows: 1", ""]
    for row in [rows[0]] + rows[2:]:
        cells = [cell.strip() for cell in row.strip()[1:-1].split("|")]
        for k, cell in enumerate(cells):
            out.append(f"{pad}   {'* -' if k == 0 else '  -'} {escape_text(cell) or '..'}")
    return out + [""]


def escape_text(line: str) -> str:
    """Prose as reStructuredText: a `|` outside code is a character, not a substitution, and a code
    span followed by a letter (`StyleTarget`s) ends where it should."""
    parts = re.split(r"(`[^`]*`)", line)
    out = []
    for k, part in enumerate(parts):
        if not part.startswith("`"):
            out.append(part.replace("|", r"\|"))
        else:
            glued = k + 1 < len(parts) and re.match(r"[\w(]", parts[k + 1])
            out.append(part + ("\\ " if glued else ""))
    return "".join(out)


def paragraphs(lines: list[str]) -> list[list[str]]:
    groups, current = [], []
    for line in lines:
        if line.strip():
            current.append(line)
        elif current:
            groups.append(current)
            current = []
    return groups + ([current] if current else [])


def content_indent(line: str) -> int:
    item = LIST_ITEM.match(line)
    return len(item.group(0)) if item else indent(line)


def docstring_as_rst(lines: list[str]) -> list[str]:
    """The docstrings are plain prose in Markdown's habits (pipe tables, blocks indented as code,
    aligned continuation lines); this writes them as the reStructuredText autodoc expects."""
    out: list[str] = []
    context = 0
    in_code = None
    for para in paragraphs(lines):
        first = indent(para[0])
        if in_code is not None and first >= in_code:
            out += para + [""]
            continue
        in_code = None
        if first >= context + 4:
            if out and out[-2].rstrip().endswith(":") and not out[-2].rstrip().endswith("::"):
                out[-2] = out[-2].rstrip() + ":"
            else:
                out += [" " * context + "::", ""]
            in_code = context + 1
            out += para + [""]
            continue
        if all(TABLE_ROW.match(line) for line in para) and len(para) > 1 and TABLE_RULE.match(para[1]):
            out += rst_table(para)
            continue
        out += one_paragraph(para)
        context = content_indent(para[0]) if LIST_ITEM.match(para[0]) else first
    return out


def one_paragraph(para: list[str]) -> list[str]:
    """A paragraph whose lines are indented unevenly: a list item's deeper lines become a quote in
    the item; any other paragraph is laid out as the author aligned it (a literal block)."""
    base = content_indent(para[0])
    if all(indent(line) <= base for line in para[1:]):
        return [escape_text(line) for line in para] + [""]
    if LIST_ITEM.match(para[0]):
        out, deeper = [], False
        for line in para:
            now = indent(line) > base and line is not para[0]
            if now != deeper:
                out.append("")
                deeper = now
            out.append(line if now else escape_text(line))
        return out + [""]
    pad = " " * indent(para[0])
    if any(hanging(prev, line) for prev, line in zip(para, para[1:])):
        return [pad + "::", ""] + ["    " + line for line in para] + [""]
    out: list[str] = []
    for line in para:   # prose, with its deeper lines as literal blocks between
        if indent(line) > base and (not out or out[-1] == "" or indent(out[-1]) <= base):
            if out and out[-1].rstrip().endswith(":"):
                out[-1] = out[-1].rstrip() + ":"
            elif out:
                out.append(pad + "::")
            out.append("")
        elif indent(line) <= base and out and indent(out[-1]) > base:
            out.append("")
        out.append(line if indent(line) > base else escape_text(line))
    return out + [""]


def hanging(prev: str, line: str) -> bool:
    """A line aligned under the text after a label of the line before (`style: the …`)."""
    label = re.match(r"^\s*\S+:\s+", prev)
    return bool(label) and indent(line) == len(label.group(0))


def docstring_hook(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = docstring_as_rst(lines)


def link_outside(app, docname: str, source: list[str]) -> None:
    """A link out of docs/ to a file that exists becomes a download of it (MyST's `path:`)."""
    here = Path(app.env.doc2path(docname)).parent
    srcdir = Path(app.srcdir).resolve()

    def rewrite(match):
        target = (here / match.group(1)).resolve()
        if target.is_file() and not target.is_relative_to(srcdir):
            return f"](path:{match.group(1)})"
        return match.group(0)

    source[0] = OUTSIDE_LINK.sub(rewrite, source[0])


def module_file(dotted: str) -> tuple[Path | None, list[str]]:
    """The file of the longest module prefix of a dotted name, and the names after it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT / Path(*parts[:cut])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate, parts[cut:]
    return None, parts


def defines(path: Path, name: str) -> bool:
    text = path.read_text()
    pattern = rf"^(?:\s*(?:async\s+)?def|\s*class)\s+{name}\b|^{name}\s*[:=]|^\s+{name}\s*[:=]|import .*\b{name}\b|\"{name}\":"
    return re.search(pattern, text, re.M) is not None


def check_names(app, docname: str | None, source: list[str], where: str | None = None) -> None:
    """Warn about code spans naming a file, command or module that does not exist."""
    text = re.sub(r"```.*?```", lambda m: m.group(0).replace("`", "'"), source[0], flags=re.S)
    problems = []
    for span in CODE_SPAN.findall(text) + re.findall(r"^(?:\$ )?((?:python -m|nst-jax) .*)$", source[0], re.M):
        span = " ".join(span.split())
        for module in MODULE_COMMAND.findall(span):
            path, rest = module_file(module)
            if path is None or rest or (path.name == "__init__.py" and not (path.parent / "__main__.py").is_file()):
                problems.append(f"python -m {module}: no such command module")
        command = CLI_COMMAND.match(span)
        if command and command.group(1) not in cli_commands():
            problems.append(f"nst-jax {command.group(1)}: no such command")
        if FILE_PATH.match(span) and not (ROOT / span).exists():
            problems.append(f"{span}: no such file")
        dotted = DOTTED.match(span)
        if dotted and " " not in span:
            path, rest = module_file(dotted.group(0))
            if path is None or (rest and not defines(path, rest[0])):
                problems.append(f"{dotted.group(0)}: no such module or name")
    for problem in sorted(set(problems)):
        log.warning(f"{problem} (named in {where or 'this page'})", location=docname, type="nstdocs", subtype="names")


_COMMANDS: set[str] = set()


def cli_commands() -> set[str]:
    if not _COMMANDS:
        text = (PACKAGE / "__main__.py").read_text()
        block = text[text.index("COMMANDS = {"):text.index("}\n", text.index("COMMANDS = {"))]
        _COMMANDS.update(re.findall(r'^\s+"(\w+)": \(', block, re.M))
    return _COMMANDS


def check_map(app, env) -> None:
    """Every module of the package is on the map (design.md), under its folder's heading, and every
    package folder has its API page."""
    documented = set()
    for page in (Path(app.srcdir) / "api").glob("*.md"):
        documented.update(re.findall(r"^```\{automodules\} (\S+)", page.read_text(), re.M))
    for init in sorted(PACKAGE.rglob("__init__.py")):
        name = ".".join(init.parent.relative_to(ROOT).parts)
        if name not in documented:
            log.warning(f"no API page shows {name} (docs/api/)", location="api/index", type="nstdocs", subtype="api")
    page = Path(app.srcdir) / "design.md"
    sections = re.split(r"^#+ .*?`nst_jax/([\w/]*)`.*$", page.read_text(), flags=re.M)
    listed = {sections[i].rstrip("/"): sections[i + 1] for i in range(1, len(sections) - 1, 2)}
    for path in sorted(PACKAGE.rglob("*.py")):
        folder = path.parent.relative_to(PACKAGE).as_posix()
        folder = "" if folder == "." else folder
        if path.stem == "__init__":
            if folder and folder not in listed:
                log.warning(f"the map has no section for nst_jax/{folder}/", location="design",
                            type="nstdocs", subtype="map")
            continue
        text = listed.get(folder, "")
        if f"`{path.stem}`" not in text and f"`{path.name}`" not in text:
            log.warning(f"the map does not name nst_jax/{path.relative_to(PACKAGE).as_posix()} "
                        f"under its folder's heading", location="design", type="nstdocs", subtype="map")


def slug(title: str) -> str:
    """A heading's anchor as GitHub and MyST make it."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def check_readme(app, env) -> None:
    """The README is the front door: its links to files and to headings of the pages must resolve, and
    the files, commands and modules it names must exist."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"", text):
        target = target[0] or target[1]
        if re.match(r"\w+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path
        if not file.exists():
            log.warning(f"README.md links to {target}, which is not there", type="nstdocs", subtype="readme")
        elif anchor and file.suffix == ".md":
            anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", file.read_text(), re.M)}
            if anchor not in anchors:
                log.warning(f"README.md links to {target}: no such heading", type="nstdocs", subtype="readme")
    source = [text]
    check_names(app, None, source, where="README.md")


def setup(app):
    app.add_directive("automodules", AutoModules)
    app.connect("autodoc-process-docstring", docstring_hook)
    app.connect("source-read", link_outside)
    app.connect("source-read", check_names)
    app.connect("env-check-consistency", check_map)
    app.connect("env-check-consistency", check_readme)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
