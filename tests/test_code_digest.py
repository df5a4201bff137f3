"""The persisted identity state is tied to the code it was computed with (issue 7).

`code_digest` must see a change in any module of a package such as `ccv.identity.standardize`,
not only in its `__init__`, or a night would reuse state computed by other standardisers.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

from ccv.identity.incremental import code_digest


def _package(root, name: str):
    sys.path.insert(0, str(root))
    try:
        importlib.invalidate_caches()
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(root))


def test_a_change_in_any_module_of_a_package_changes_the_digest(tmp_path):
    package = tmp_path / "digest_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from digest_pkg.names import fold\n")
    (package / "names.py").write_text("def fold(x):\n    return x.lower()\n")
    module = _package(tmp_path, "digest_pkg")
    before = code_digest([module])
    assert code_digest([module]) == before  # stable
    (package / "names.py").write_text("def fold(x):\n    return x.casefold()\n")
    assert code_digest([module]) != before


def test_the_standardisers_count_with_all_their_modules():
    from ccv.identity import standardize

    init_only = hashlib.md5(Path(standardize.__file__).read_bytes()).hexdigest()
    assert code_digest([standardize]) != init_only
