"""Device profiles: one TOML file per hardware class, and which one this box matches.

Owns: ``DeviceProfile`` (match rules, ordered targets, precisions, memory budget, threads)
and loading it (``profile``), evaluating one profile's rules against a report
(``rules``), and the pure ``match(report, profiles)`` with a reason for every candidate
(``match``).
May import: the foundation, config, hardware (the report). Never knows model files. The
backends and formats a profile may name are the backend table's
(runtime/backend_table.py), checked when the profile is loaded.
"""

from __future__ import annotations

from runtime.profiles.match import (
    Candidate as Candidate,
)
from runtime.profiles.match import (
    ProfileMatch as ProfileMatch,
)
from runtime.profiles.match import (
    match as match,
)
from runtime.profiles.profile import (
    REPO_PROFILES_DIR as REPO_PROFILES_DIR,
)
from runtime.profiles.profile import (
    DeviceProfile as DeviceProfile,
)
from runtime.profiles.profile import (
    MatchRules as MatchRules,
)
from runtime.profiles.profile import (
    Target as Target,
)
from runtime.profiles.profile import (
    Threads as Threads,
)
from runtime.profiles.profile import (
    default_profiles_dir as default_profiles_dir,
)
from runtime.profiles.profile import (
    load_profile as load_profile,
)
from runtime.profiles.profile import (
    load_profiles as load_profiles,
)
from runtime.profiles.profile import (
    profile_by_name as profile_by_name,
)
