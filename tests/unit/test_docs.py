"""Every broker option is documented, under its flag and its variable."""

from pathlib import Path

from kafscale.config import OPTIONS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()


def test_every_option_is_in_configuration_md():
    missing = [o.env for o in OPTIONS
               if f"`{o.env}`" not in DOC or f"`--{o.name.replace('_', '-')}`" not in DOC]
    assert not missing, f"undocumented options: {missing}"
