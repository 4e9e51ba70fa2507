"""Maps the repository layout onto one import package: agent/ -> posdiag, drivers/ -> posdiag.drivers.

pyproject.toml holds the metadata; this file only computes the package list, because the folder
names differ from the import names and setuptools cannot discover that on its own.
"""

from setuptools import find_packages, setup


def _packages() -> tuple[list[str], dict[str, str]]:
    roots = {"posdiag": "agent", "posdiag.drivers": "drivers"}
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for name, folder in roots.items():
        packages.append(name)
        package_dir[name] = folder
        for sub in find_packages(folder):
            packages.append(f"{name}.{sub}")
            package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()
setup(packages=PACKAGES, package_dir=PACKAGE_DIR)
