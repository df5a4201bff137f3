"""`ccv --help`: help texts name config sections ("[warehouse] keep_versions") and must show
them; in rich's markup "[warehouse]" is a style tag and was printed as nothing."""

import re

import typer.main
from typer.testing import CliRunner

from ccv.cli import app

SECTION = re.compile(r"\[[a-z_]+\]")


def test_every_config_section_named_in_a_help_text_is_printed():
    group = typer.main.get_command(app)
    named = 0
    for name, command in group.commands.items():
        texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
        sections = {s for text in texts for s in SECTION.findall(text)}
        if not sections:
            continue
        result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        for section in sections:
            assert section in result.output, (name, section, result.output)
            named += 1
    # serve and rollback (docstrings), resolve --config and export --out (option help)
    assert named >= 4
    listing = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert "[warehouse] keep_versions" in listing and "[schedule]" in listing
