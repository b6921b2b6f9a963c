"""The report page: the sections' blocks rendered into one self-contained HTML file (jinja2).

Everything the page needs is inside it: figures as PNG data URIs, the stylesheet and the script
(`assets/`), the structures and the picks' FASTA as inline data. Its Content-Security-Policy forbids
any request to anywhere (`default-src 'none'`; images from data: and blob: only), so a report that would
reach out fails in the browser instead of leaking a request.
"""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import resources
from pathlib import Path

from protein_sedd.campaign.parts import Campaign, read_campaign
from protein_sedd.campaign.sections import SECTIONS
from protein_sedd.errors import UserError

GENERATOR = '<meta name="generator" content="protein-sedd report">'
COMMAND = "report"


def _asset(name: str) -> str:
    return resources.files("protein_sedd.campaign").joinpath("assets", name).read_text(encoding="utf-8")


def _versions() -> str:
    import matplotlib
    import numpy
    import torch

    return (
        f"Python {platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__}, "
        f"matplotlib {matplotlib.__version__}"
    )


def render(campaign: Campaign, command: str, title: str | None = None) -> str:
    """The page's HTML for `campaign`; `command` is the line shown as what made it."""
    import jinja2
    from markupsafe import Markup  # our own stylesheet and script, inlined as they are

    from protein_sedd import __version__

    sections = []
    for section_type in SECTIONS:
        section = section_type()
        blocks = section.blocks(campaign) if section.present(campaign) else []
        sections.append(
            {"key": section.key, "title": section.title, "blocks": blocks, "missing": section.missing}
        )
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(_asset("page.html.j2"))
    return template.render(
        title=title or _title(campaign),
        command=command,
        version=__version__,
        versions=_versions(),
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        sources=campaign.sources,
        sections=sections,
        css=Markup(_asset("report.css")),
        script=Markup(_asset("report.js")),
    )


def _title(campaign: Campaign) -> str:
    if campaign.designs_path is not None:
        return f"protein-sedd campaign: {campaign.designs_path.name}"
    if campaign.run is not None:
        return f"protein-sedd campaign: {campaign.run.path.name}"
    return "protein-sedd campaign"


def is_report(path: Path) -> bool:
    """Whether `path` is a report this command wrote (then it is ours to replace)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return GENERATOR in handle.read(4096)
    except (OSError, UnicodeDecodeError):
        return False


def write_report(
    out: str | Path,
    *,
    run: str | Path | None = None,
    designs: str | Path | None = None,
    seq_eval: str | Path | None = None,
    fold_eval: str | Path | None = None,
    select: str | Path | None = None,
    variants: str | Path | None = None,
    title: str | None = None,
    overwrite: bool = False,
    command: str | None = None,
) -> Path:
    """Read the given outputs, check them, and write the campaign report to `out` (an .html file); every
    mistake is a `UserError` before anything is written. Returns `out`."""
    from protein_sedd.errors import check_type
    from protein_sedd.io.atomic import write_text_atomic
    from protein_sedd.io.outputs import check_output_file

    parts = {
        "run": run,
        "designs": designs,
        "seq_eval": seq_eval,
        "fold_eval": fold_eval,
        "select": select,
        "variants": variants,
    }
    for name, value in {"out": out, **parts}.items():
        check_type(name, value, (str, Path), "a path (str or pathlib.Path)")
    check_type("title", title, str, "a str")
    if out is None:
        raise UserError("{out}: give the report's file name (e.g. campaign.html)", field="out")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"{{out}} {out}: a report is an HTML file; name it *.html", field="out")
    if not out.parent.is_dir():
        raise UserError(f"{{out}} {out}: folder {out.parent} does not exist; create it first", field="out")
    inputs = [Path(p) for p in parts.values() if p is not None]
    check_output_file(out, "{out}", inputs=inputs, overwrite=overwrite, is_own=is_report, command=COMMAND)
    for path in inputs:  # a report inside an input folder would be read back as part of it next time
        if path.is_dir() and path.resolve() in out.resolve().parents:
            raise UserError(
                f"{{out}} {out}: lies inside the input folder {path}; write it beside", field="out"
            )
    campaign = read_campaign(**{k: Path(v) if v is not None else None for k, v in parts.items()})
    line = (
        command
        or "protein_sedd.report("
        + ", ".join(f"{k}={str(v)!r}" for k, v in {"out": out, **parts}.items() if v is not None)
        + ")"
    )
    write_text_atomic(out, render(campaign, line, title))
    return out
