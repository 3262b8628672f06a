"""Which packages the wheel holds; everything else is in setup.cfg.

Here rather than in setup.cfg because setup.cfg cannot both discover the packages and add one that
lives outside mdupload/: the demo's example series stays in manifests/ (where the manifest guide
and the tests use it) and is installed as the data package `mdupload.demo_series`, so that
`mdupload demo` runs from any directory after `pip install .`. Folders of data such as
mdupload/schema/ are namespace packages, hence find_namespace (which would otherwise warn that
they are importable but not packaged).
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["mdupload", "mdupload.*"], exclude=["*.__pycache__"])
    + ["mdupload.demo_series"],
    package_dir={"mdupload.demo_series": "manifests"},
)
