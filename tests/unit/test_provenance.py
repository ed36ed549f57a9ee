import re

from medarena import __version__
from medarena.provenance import code_version


def test_code_version_names_the_package_and_commit():
    version = code_version()
    assert version.startswith(__version__)
    # in a git checkout (the repository, CI): the commit is part of it
    assert re.fullmatch(re.escape(__version__) + r"(\+g[0-9a-f]{12}(\.dirty)?)?", version)
