"""Settings every test folder shares.

Hypothesis runs derandomized: each run of the suite, a developer's or CI's, tries the same
cases, so a green run means the same thing twice and a red one can be rerun. Hunting for new
cases is a deliberate act: load another profile or raise the example count where a test
offers one (``CCCI_PROPERTY_EXAMPLES`` for the safety properties).
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("ccci", derandomize=True, deadline=None)
settings.load_profile("ccci")
