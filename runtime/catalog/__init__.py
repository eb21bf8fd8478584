"""Model packages and the store: what a variant is, where it lives, which version serves.

Owns: package and variant metadata (``PackageMeta``, ``VariantMeta``, ``load_package``),
the ``Store`` and its active pointer (read and written in ``store.py`` only), writing
packages (``writer``), ``models add`` (``add``), what a bare model file says about
itself (``inspect``), the store watcher (``watch``), the picture contract
(``image_contract``), and the golden file and quality metric that the factory, the fleet
trial and calibration share (``golden``, ``quality``).
May import: the foundation modules and config. Never loads a model into a runtime. The
formats a variant may have, and the device classes and memory estimate written for a
bare file, are the backend table's (runtime/backend_table.py).
"""

from __future__ import annotations

from runtime.catalog.package import (
    FLEET_STAGED_MARKER as FLEET_STAGED_MARKER,
)
from runtime.catalog.package import (
    NAME_RE as NAME_RE,
)
from runtime.catalog.package import (
    SCHEMA_VERSION as SCHEMA_VERSION,
)
from runtime.catalog.package import (
    VERSION_RE as VERSION_RE,
)
from runtime.catalog.package import (
    Datatype as Datatype,
)
from runtime.catalog.package import (
    FileEntry as FileEntry,
)
from runtime.catalog.package import (
    FileProblem as FileProblem,
)
from runtime.catalog.package import (
    GoldenSet as GoldenSet,
)
from runtime.catalog.package import (
    Lineage as Lineage,
)
from runtime.catalog.package import (
    ModelPackage as ModelPackage,
)
from runtime.catalog.package import (
    PackageMeta as PackageMeta,
)
from runtime.catalog.package import (
    QualityMetric as QualityMetric,
)
from runtime.catalog.package import (
    TensorSpec as TensorSpec,
)
from runtime.catalog.package import (
    Variant as Variant,
)
from runtime.catalog.package import (
    VariantMeta as VariantMeta,
)
from runtime.catalog.package import (
    file_problems as file_problems,
)
from runtime.catalog.package import (
    json_schema as json_schema,
)
from runtime.catalog.package import (
    load_package as load_package,
)
from runtime.catalog.package import (
    read_package_meta as read_package_meta,
)
from runtime.catalog.package import (
    read_variant_meta as read_variant_meta,
)
from runtime.catalog.package import (
    required_schema_version as required_schema_version,
)
from runtime.catalog.store import (
    Store as Store,
)
from runtime.catalog.store import (
    version_key as version_key,
)
