"""Build hook only (metadata lives in setup.cfg): put the site's files into the wheel.

templates/, static/ and migrations/ stay at the top of the repo by design, and package_data
cannot reach outside the package, so build_py copies them into the built payapp/ package, where
payapp/paths.py finds them. (data_files would install under <prefix>/share, which --user,
--target and --prefix installs move, so the app could not find them reliably.)
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SITE_DIRS = ("templates", "static", "migrations")


class build_py_with_site_files(build_py):  # noqa: N801 - named like the command it extends
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout
            return
        for name in SITE_DIRS:
            target = Path(self.build_lib) / "payapp" / name
            shutil.rmtree(target, ignore_errors=True)  # a reused build/ must not keep deleted files
            shutil.copytree(name, target, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))


setup(cmdclass={"build_py": build_py_with_site_files})
